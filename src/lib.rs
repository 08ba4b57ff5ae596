//! certform: plan/apply for TLS certificates.
//!
//! The data flows one way: `config` (desired state) and `state` (what certform recorded) and
//! `observed` (what the CAs and deploy targets really hold, gathered by `refresh`) go into the
//! pure `plan::planner`, whose `Plan` the `apply` executor carries out through the `ca`, `dns`
//! and `deploy` traits before the `state` store commits the result to git.

pub mod account;
pub mod apply;
pub mod atomic_file;
pub mod ca;
pub mod ca_inventory;
pub mod capabilities;
pub mod check_cache;
pub mod cli;
pub mod config;
pub mod dcv;
pub mod deploy;
pub mod dns;
pub mod error;
pub mod http;
pub mod import;
pub mod inventory;
pub mod keys;
pub mod memory;
pub mod observed;
pub mod par;
pub mod plan;
pub mod preflight;
pub mod refresh;
pub mod secrets;
pub mod serial;
pub mod sim;
pub mod small_map;
pub mod spec;
pub mod state;
pub mod state_ops;
#[cfg(test)]
pub(crate) mod testing;
pub mod workspace;
