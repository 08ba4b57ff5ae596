//! State: the model of what certform recorded, and the git-backed store it lives in.

pub mod key_scan;
pub mod lock;
pub mod model;
pub mod store;

pub use lock::{BrokenLock, Death, Liveness, LockGuard, LockHolder};
pub use model::*;
pub use store::{check_keys_dir_outside_git, CacheWrite, Error, GitStore, StateStore};
