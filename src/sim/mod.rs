//! Stateful simulators of the commercial CA APIs, served with axum on loopback.
//!
//! Tests, benchmarks and users (`certform sim ...`) run them instead of the real services: each
//! simulator keeps its account state in memory, speaks the vendor's wire format as the
//! references in `../shared/reference/` describe it, issues real X.509 certificates from its own
//! CA, and can inject faults (errors, latency, dropped connections) and enforce rate limits.
//! Randomness comes from a seeded generator so that a seed value gives the same tokens, serials
//! and fault decisions for the same sequence of requests.
//!
//! Nothing here is used by `plan` or `apply`: the simulators only ever talk to clients over HTTP.

pub mod digicert;
pub mod sectigo;
pub mod year;

mod dns_reader;
mod error;
mod faults;
mod http_fetch;
mod listener;
mod random;
mod rate_limit;

pub use faults::{DropPhase, Faults};
