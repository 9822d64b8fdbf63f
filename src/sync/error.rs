//! Why a sync round failed, with the stable codes of docs/client.md.

use super::Millis;

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
    Server { status: u16, message: String },
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
    Local { code: &'static str, message: String },
}

impl SyncError {
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Network(_) => "network",
            SyncError::Unauthorized(_) | SyncError::NoToken => "unauthorized",
            SyncError::PaymentRequired(_) => "payment_required",
            SyncError::SchemaVersionUnsupported(_) => "schema_version_unsupported",
            SyncError::RateLimited { .. } => "rate_limited",
            SyncError::Server { .. } => "server_error",
            SyncError::Rejected { .. } => "rejected",
            SyncError::Protocol(_) => "protocol_error",
            SyncError::Local { code, .. } => code,
        }
    }
}
