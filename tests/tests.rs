//! Integration tests, one module per concern. They run the real binary or
//! the real server on 127.0.0.1:0 with real sockets.

/// `cutoff check` and `cutoff explain` as an admin runs them.
mod cli;
/// The docs, the commented examples and the schema stay in step.
mod config_docs;
/// Shared helpers: temp configs, running the binary.
mod util;
