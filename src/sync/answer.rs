//! Reading the server's answers: a status, maybe `Retry-After`, and a body become either a
//! validated page of changes or a coded [`SyncError`]. An answer that is not the documented
//! shape is `protocol_error`, and nothing of it is applied.

use serde::de::DeserializeOwned;

use super::error::SyncError;
use super::Millis;
use crate::protocol::{Change, Conflict, ErrorBody, PullResponse, SyncResponse};

/// What the driver got back for an [`super::HttpRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    /// `Retry-After` in milliseconds (seconds on the wire).
    pub retry_after: Option<Millis>,
    pub body: String,
}

/// A validated push or pull answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub changes: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    pub synced_until: String,
    pub has_more: bool,
}

/// Parses `Retry-After` given in seconds (the HTTP-date form is not used by our server).
pub fn parse_retry_after(header: &str) -> Option<Millis> {
    header
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| s.saturating_mul(1000))
}

/// The error a non-2xx answer stands for.
pub fn error_of(answer: &HttpAnswer) -> SyncError {
    let body: Option<ErrorBody> = serde_json::from_str(&answer.body).ok();
    let code = body.as_ref().map(|b| b.code.clone()).unwrap_or_default();
    let message = match &body {
        Some(b) if !b.message.is_empty() => format!("{}: {}", b.code, b.message),
        Some(b) => b.code.clone(),
        None => format!("HTTP {}", answer.status),
    };
    match answer.status {
        401 => SyncError::Unauthorized(message),
        402 => SyncError::PaymentRequired(message),
        422 if code == "schema_version_unsupported" || code.is_empty() => {
            SyncError::SchemaVersionUnsupported(message)
        }
        429 => SyncError::RateLimited {
            message,
            retry_after: answer.retry_after,
        },
        500..=599 => SyncError::Server {
            status: answer.status,
            message,
            retry_after: answer.retry_after,
        },
        status => SyncError::Rejected {
            status,
            code: if code.is_empty() {
                "http_error".into()
            } else {
                code
            },
            message,
        },
    }
}

fn parse<T: DeserializeOwned>(body: &str) -> Result<T, SyncError> {
    serde_json::from_str(body)
        .map_err(|e| SyncError::Protocol(format!("the answer is not the documented shape: {e}")))
}

/// Every server change must be valid and carry its cursor (`seq`) and `eventId`.
fn check_changes(changes: &[Change]) -> Result<(), SyncError> {
    for (i, c) in changes.iter().enumerate() {
        c.validate()
            .map_err(|e| SyncError::Protocol(format!("serverChanges[{i}]: {e}")))?;
    }
    Ok(())
}

fn check_cursor(cursor: &str) -> Result<(), SyncError> {
    if cursor.is_empty() {
        return Err(SyncError::Protocol("syncedUntil is empty".into()));
    }
    Ok(())
}

/// A push answer (`SyncResponse`).
pub fn push_page(answer: &HttpAnswer) -> Result<Page, SyncError> {
    if !(200..300).contains(&answer.status) {
        return Err(error_of(answer));
    }
    let r: SyncResponse = parse(&answer.body)?;
    check_changes(&r.server_changes)?;
    check_cursor(&r.synced_until)?;
    Ok(Page {
        changes: r.server_changes,
        conflicts: r.conflicts,
        synced_until: r.synced_until,
        has_more: r.has_more,
    })
}

