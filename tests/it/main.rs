//! The integration tests, as modules of one test binary (one link instead of one per file).
//! `cargo test --test it MODULE` runs one module; tests/README.md says what each covers.

mod common;

mod api;
mod apply;
mod check;
mod cli;
mod contract;
mod diff;
mod differential;
mod first_hour;
mod fmt;
mod hostile;
mod incremental;
mod instance;
mod kill;
mod lifecycle;
mod live;
mod lsp;
mod make_shapes;
mod plan;
mod postgres;
mod properties;
mod reads;
mod run;
mod sandbox;
mod sandbox_golden;
mod state;
