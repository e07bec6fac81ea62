//! The meaning of a policy set: the built-in catalog, license values with their provenance,
//! and the checked `Program`.

pub mod catalog;
pub mod customer;
pub mod license;
pub mod program;
pub mod schema;
pub mod time;

pub use license::{License, LicenseObject, LicenseValue};
pub use program::Program;
