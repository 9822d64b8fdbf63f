//! Why a sync round failed, with the stable codes of docs/client.md.

use super::Millis;
use crate::error_code::ErrorCode;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("network: {0}")]
    Network(String),
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// `token()` gave no token (signed out, or a guest): status `local`, not `auth-required`.
    #[error("unauthorized: no token (signed out or a guest)")]
    NoToken,
    #[error("payment required: {0}")]
    PaymentRequired(String),
    #[error("schema version unsupported: {0}")]
    SchemaVersionUnsupported(String),
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after: Option<Millis>,
    },
    #[error("server error {status}: {message}")]
    Server {
        status: u16,
        message: String,
        /// Its `Retry-After` (a 503 while the server's database is unreachable sends one).
        retry_after: Option<Millis>,
    },
    /// The server refused the request (400, 403, 404, or 413 for a single change): the
    /// change stays pending; the server's own code is in the message.
    #[error("rejected by the server ({status} {code}): {message}")]
    Rejected {
        status: u16,
        code: String,
        message: String,
    },
    /// An answer that is not the documented shape; nothing of it is written.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Writing to the local store failed (quota, storage, decrypt…): the store's own code.
    #[error("{message}")]
    Local { code: ErrorCode, message: String },
}

impl SyncError {
    /// How long the server asked to be left alone (`Retry-After` of a 429 or a 5xx).
    pub fn retry_after(&self) -> Option<Millis> {
        match self {
            SyncError::RateLimited { retry_after, .. } | SyncError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            SyncError::Network(_) => ErrorCode::Network,
            SyncError::Unauthorized(_) | SyncError::NoToken => ErrorCode::Unauthorized,
            SyncError::PaymentRequired(_) => ErrorCode::PaymentRequired,
            SyncError::SchemaVersionUnsupported(_) => ErrorCode::SchemaVersionUnsupported,
            SyncError::RateLimited { .. } => ErrorCode::RateLimited,
            SyncError::Server { .. } => ErrorCode::ServerError,
            SyncError::Rejected { .. } => ErrorCode::Rejected,
            SyncError::Protocol(_) => ErrorCode::ProtocolError,
            SyncError::Local { code, .. } => *code,
        }
    }
}
