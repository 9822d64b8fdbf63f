//! Limits that hold before a handler runs: a declared body over `MAX_BODY_BYTES` is answered
//! 413 at once, before its body is read (the body limit of the extractors only trips after
//! reading that much); a body must arrive whole within `BODY_TIMEOUT_MS` (408), so a client
//! that trickles it cannot hold a request open.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::AppState;

pub async fn declared_body_size(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > st.max_body_bytes as u64) {
        return AppError::payload_too_large(
            "payload_too_large",
            format!(
                "request body of {n} bytes exceeds MAX_BODY_BYTES ({})",
                st.max_body_bytes
            ),
        )
        .into_response();
    }
    next.run(req).await
}

pub async fn body_within_deadline(
    State(st): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, st.max_body_bytes);
    let bytes = match tokio::time::timeout(st.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return AppError::payload_too_large(
                "payload_too_large",
                "request body exceeds MAX_BODY_BYTES (or broke off)",
            )
            .into_response()
        }
        Err(_) => {
            return AppError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            )
            .into_response()
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
