//! End-to-end tests of the `certform` binary in a hermetic environment: real git repositories,
//! the built-in local CA, real files, and `openssl` to check what was deployed.

mod accounts;
mod acme;
#[path = "../support/bind.rs"]
mod bind;
mod commit_safety;
mod config_safety;
mod contract;
mod crash;
mod deploy;
mod deploy_safety;
mod digicert;
mod errors;
mod digicert_sim;
mod http;
mod invalid;
mod inventory;
mod library_apply;
mod lifecycle;
mod lock;
#[path = "../support/pebble.rs"]
mod pebble;
mod quickstart;
mod random_crash;
mod remote_redaction;
mod renewal_loop;
mod sandbox;
mod state_repo;
