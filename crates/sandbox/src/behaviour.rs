//! Where Make's documentation is silent, the sandbox's answer is one reading of it; these switches
//! make it answer another, so that a client's tests can show it survives every plausible reading.
//! All of them are off by default.

/// What the previous owner of an organization becomes after a transfer of ownership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PreviousOwner {
    /// Admin (organization role 12).
    #[default]
    Admin,
    /// Member (organization role 13).
    Member,
}

/// Who owns an organization created with `userOrgAdmin`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UserOrgAdmin {
    /// The user named by `userOrgAdmin` becomes the owner.
    #[default]
    Owner,
    /// The user named by `userOrgAdmin` becomes an Admin, and the user the token belongs to
    /// becomes the owner (Make's generated client calls `userOrgAdmin` "the admin of the
    /// organization").
    Admin,
}

/// A page size the sandbox caps `pg[limit]` at without saying so in an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageCap {
    /// The most items one page holds.
    pub limit: u32,
    /// Whether the answer's `pg.limit` says the capped size (`true`) or repeats the size asked
    /// for (`false`).
    pub echoed: bool,
}

/// The readings in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Behaviour {
    pub previous_owner: PreviousOwner,
    pub user_org_admin: UserOrgAdmin,
    /// `None`: `pg[limit]` up to the maximum is honoured.
    pub page_cap: Option<PageCap>,
}

impl std::fmt::Display for Behaviour {
    /// The readings that differ from the sandbox's own, as the command line writes them
    /// (`--after-transfer member, --page-cap 5:unechoed`); `default` when none does.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.previous_owner == PreviousOwner::Member {
            parts.push("--after-transfer member".to_owned());
        }
        if self.user_org_admin == UserOrgAdmin::Admin {
            parts.push("--user-org-admin admin".to_owned());
        }
        if let Some(cap) = self.page_cap {
            let echo = if cap.echoed { "" } else { ":unechoed" };
            parts.push(format!("--page-cap {}{echo}", cap.limit));
        }
        if parts.is_empty() {
            f.write_str("default")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

impl std::str::FromStr for PreviousOwner {
    type Err = String;

    /// `admin` or `member`.
    fn from_str(text: &str) -> Result<PreviousOwner, String> {
        match text {
            "admin" => Ok(PreviousOwner::Admin),
            "member" => Ok(PreviousOwner::Member),
            _ => Err(format!(
                "`{text}` is not a role here; write `admin` or `member`"
            )),
        }
    }
}

impl std::str::FromStr for UserOrgAdmin {
    type Err = String;

    /// `owner` or `admin`.
    fn from_str(text: &str) -> Result<UserOrgAdmin, String> {
        match text {
            "owner" => Ok(UserOrgAdmin::Owner),
            "admin" => Ok(UserOrgAdmin::Admin),
            _ => Err(format!(
                "`{text}` is not a role here; write `owner` or `admin`"
            )),
        }
    }
}

impl std::str::FromStr for PageCap {
    type Err = String;

    /// `N` (the capped size is echoed in `pg.limit`) or `N:unechoed` (`pg.limit` repeats the
    /// size asked for).
    fn from_str(text: &str) -> Result<PageCap, String> {
        let (number, echoed) = match text.split_once(':') {
            None => (text, true),
            Some((number, "echoed")) => (number, true),
            Some((number, "unechoed")) => (number, false),
            Some((_, other)) => {
                return Err(format!(
                    "`{other}` is not a page cap option; write `N`, `N:echoed` or `N:unechoed`"
                ));
            }
        };
        match number.trim().parse::<u32>() {
            Ok(limit) if limit > 0 => Ok(PageCap { limit, echoed }),
            _ => Err(format!(
                "`{text}` is not a page cap; write a positive number of items, as `5` or `5:unechoed`"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_caps_read_their_echo() {
        assert_eq!(
            "5".parse(),
            Ok(PageCap {
                limit: 5,
                echoed: true
            })
        );
        assert_eq!(
            "5:unechoed".parse(),
            Ok(PageCap {
                limit: 5,
                echoed: false
            })
        );
        assert!("0".parse::<PageCap>().is_err());
        assert!("5:maybe".parse::<PageCap>().is_err());
    }

    #[test]
    fn readings_are_described_as_the_command_line_writes_them() {
        assert_eq!(Behaviour::default().to_string(), "default");
        let all = Behaviour {
            previous_owner: PreviousOwner::Member,
            user_org_admin: UserOrgAdmin::Admin,
            page_cap: Some(PageCap {
                limit: 5,
                echoed: false,
            }),
        };
        assert_eq!(
            all.to_string(),
            "--after-transfer member, --user-org-admin admin, --page-cap 5:unechoed"
        );
    }
}
