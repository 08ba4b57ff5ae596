//! The error every simulator reports when it cannot start (or stop cleanly).

use std::net::SocketAddr;

/// Why the simulator could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid simulator seed: {reason}")]
    Seed { reason: String },

    #[error("cannot read the seed file `{path}`")]
    SeedFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot create the simulator's CA: {reason}")]
    Ca { reason: String },

    #[error("cannot listen on `{addr}`")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    #[error("the simulator's server failed: {reason}")]
    Server { reason: String },
}
