//! The meaning of a policy set: the built-in catalog and, after checking, the `Program`.

pub mod catalog;
