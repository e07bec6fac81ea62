//! Make's admin API as charter sees it on the wire.
//!
//! [`wire`] holds the serde types of the JSON bodies. The sandbox serves them and the API client
//! reads them; the two share nothing else, so a disagreement between them shows up in tests.

pub mod wire;
