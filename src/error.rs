//! The library's error type.

use std::path::PathBuf;

/// Errors raised by the hlfp library. Each variant says what was wrong and with which input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid (unknown variant, zero classes, bad class name, ...).
    #[error("invalid config: {0}")]
    Config(String),
    /// An input (tensor, image, audio, message) does not have the expected shape or content.
    #[error("bad input: {0}")]
    BadInput(String),
    /// A weights file is missing a tensor or holds one of the wrong shape.
    #[error("weights {path}: {msg}")]
    Weights { path: PathBuf, msg: String },
    /// An error from candle, with what we were doing.
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
    /// The runtime could not go on (its inference thread stopped, a sink closed, ...).
    #[error("runtime: {0}")]
    Runtime(String),
    /// An I/O error, with the path involved.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach context to candle errors.
pub trait CandleContext<T> {
    /// Wrap a candle error with a short description of the operation.
    fn ctx(self, context: impl Into<String>) -> Result<T>;
}

impl<T> CandleContext<T> for std::result::Result<T, candle_core::Error> {
    fn ctx(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::Candle {
            context: context.into(),
            source,
        })
    }
}
