//! charter: plans-as-code for Make White Label instances.
//!
//! The pipeline and the module boundaries are described in ARCHITECTURE.md.

pub mod api;
pub mod cli;
pub mod model;
pub mod sandbox;
