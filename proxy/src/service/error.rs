//! Why tailgate could not start: every failure names where it comes from (a component's key path,
//! a listener, the process environment), so the operator can act on the message alone.

use std::net::SocketAddr;

/// The boxed cause of a start-up failure (kept as the error's `source`).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A start-up failure. Any of these stops the process before a listener accepts a connection.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A component (or one of its resources: a TLS file, a thread) could not be built or started.
    #[error("{path}: {source}")]
    Component {
        /// The component's key path, e.g. `exporters.otlp/backend.tls`.
        path: String,
        /// What went wrong.
        #[source]
        source: Cause,
    },
    /// A listen address could not be resolved or bound.
    #[error("{path}: cannot listen on {addr}: {source}")]
    Listen {
        /// The listener's key, e.g. `receivers::otlp::grpc`.
        path: String,
        /// The address asked for.
        addr: String,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
    /// The process environment does not allow the runtime to start (memlock, threads, io_uring).
    #[error("{0}")]
    Environment(String),
    /// A core stopped before it reported ready (it panicked or its executor could not start).
    #[error("core {core} stopped during start-up")]
    CoreLost {
        /// The core's index.
        core: usize,
    },
    /// The ports file could not be written.
    #[error("cannot write --ports-file {path}: {source}")]
    PortsFile {
        /// The file.
        path: String,
        /// The write error.
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// A component failure at `path` with a plain message as its cause.
    pub fn component(path: impl Into<String>, cause: impl Into<Cause>) -> Self {
        StartError::Component {
            path: path.into(),
            source: cause.into(),
        }
    }

    /// A bind failure of `path` on `addr`.
    pub fn listen(path: impl Into<String>, addr: SocketAddr, source: std::io::Error) -> Self {
        StartError::Listen {
            path: path.into(),
            addr: addr.to_string(),
            source,
        }
    }
}
