//! State: the model of what certform recorded, and the git-backed store it lives in.

pub mod model;

pub use model::*;
