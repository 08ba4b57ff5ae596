//! The one integration-test binary (`cargo test --test cli [FILTER]`; `autotests = false` in
//! `Cargo.toml`, so one link instead of one per file). End-to-end tests of the `certform` binary
//! in a hermetic environment (real git repositories, the built-in local CA, real files,
//! `openssl` to check what was deployed), snapshot tests of its output, and the providers and
//! the state store against real servers (Pebble, BIND, git) and the simulators. One module per
//! topic: add a file here and one `mod` line below, in alphabetical order.

mod accounts;
mod acme;
mod acme_client;
mod age_keys;
#[path = "../support/bind.rs"]
mod bind;
mod ca_inventory;
mod check_cache;
mod commit_safety;
mod config_safety;
mod config_validation;
mod contract;
mod crash;
mod dc_import;
mod dc_plans;
mod deploy;
mod deploy_map;
mod deploy_remote;
mod deploy_safety;
mod deploy_stores;
mod deploy_verify;
mod digicert;
mod digicert_client;
mod digicert_contract;
mod digicert_sim;
mod errors;
mod guardrails;
mod http;
mod invalid;
mod inventory;
mod layout;
mod library_apply;
mod lifecycle;
mod lock;
mod options;
#[path = "../support/pebble.rs"]
mod pebble;
mod push;
mod quickstart;
mod random_crash;
mod remote_redaction;
mod renewal_loop;
mod rfc2136;
mod sandbox;
mod saved_plan;
mod scale;
mod schedule;
mod sectigo;
mod sim_digicert;
mod sim_sectigo;
mod snapshots;
mod state_cache;
mod state_repo;
mod state_store;
mod stateops;
