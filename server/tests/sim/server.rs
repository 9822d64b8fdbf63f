//! The real server (the crate's `app(state)`, `--dev`, SQLite in a temporary directory),
//! called in-process: every simulated request is one `oneshot` on the router, run to
//! completion before the simulation goes on.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, Method, Request};
use axum::Router;
use mana_sync::sync::answer::{parse_retry_after, HttpAnswer};
use mana_sync::sync::request::encode_segment;
use mana_sync::sync::{HttpMethod, HttpRequest};
use mana_sync_server::{app, AppState, Config, ShutdownHandle};
use tokio::runtime::Runtime;
use tower::ServiceExt;

pub struct SimServer {
    router: Router,
    dir: tempfile::TempDir,
    _shutdown: ShutdownHandle,
    /// A token of the one simulated user, minted by `POST /dev/token`.
    pub token: String,
}

/// `/dev/shm` when there is one: SQLite's fsyncs then cost nothing.
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = tempfile::Builder::new().prefix("sync-sim-").clone();
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("a temporary directory")
}

impl SimServer {
    pub fn start(rt: &Runtime, user: &str) -> SimServer {
        let dir = temp_dir();
        let url = format!("sqlite://{}", dir.path().join("sync.db").display());
        let mut config = Config::for_tests(url);
        config.dev = true;
        config.mana_jwt_secret = None;
        config.mana_jwks_url = None;
        config.mana_auth_url = None;
        config.mana_credits_url = None;
        config.max_schema_version = 1;
        // Simulated time runs far faster than the limiter's real clock.
        config.rate_limit_per_minute = 0;
        let (state, shutdown) = AppState::new(&config).expect("server state");
        let mut server = SimServer {
            router: app(state),
            dir,
            _shutdown: shutdown,
            token: String::new(),
        };
        let body = serde_json::json!({ "userId": user }).to_string();
        let (status, text) = server.send(rt, Method::POST, "/dev/token", None, Some(body));
        assert_eq!(status, 200, "POST /dev/token: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("token JSON");
        server.token = v["token"].as_str().expect("a token").to_owned();
        server
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("sync.db")
    }

    /// Delivers one of the engine's requests; the answer as the browser driver gives it.
    pub fn call(&self, rt: &Runtime, req: &HttpRequest) -> HttpAnswer {
        let method = match req.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let uri = uri(&req.path, &req.query);
        let resp = self.request(rt, method, &uri, Some(&req.token), req.body.clone());
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = body_text(rt, resp);
        HttpAnswer {
            status,
            retry_after,
            body,
        }
    }

    /// A plain request (the verifier's pulls): status and body.
    pub fn send(
        &self,
        rt: &Runtime,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (u16, String) {
        let resp = self.request(rt, method, uri, token, body);
        let status = resp.status().as_u16();
        (status, body_text(rt, resp))
    }

    fn request(
        &self,
        rt: &Runtime,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> axum::response::Response {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(text) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(text)
            }
            None => Body::empty(),
        };
        let req = b.body(body).expect("a valid request");
        rt.block_on(self.router.clone().oneshot(req))
            .expect("the router is infallible")
    }
}

/// `path?k=v&…` with percent-encoded keys and values (a cursor may be `snapshot:3:7`).
pub fn uri(path: &str, query: &[(String, String)]) -> String {
    if query.is_empty() {
        return path.to_owned();
    }
    let pairs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode_segment(k), encode_segment(v)))
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn body_text(rt: &Runtime, resp: axum::response::Response) -> String {
    let bytes = rt
        .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
        .expect("a complete body");
    String::from_utf8_lossy(&bytes).into_owned()
}
