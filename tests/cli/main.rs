//! End-to-end tests of the `certform` binary in a hermetic environment: real git repositories,
//! the built-in local CA, real files, and `openssl` to check what was deployed.

mod acme;
#[path = "../support/bind.rs"]
mod bind;
mod crash;
mod deploy;
mod digicert;
mod http;
mod invalid;
mod lifecycle;
#[path = "../support/pebble.rs"]
mod pebble;
mod quickstart;
mod sandbox;
mod state_repo;
