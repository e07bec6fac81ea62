//! `charter graph`: the lifecycle as a state diagram, transitions labelled by their triggers.

use crate::model::customer::{Lifecycle, Transition};

fn label(t: &Transition) -> String {
    match &t.guard {
        Some(guard) => format!("{} ({}, if {guard})", t.name, t.trigger),
        None => format!("{} ({})", t.name, t.trigger),
    }
}

/// Mermaid `stateDiagram-v2`, for Markdown that renders it.
pub fn mermaid(lifecycle: &Lifecycle) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    out.push_str(&format!("    [*] --> {}\n", lifecycle.initial));
    for t in &lifecycle.transitions {
        for from in &t.from {
            // Mermaid ends a label at a line break and treats `:` specially after the first.
            let text = label(t).replace([':', '\n'], " ");
            out.push_str(&format!("    {from} --> {} : {text}\n", t.to));
        }
    }
    out
}

/// Graphviz `dot`.
pub fn dot(lifecycle: &Lifecycle) -> String {
    let mut out = String::from(
        "digraph lifecycle {\n    rankdir=LR;\n    node [shape=box, style=rounded];\n",
    );
    out.push_str("    start [shape=point, label=\"\"];\n");
    out.push_str(&format!("    start -> {};\n", quote(&lifecycle.initial)));
    for s in &lifecycle.states {
        out.push_str(&format!("    {};\n", quote(&s.name)));
    }
    for t in &lifecycle.transitions {
        for from in &t.from {
            out.push_str(&format!(
                "    {} -> {} [label={}];\n",
                quote(from),
                quote(&t.to),
                quote(&label(t))
            ));
        }
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
