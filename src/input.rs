//! Reading the files a user names, safely: a policy set's files and rosters stay inside its
//! folder, and every file charter reads is a regular file under a size cap.
//!
//! A roster path is written in a policy file that may come from anyone (a pull request, a
//! customer's export): `roster "/proc/self/environ"`, `roster "../../etc/passwd"` or a symlink
//! to the token file would otherwise be read and echoed in diagnostics, and `roster
//! "/dev/zero"` would grow memory without bound. `docs/security.md` lists the rules.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The largest policy (`.charter`) file read.
pub const MAX_POLICY_FILE: u64 = 16 << 20;
/// The largest roster read (a million customers is about 100 MB).
pub const MAX_ROSTER: u64 = 256 << 20;
/// The largest `charter.toml` read.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;
/// The largest token file read (a Make token is 36 characters).
pub const MAX_TOKEN_FILE: u64 = 64 << 10;

/// Why a file is not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An absolute path where a path inside the folder is expected.
    Absolute,
    /// A path whose `..` leads out of the folder.
    OutOfFolder,
    /// A path inside the folder that resolves (through a symlink) to `target` outside it.
    SymlinkOut { target: PathBuf },
    /// Not a regular file: `kind` is what it is ("a directory", "a device", "a FIFO", …).
    NotAFile { kind: &'static str },
    /// Larger than `cap` bytes.
    TooLarge { cap: u64 },
    /// Not UTF-8 text.
    NotUtf8,
    /// The file cannot be opened or read (words of the error, lowercase).
    Io(String),
}

impl Refusal {
    /// The reason, in words to follow "cannot read `PATH`: ".
    pub fn reason(&self) -> String {
        match self {
            Refusal::Absolute => "the path is absolute".to_owned(),
            Refusal::OutOfFolder => "the path leads out of the policy set's folder".to_owned(),
            Refusal::SymlinkOut { target } => format!(
                "it is a symbolic link to `{}`, outside the policy set's folder",
                target.display()
            ),
            Refusal::NotAFile { kind } => format!("it is {kind}, not a regular file"),
            Refusal::TooLarge { cap } => format!("it is larger than {}", size_words(*cap)),
            Refusal::NotUtf8 => "it is not valid UTF-8".to_owned(),
            Refusal::Io(words) => words.clone(),
        }
    }

    /// What to do about it, for the confinement rules.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            Refusal::Absolute | Refusal::OutOfFolder | Refusal::SymlinkOut { .. } => Some(
                "charter reads only files inside the policy set's folder: put the file there and \
                 name it by a path relative to the file that names it",
            ),
            Refusal::NotAFile { .. } => Some("name a regular file"),
            _ => None,
        }
    }
}

/// Reads `relative` (a path as written in a file of the folder) inside `folder`: it must be
/// relative, stay inside the folder once `..` and symlinks are resolved, and name a regular
/// file of at most `cap` bytes of UTF-8.
pub fn read_inside(folder: &Path, relative: &Path, cap: u64) -> Result<String, Refusal> {
    check_relative(relative)?;
    let folder_path = if folder.as_os_str().is_empty() {
        Path::new(".")
    } else {
        folder
    };
    let real_folder = folder_path.canonicalize().map_err(|e| io_refusal(&e))?;
    let real = folder_path
        .join(relative)
        .canonicalize()
        .map_err(|e| io_refusal(&e))?;
    if !real.starts_with(&real_folder) {
        return Err(Refusal::SymlinkOut { target: real });
    }
    read_regular(&real, cap)
}

/// Checks a path as written, before anything is opened: relative, and no `..` above its start.
pub fn check_relative(relative: &Path) -> Result<(), Refusal> {
    let mut depth = 0usize;
    for component in relative.components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(Refusal::Absolute),
            Component::ParentDir => {
                depth = depth.checked_sub(1).ok_or(Refusal::OutOfFolder)?;
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
        }
    }
    Ok(())
}

/// Reads `path` (following symlinks) if it is a regular file of at most `cap` bytes of UTF-8.
/// Devices, FIFOs and sockets are refused before they are opened (opening a FIFO waits for a
/// writer); a file that grows past the cap while read is refused too.
pub fn read_regular(path: &Path, cap: u64) -> Result<String, Refusal> {
    let metadata = std::fs::metadata(path).map_err(|e| io_refusal(&e))?;
    check_regular(&metadata, cap)?;
    let file = std::fs::File::open(path).map_err(|e| io_refusal(&e))?;
    check_regular(&file.metadata().map_err(|e| io_refusal(&e))?, cap)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| io_refusal(&e))?;
    if bytes.len() as u64 > cap {
        return Err(Refusal::TooLarge { cap });
    }
    String::from_utf8(bytes).map_err(|_| Refusal::NotUtf8)
}

fn check_regular(metadata: &std::fs::Metadata, cap: u64) -> Result<(), Refusal> {
    if !metadata.is_file() {
        return Err(Refusal::NotAFile {
            kind: file_kind(metadata),
        });
    }
    if metadata.len() > cap {
        return Err(Refusal::TooLarge { cap });
    }
    Ok(())
}

fn file_kind(metadata: &std::fs::Metadata) -> &'static str {
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Whether group or others may read the file (always false where permissions are not Unix's).
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Lowercase words for an IO error.
pub fn io_refusal(error: &std::io::Error) -> Refusal {
    Refusal::Io(match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => {
            let words = error.to_string().to_lowercase();
            // "too many levels of symbolic links (os error 40)": the code helps no one.
            match words.find(" (os error") {
                Some(at) => words.get(..at).unwrap_or(&words).to_owned(),
                None => words,
            }
        }
    })
}

fn size_words(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_out_of_the_folder_are_refused_before_reading() {
        let folder = Path::new("policies/acme");
        assert_eq!(
            read_inside(folder, Path::new("/etc/passwd"), MAX_ROSTER),
            Err(Refusal::Absolute)
        );
        assert_eq!(
            read_inside(folder, Path::new("../../etc/passwd"), MAX_ROSTER),
            Err(Refusal::OutOfFolder)
        );
        assert_eq!(
            read_inside(folder, Path::new("x/../../acme/customers.csv"), MAX_ROSTER),
            Err(Refusal::OutOfFolder)
        );
        assert!(read_inside(folder, Path::new("./customers.csv"), MAX_ROSTER).is_ok());
    }

    #[test]
    fn devices_and_large_files_are_refused() {
        assert_eq!(
            read_regular(Path::new("/dev/zero"), 10),
            Err(Refusal::NotAFile { kind: "a device" })
        );
        assert_eq!(
            read_regular(Path::new("policies/acme/customers.csv"), 10),
            Err(Refusal::TooLarge { cap: 10 })
        );
    }
}
