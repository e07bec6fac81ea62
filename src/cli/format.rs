//! `charter fmt`: rewrite a policy set in the canonical layout.

use std::io::Read;
use std::path::Path;

use super::policy::{Output, report};
use super::{Outcome, usage_error};
use crate::source::Sources;
use crate::syntax;

pub(crate) fn run(path: &Path, check: bool, output: &Output) -> Outcome {
    if path == Path::new("-") {
        return stdin(output);
    }
    let sources = match Sources::read_policy_set(path) {
        Ok((sources, warnings)) => {
            report(&sources, &warnings, output);
            sources
        }
        Err(e) => return usage_error(&e.to_string(), None),
    };
    // Format everything first, so that a syntax error anywhere writes nothing at all.
    let mut formatted = Vec::new();
    let mut errors = Vec::new();
    for id in sources.ids() {
        let Some(file) = sources.file(id) else {
            continue;
        };
        match syntax::parse(&sources, id) {
            Ok(ast) => formatted.push((
                file.name.clone(),
                file.text.clone(),
                syntax::format(&file.text, &ast),
            )),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        report(&sources, &errors, output);
        return Outcome::Failure;
    }
    let mut unformatted = 0;
    for (name, before, after) in formatted {
        if before == after {
            continue;
        }
        unformatted += 1;
        if check {
            outln!("{name}");
            continue;
        }
        if let Err(e) = std::fs::write(&name, after) {
            eoutln!(
                "error: cannot write `{name}`: {}",
                e.to_string().to_lowercase()
            );
            return Outcome::Failure;
        }
        outln!("formatted {name}");
    }
    if check && unformatted > 0 {
        eoutln!(
            "{unformatted} {} not formatted; run `charter fmt` to fix",
            if unformatted == 1 {
                "file is"
            } else {
                "files are"
            }
        );
        return Outcome::Failure;
    }
    Outcome::Success
}

/// Formats standard input to standard output.
fn stdin(output: &Output) -> Outcome {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eoutln!(
            "error: cannot read standard input: {}",
            e.to_string().to_lowercase()
        );
        return Outcome::Failure;
    }
    let mut sources = Sources::new();
    let id = sources.add("<stdin>", text.clone());
    match syntax::parse(&sources, id) {
        Ok(ast) => {
            out!("{}", syntax::format(&text, &ast));
            Outcome::Success
        }
        Err(errors) => {
            report(&sources, &errors, output);
            Outcome::Failure
        }
    }
}
