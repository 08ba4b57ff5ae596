//! End-to-end tests of the `certform` binary in a hermetic environment: real git repositories,
//! the built-in local CA, real files, and `openssl` to check what was deployed.

mod crash;
mod deploy;
mod invalid;
mod lifecycle;
mod quickstart;
mod sandbox;
mod state_repo;
