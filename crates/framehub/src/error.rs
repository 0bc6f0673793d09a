//! The hub's error type.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Errors of the hub API. Each says what was wrong in words a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `add_stream` with a name already in use.
    #[error("a stream named '{0}' already exists")]
    StreamExists(String),
    /// A name outside `[A-Za-z0-9._-]{1,64}`, or reserved (`health`, `streams`,
    /// `metrics`, `recorded-events`, anything starting with `_`).
    #[error("invalid stream name '{name}': {why}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// No stream of that name.
    #[error("no stream named '{0}'")]
    UnknownStream(String),
    /// A frame whose buffer does not match its declared shape.
    #[error("invalid frame: {0}")]
    InvalidFrame(String),
    /// The server was closed.
    #[error("the server is closed")]
    Closed,
    /// A hub refused this remote publisher (close `code`: 4401
    /// unauthorized, 4409 name taken, 1008 a bad claim).
    #[error("the hub refused the publisher ({code}): {reason}")]
    Refused {
        /// The WebSocket close code.
        code: u16,
        /// The hub's reason.
        reason: String,
    },
    /// Binding or serving the listener failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Joining a NATS system failed (`ServerConfig::nats`): the servers
    /// could not be reached, refused the credentials, or this build has no
    /// `nats` feature.
    #[error("NATS: {0}")]
    Nats(String),
    /// An MP4 recording could not start or ended early
    /// ([`crate::Stream::record`], [`crate::Recording::stop`]): the stream
    /// has no H.264 chain, or its H.264 could not be muxed (e.g. its size
    /// changed while recording).
    #[error("recording: {0}")]
    Recording(String),
    /// An encoder could not be created.
    #[error("codec error: {0}")]
    Codec(#[from] framehub_codec::CodecError),
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::UnknownStream(_) => StatusCode::NOT_FOUND,
            Error::StreamExists(_) => StatusCode::CONFLICT,
            Error::InvalidName { .. } | Error::InvalidFrame(_) => StatusCode::BAD_REQUEST,
            Error::Closed => StatusCode::SERVICE_UNAVAILABLE,
            Error::Refused { .. } => StatusCode::FORBIDDEN,
            Error::Io(_) | Error::Codec(_) | Error::Nats(_) | Error::Recording(_) => {
                tracing::error!(error = %self, "internal error");
                return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            }
        };
        (status, self.to_string()).into_response()
    }
}

/// Names the hub's own routes use; `add_stream` refuses them (`docs/protocol.md` §1).
pub const RESERVED_NAMES: [&str; 4] = ["health", "streams", "metrics", "recorded-events"];

/// Checks a stream name: `[A-Za-z0-9._-]{1,64}`, not reserved, not starting with `_`.
///
/// Errors: [`Error::InvalidName`] saying which rule it breaks.
pub fn check_stream_name(name: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::InvalidName {
            name: name.chars().take(80).collect(),
            why,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed");
    }
    if name.starts_with('_') {
        return bad("names starting with '_' are reserved");
    }
    if RESERVED_NAMES.contains(&name) || name == "." || name == ".." {
        return bad("this name is reserved for the hub's own routes");
    }
    Ok(())
}
