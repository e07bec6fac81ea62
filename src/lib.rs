//! charter: plans-as-code for Make White Label instances.
//!
//! The pipeline and the module boundaries are described in ARCHITECTURE.md.

// The pest parser is built without `std` (so without its stack probe on every rule call, a
// fifth of parsing time; `syntax` bounds nesting itself), and its generated code names `::alloc`.
extern crate alloc;

pub mod api;
pub mod apply;
pub mod ast;
pub mod check;
pub mod cli;
pub mod compile;
pub mod diagnostic;
pub mod excerpt;
pub mod input;
pub mod lsp;
pub mod model;
pub mod plan;
pub mod policy;
pub mod schedule;
pub mod source;
pub mod state;
pub mod syntax;
