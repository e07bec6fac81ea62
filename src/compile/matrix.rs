//! The tier comparison table (`charter matrix`), in Markdown or HTML.

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

pub fn markdown(program: &Program) -> String {
    let mut out = tiers_markdown(program);
    if !program.staff.is_empty() {
        out.push_str("\n| staff | name | instance role | options |\n| --- | --- | --- | --- |\n");
        for s in &program.staff {
            let options: Vec<&str> = s.options.iter().map(|o| o.word()).collect();
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                s.email,
                s.name.as_deref().unwrap_or(""),
                s.role.as_deref().unwrap_or("—"),
                options.join(", ")
            ));
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
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// Escapes text for HTML and XML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
