//! Apply: the executor that carries out a plan (see `executor`).

mod executor;

pub use executor::{
    error_chain, random_hex, Error, Executor, FailPoints, Outcome, ProgressCallback, Report,
    RetryPolicy,
};
