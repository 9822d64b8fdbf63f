//! mana-sync-server: the companion sync server of mana-sync (docs/protocol.md).
//!
//! `app(state)` builds the router; `serve` binds, prints the bound address and runs it with
//! graceful shutdown. Storage sits behind [`store::Store`] (SQLite now, PostgreSQL later); the
//! merge and the wire types are the root crate's, shared with the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::sync::{broadcast, watch};
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub mod auth;
pub mod billing;
mod cache;
pub mod config;
pub mod error;
pub mod feed;
mod limits;
pub mod memberships;
pub mod metrics;
pub mod rate;
mod serve;
pub mod store;
mod stream;
mod sync;
mod ws;

pub use config::Config;
pub use error::AppError;

use auth::Auth;
use memberships::{Memberships, MembershipsConfig};
use store::{LoggedChange, SqliteStore, Store};

/// Announced to every live stream after a push commits.
#[derive(Debug)]
pub struct PushEvent {
    /// When the push committed (fan-out latency is measured from here).
    pub committed: std::time::Instant,
    pub app_id: String,
    pub client_id: String,
    pub changes: Vec<LoggedChange>,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Auth>,
    pub memberships: Arc<Memberships>,
    pub billing: Arc<billing::Billing>,
    pub rate: Arc<rate::RateLimits>,
    pub metrics: Arc<metrics::Metrics>,
    pub events: broadcast::Sender<Arc<PushEvent>>,
    /// What live streams subscribe to: the announcements routed to the users they concern.
    pub feed: Arc<feed::Feed>,
    /// Flips to `true` when the server shuts down: live streams end so that in-flight
    /// requests can finish and the process can exit.
    pub shutdown: watch::Receiver<bool>,
    pub max_schema_version: u32,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    pub connections: serve::ConnectionLimits,
    /// Interval of SSE heartbeats and WebSocket pings.
    pub sse_heartbeat: Duration,
    pub dev: bool,
    cors_origins: Option<String>,
}

/// Handle that stops the live streams of an [`AppState`].
pub struct ShutdownHandle(watch::Sender<bool>);

