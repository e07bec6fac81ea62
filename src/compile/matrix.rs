//! The tier comparison table (`charter matrix`), in Markdown or HTML, followed by the staff
//! table (who holds which instance role, with which app-developer options).

use crate::model::catalog::CATALOG;
use crate::model::license::LicenseValue;
use crate::model::program::Program;

/// One row per parameter (deprecated ones left out), one column per deployable tier in ladder
/// order, values in human units.
struct Table {
    tiers: Vec<String>,
    rows: Vec<(String, String, Vec<String>)>,
}

fn table(program: &Program) -> Table {
    let tiers = program.deployable_tiers();
    let mut rows = Vec::new();
    for (i, p) in CATALOG.iter().enumerate() {
        if p.is_deprecated() {
            continue;
        }
        let cells = tiers
            .iter()
            .map(|t| match t.license.value(i) {
                Some(LicenseValue::Bool(true)) => "✓".to_string(),
                Some(LicenseValue::Bool(false)) => "—".to_string(),
                Some(v) => v.human(p),
                None => String::new(),
            })
            .collect();
        rows.push((p.name.to_string(), p.description.to_string(), cells));
    }
    Table {
        tiers: tiers.iter().map(|t| t.name.clone()).collect(),
        rows,
    }
}

/// One row per staff member, in the policy's order: address, name, instance role (`—` for
/// none), app-developer options.
fn staff_rows(program: &Program) -> Vec<[String; 4]> {
    program
        .staff
        .iter()
        .map(|s| {
            let options: Vec<&str> = s.options.iter().map(|o| o.word()).collect();
            [
                s.email.clone(),
                s.name.clone().unwrap_or_default(),
                s.role.clone().unwrap_or_else(|| "—".to_owned()),
                options.join(", "),
            ]
        })
        .collect()
}

const STAFF_HEADINGS: [&str; 4] = ["staff", "name", "instance role", "options"];

pub fn markdown(program: &Program) -> String {
    let mut out = tiers_markdown(program);
    let staff = staff_rows(program);
    if !staff.is_empty() {
        out.push_str(&format!(
            "\n| {} |\n| --- | --- | --- | --- |\n",
            STAFF_HEADINGS.join(" | ")
        ));
        for row in &staff {
            let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    out
}

fn tiers_markdown(program: &Program) -> String {
    let table = table(program);
    let mut out = String::from("| parameter |");
    for t in &table.tiers {
        out.push_str(&format!(" {t} |"));
    }
    out.push_str("\n| --- |");
    for _ in &table.tiers {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for (name, _, cells) in &table.rows {
        out.push_str(&format!("| `{name}` |"));
        for c in cells {
            out.push_str(&format!(" {} |", c.replace('|', "\\|")));
        }
        out.push('\n');
    }
    out
}

pub fn html(program: &Program) -> String {
    let table = table(program);
    let mut out = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<title>Tier comparison</title>\n<style>\n",
        "body { font-family: system-ui, sans-serif; margin: 2rem; }\n",
        "table { border-collapse: collapse; }\n",
        "th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; }\n",
        "td.v { text-align: right; } th[scope=row] { text-align: left; font-weight: normal; }\n",
        "small { color: #666; }\n</style>\n</head>\n<body>\n<table>\n<thead><tr><th>parameter</th>",
    ));
    for t in &table.tiers {
        out.push_str(&format!("<th>{}</th>", escape(t)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (name, description, cells) in &table.rows {
        out.push_str(&format!(
            "<tr><th scope=\"row\"><code>{}</code><br><small>{}</small></th>",
            escape(name),
            escape(description)
        ));
        for c in cells {
            out.push_str(&format!("<td class=\"v\">{}</td>", escape(c)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    let staff = staff_rows(program);
    if !staff.is_empty() {
        out.push_str("<h2>Staff</h2>\n<table>\n<thead><tr>");
        for heading in STAFF_HEADINGS {
            out.push_str(&format!("<th>{heading}</th>"));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &staff {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes text for HTML and XML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
