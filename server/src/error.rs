//! One error type for every handler, answered as JSON `{ code, message }` (docs/protocol.md).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mana_sync::protocol::ErrorBody;

use crate::store::StoreError;

/// Marks an error answer with its code, for the rejection counter of `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// An error answered to the client. `code` is a stable machine code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Index of the offending change in a push, when one is to blame.
    pub index: Option<usize>,
    /// Seconds to wait before retrying (answered as `Retry-After`).
    pub retry_after: Option<u64>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            message: message.into(),
            index: None,
            retry_after: None,
        }
    }
    pub fn with_index(mut self, index: usize) -> AppError {
        self.index = Some(index);
        self
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn payload_too_large(code: &'static str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::PAYLOAD_TOO_LARGE, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn internal(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
    pub fn rate_limited(retry_after_secs: u64) -> AppError {
        let mut e = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests: retry in {retry_after_secs} s"),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }
    pub fn unavailable(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "request rejected");
        }
        // Never leak internals (SQL, paths) to the client.
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal server error".to_owned()
        } else {
            self.message
        };
        let mut response = (
            self.status,
            Json(ErrorBody {
                code: self.code.to_owned(),
                message,
                index: self.index,
            }),
        )
            .into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// `Retry-After` of a 503 while the database is unreachable: clients back off from there.
const STORE_RETRY_AFTER_SECS: u64 = 1;

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::Forbidden { index, message } => {
                AppError::forbidden(format!("changes[{index}]: {message}")).with_index(index)
            }
            StoreError::Invalid {
                index,
                code,
                message,
            } => AppError::bad_request(code, format!("changes[{index}]: {message}"))
                .with_index(index),
            StoreError::Internal(m) => AppError::internal(m),
            StoreError::Unavailable(m) => {
                let mut e = AppError::unavailable(m);
                e.retry_after = Some(STORE_RETRY_AFTER_SECS);
                e
            }
        }
    }
}

/// Fallback for unknown routes, so that even a 404 is `{ code, message }`.
pub async fn not_found() -> AppError {
    AppError::not_found("no such endpoint")
}