impl ShutdownHandle {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl AppState {
    /// Builds the state from a configuration: opens the database (running migrations) and
    /// sets up authentication. Fails without auth configuration unless `--dev`.
    pub fn new(config: &Config) -> Result<(AppState, ShutdownHandle), String> {
        let postgres = if config::is_postgres(&config.database_url) {
            // The LISTEN task needs a runtime to run on.
            tokio::runtime::Handle::try_current()
                .map_err(|_| "the PostgreSQL backend needs a Tokio runtime".to_owned())?;
            Some(store::postgres::PgStore::open(
                &config.database_url,
                config.dev,
            )?)
        } else {
            None
        };
        let store: Arc<dyn Store> = match &postgres {
            Some(pg) => Arc::new(pg.clone()),
            None => {
                let path = SqliteStore::path_from_url(&config.database_url);
                Arc::new(SqliteStore::open(&path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
        };
        let secret = config
            .mana_jwt_secret
            .clone()
            .filter(|s| !s.is_empty())
            .map(String::into_bytes);
        let jwks = config.mana_jwks_url.clone().filter(|s| !s.is_empty());
        if let Some(s) = &secret {
            if s.len() < Auth::MIN_SECRET_BYTES {
                return Err(format!(
                    "MANA_JWT_SECRET is {} bytes: an HS256 secret needs at least {} \
                     (RFC 7518 §3.2), e.g. `openssl rand -base64 48`",
                    s.len(),
                    Auth::MIN_SECRET_BYTES
                ));
            }
        }
        let secret = match (secret, &jwks, config.dev) {
            (None, None, false) => {
                return Err("no auth configured: set MANA_JWT_SECRET or MANA_JWKS_URL \
                            (or pass --dev for local development)"
                    .into())
            }
            // /dev/token would mint tokens that verify wherever this secret or JWKS is trusted.
            (Some(_), _, true) | (None, Some(_), true) => {
                return Err(
                    "--dev cannot be combined with MANA_JWT_SECRET or MANA_JWKS_URL: \
                            dev mode signs tokens for anyone with a random secret of its own"
                        .into(),
                )
            }
            (None, None, true) => {
                // Dev without a secret: a random one, so /dev/token can sign.
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| format!("random secret: {e}"))?;
                Some(bytes.to_vec())
            }
            (s, _, _) => s,
        };
        let auth = Auth::new(secret.as_deref(), jwks).ok_or("no auth configured")?;
        let memberships = Memberships::new(&MembershipsConfig {
            auth_url: config.mana_auth_url.clone(),
            service_key: config.mana_service_key.clone(),
            file: config.memberships_file.clone(),
            cache_ttl: Duration::from_secs(config.memberships_cache_secs),
        })
        .map_err(|e| format!("{}: {e}", e.code()))?;
        let (events, _) = broadcast::channel(config.broadcast_capacity.max(1));
        let (tx, rx) = watch::channel(false);
        if let Some(pg) = postgres {
            // Pushes to the other instances on the same database wake this one's streams.
            store::postgres::listen(pg, events.clone(), rx.clone());
        }
        Ok((
            AppState {
                store,
                auth: Arc::new(auth),
                memberships: Arc::new(memberships),
                billing: Arc::new(billing::Billing::new(
                    config.mana_credits_url.clone(),
                    config.mana_service_key.clone(),
                    &config.billing_exempt_apps,
                )),
                rate: Arc::new(rate::RateLimits::new(
                    (config.rate_limit_per_minute, config.rate_limit_burst),
                    (config.rate_limit_ip_per_minute, config.rate_limit_ip_burst),
                )),
                metrics: Arc::new(metrics::Metrics::new()),
                feed: feed::Feed::new(events.clone(), config.broadcast_capacity),
                events,
                shutdown: rx,
                max_schema_version: config.max_schema_version,
                max_body_bytes: config.max_body_bytes,
                body_timeout: Duration::from_millis(config.body_timeout_ms.max(1)),
                connections: serve::ConnectionLimits {
                    max_connections: config.max_connections,
                    header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
                    idle_timeout: Duration::from_millis(config.idle_timeout_ms.max(1)),
                },
                sse_heartbeat: Duration::from_millis(config.sse_heartbeat_ms.max(1)),
                dev: config.dev,
                cors_origins: config.cors_origins.clone(),
            },
            ShutdownHandle(tx),
        ))
    }
}

/// The router of every endpoint of docs/protocol.md.
pub fn app(state: AppState) -> Router {
    let cors = cors_layer(state.cors_origins.as_deref());
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics::metrics))
        .route("/sync/{app_id}", post(sync::push))
        .route("/sync/{app_id}/pull", get(sync::pull))
        .route("/sync/{app_id}/stream", get(stream::sse))
        .route("/ws", get(ws::ws_all))
        .route("/ws/{app_id}", get(ws::ws_app));
    if state.dev {
        router = router.route("/dev/token", post(sync::dev_token));
    }
    router
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::body_within_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::declared_body_size,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::count_rejections,
        ))
        .layer(cors)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Every request's span names its id (`x-request-id`, set when the client sent none), so each
/// log line of a request can be found by the id its answer carries.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
}

fn cors_layer(origins: Option<&str>) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("last-event-id"),
        ])
        // A browser page on another origin reads `Retry-After` only if it is exposed; the
        // client's backoff waits it out.
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(3600));
    let list: Vec<HeaderValue> = origins
        .unwrap_or("*")
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty() && *o != "*")
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if list.is_empty() {
        base.allow_origin(Any)
    } else {
        base.allow_origin(AllowOrigin::list(list))
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": mana_sync::VERSION }))
}

/// Runs the server until SIGTERM or Ctrl-C: binds, prints `listening on http://ADDR` on
/// stdout (tests read it when `PORT=0`), then on a signal stops accepting, ends live streams
/// and lets in-flight requests (pushes included) finish.
pub async fn serve(config: Config) -> Result<(), String> {
    let (state, shutdown) = AppState::new(&config)?;
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| format!("bind {}:{}: {e}", config.host, config.port))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{addr}");
    tracing::info!(%addr, dev = config.dev, "mana-sync-server started");
    serve_on(listener, state, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        shutdown.trigger();
    })
    .await
    .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves `app(state)` on a bound listener until `shutdown` resolves, with each connection's
/// peer address known (per-IP rate limits). `serve` and the tests use it alike.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.connections;
    serve::serve_connections(listener, app(state), limits, shutdown).await
}

/// Resolves once the server is shutting down (never, if the handle was dropped).
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