/// A pull answer (`PullResponse`); every change must belong to `collection`.
pub fn pull_page(answer: &HttpAnswer, collection: &str) -> Result<Page, SyncError> {
    if !(200..300).contains(&answer.status) {
        return Err(error_of(answer));
    }
    let r: PullResponse = parse(&answer.body)?;
    check_changes(&r.server_changes)?;
    check_cursor(&r.synced_until)?;
    if let Some(c) = r.server_changes.iter().find(|c| c.table != collection) {
        return Err(SyncError::Protocol(format!(
            "a pull of {collection} answered a change of {}",
            c.table
        )));
    }
    Ok(Page {
        changes: r.server_changes,
        conflicts: Vec::new(),
        synced_until: r.synced_until,
        has_more: r.has_more,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_code::ErrorCode;

    fn ans(status: u16, body: &str) -> HttpAnswer {
        HttpAnswer {
            status,
            retry_after: None,
            body: body.into(),
        }
    }

    #[test]
    fn statuses_map_to_codes() {
        let cases = [
            (
                401,
                r#"{"code":"unauthorized","message":"expired"}"#,
                "unauthorized",
            ),
            (
                402,
                r#"{"code":"payment_required","message":"x"}"#,
                "payment_required",
            ),
            (
                422,
                r#"{"code":"schema_version_unsupported","message":"x"}"#,
                "schema_version_unsupported",
            ),
            (
                429,
                r#"{"code":"rate_limited","message":"x"}"#,
                "rate_limited",
            ),
            (500, "<html>oops</html>", "server_error"),
            (503, "", "server_error"),
            (
                400,
                r#"{"code":"missing_fields","message":"changes[0]"}"#,
                "rejected",
            ),
            (403, r#"{"code":"forbidden","message":"x"}"#, "rejected"),
            (413, "", "rejected"),
        ];
        for (status, body, code) in cases {
            assert_eq!(error_of(&ans(status, body)).code(), code, "{status} {body}");
        }
        let SyncError::Rejected { code, .. } = error_of(&ans(400, r#"{"code":"missing_fields"}"#))
        else {
            panic!()
        };
        assert_eq!(code, "missing_fields");
    }

    #[test]
    fn retry_after_travels_in_seconds() {
        assert_eq!(parse_retry_after("3"), Some(3000));
        assert_eq!(parse_retry_after("soon"), None);
        let mut a = ans(429, "{}");
        a.retry_after = Some(2000);
        assert_eq!(
            error_of(&a),
            SyncError::RateLimited {
                message: "HTTP 429".into(),
                retry_after: Some(2000)
            }
        );
        let mut a = ans(503, r#"{"code":"unavailable","message":"x"}"#);
        a.retry_after = Some(1000);
        assert_eq!(error_of(&a).retry_after(), Some(1000));
        assert_eq!(error_of(&a).code(), ErrorCode::ServerError);
    }

    #[test]
    fn malformed_answers_are_protocol_errors() {
        let good_change = r#"{"eventId":"0190a6f0-0000-7000-8000-000000000001","table":"notes","id":"n1","op":"delete","deletedAt":"2026-11-25T10:00:00.000Z-0000-0000000000000001","seq":"1"}"#;
        let cases = [
            "not json".to_string(),
            "[]".to_string(),
            r#"{"serverChanges":[]}"#.to_string(),
            r#"{"serverChanges":[],"syncedUntil":""}"#.to_string(),
            r#"{"serverChanges":[{"op":"insert"}],"syncedUntil":"1"}"#.to_string(),
            format!(
                r#"{{"serverChanges":[{}],"syncedUntil":"1"}}"#,
                good_change.replace("delete\"", "update\"")
            ),
            r#"{"serverChanges":"x","syncedUntil":"1"}"#.to_string(),
        ];
        for body in &cases {
            assert_eq!(
                push_page(&ans(200, body)).unwrap_err().code(),
                "protocol_error",
                "{body}"
            );
            assert_eq!(
                pull_page(&ans(200, body), "notes").unwrap_err().code(),
                "protocol_error",
                "{body}"
            );
        }
        let ok = format!(r#"{{"serverChanges":[{good_change}],"syncedUntil":"1","hasMore":true}}"#);
        let page = pull_page(&ans(200, &ok), "notes").unwrap();
        assert!(page.has_more);
        assert_eq!(page.changes.len(), 1);
        assert_eq!(
            pull_page(&ans(200, &ok), "tasks").unwrap_err().code(),
            "protocol_error"
        );
    }
}
