//! The HTTP requests the engine asks its driver to send, fully built (path, query, body).

use crate::protocol::{Change, Changeset};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    /// Matches the [`super::Input::Http`] that answers it.
    pub id: u64,
    pub method: HttpMethod,
    /// Path below the server's base URL, segments already percent-encoded.
    pub path: String,
    /// Query parameters, not yet encoded.
    pub query: Vec<(String, String)>,
    /// JSON body (push).
    pub body: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: String,
    pub kind: RequestKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    Push { app: String },
    Pull { app: String, collection: String },
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /sync/{app}` with a changeset.
pub fn push(
    id: u64,
    token: &str,
    app: &str,
    client_id: &str,
    since: Option<&str>,
    schema_version: u32,
    changes: Vec<Change>,
) -> HttpRequest {
    let changeset = Changeset {
        client_id: client_id.to_owned(),
        since: since.map(str::to_owned),
        schema_version: Some(schema_version),
        changes,
    };
    HttpRequest {
        id,
        method: HttpMethod::Post,
        path: format!("/sync/{}", encode_segment(app)),
        query: Vec::new(),
        body: Some(serde_json::to_string(&changeset).expect("changes serialise")),
        token: token.to_owned(),
        kind: RequestKind::Push {
            app: app.to_owned(),
        },
    }
}

/// `GET /sync/{app}/pull?collection=&since=&limit=&clientId=`.
pub fn pull(
    id: u64,
    token: &str,
    app: &str,
    collection: &str,
    since: Option<&str>,
    limit: usize,
    client_id: &str,
) -> HttpRequest {
    let mut query = vec![("collection".to_owned(), collection.to_owned())];
    if let Some(since) = since {
        query.push(("since".to_owned(), since.to_owned()));
    }
    query.push(("limit".to_owned(), limit.to_string()));
    query.push(("clientId".to_owned(), client_id.to_owned()));
    HttpRequest {
        id,
        method: HttpMethod::Get,
        path: format!("/sync/{}/pull", encode_segment(app)),
        query,
        body: None,
        token: token.to_owned(),
        kind: RequestKind::Pull {
            app: app.to_owned(),
            collection: collection.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("notes"), "notes");
        assert_eq!(encode_segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(encode_segment("ü"), "%C3%BC");
    }

    #[test]
    fn push_and_pull_requests() {
        let p = push(1, "t", "notes", "c1", Some("5"), 2, vec![]);
        assert_eq!(p.path, "/sync/notes");
        assert_eq!(
            p.body.as_deref(),
            Some(r#"{"clientId":"c1","since":"5","schemaVersion":2,"changes":[]}"#)
        );
        let q = pull(2, "t", "notes", "n", None, 1000, "c1");
        assert_eq!(q.path, "/sync/notes/pull");
        assert_eq!(q.query[0], ("collection".into(), "n".into()));
        assert!(q.query.iter().all(|(k, _)| k != "since"));
    }
}
