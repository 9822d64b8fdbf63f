//! Server configuration: `--flags` named after the environment variables (server/README.md),
//! which are the fallbacks (`--port` / `PORT`, `--mana-jwt-secret` / `MANA_JWT_SECRET`, …).

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "mana-sync-server",
    version,
    about = "Sync server for mana-sync"
)]
pub struct Config {
    /// Address to listen on (`0.0.0.0` to accept connections from other machines).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (the bound address is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 3050)]
    pub port: u16,
    /// `sqlite://path` (embedded SQLite) or `postgres://user:password@host:port/db`
    /// (PostgreSQL, several instances on one database: docs/deployment.md).
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://mana-sync.db")]
    pub database_url: String,
    /// HS256 secret for bearer tokens.
    #[arg(long, env = "MANA_JWT_SECRET", hide_env_values = true)]
    pub mana_jwt_secret: Option<String>,
    /// JWKS endpoint for asymmetric (RS256, ES256, …) bearer tokens.
    #[arg(long, env = "MANA_JWKS_URL")]
    pub mana_jwks_url: Option<String>,
    /// Base URL of the auth service, for space memberships
    /// (`GET /api/v1/internal/users/{userId}/memberships` with `MANA_SERVICE_KEY`).
    #[arg(long, env = "MANA_AUTH_URL")]
    pub mana_auth_url: Option<String>,
    /// Memberships from a JSON file instead of the auth service (server/README.md).
    #[arg(long, env = "MEMBERSHIPS_FILE")]
    pub memberships_file: Option<std::path::PathBuf>,
    /// How long a user's memberships answer from the auth service is used, in seconds.
    #[arg(long, env = "MEMBERSHIPS_CACHE_SECS", default_value_t = 300)]
    pub memberships_cache_secs: u64,
    /// Billing service: sync subscription gate (402); absent = no gate.
    #[arg(long, env = "MANA_CREDITS_URL")]
    pub mana_credits_url: Option<String>,
    /// Key this server presents to the auth and billing services (`X-Service-Key`).
    #[arg(long, env = "MANA_SERVICE_KEY", hide_env_values = true)]
    pub mana_service_key: Option<String>,
    /// Comma-separated app ids exempt from the billing gate.
    #[arg(long, env = "BILLING_EXEMPT_APPS", default_value = "")]
    pub billing_exempt_apps: String,
    /// Comma-separated allowed browser origins; unset or `*` = any origin (the API uses bearer
    /// tokens, never cookies).
    #[arg(long, env = "CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Largest accepted request body.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Highest change `schemaVersion` accepted (above: 422).
    #[arg(long, env = "MAX_SCHEMA_VERSION", default_value_t = 1)]
    pub max_schema_version: u32,
    /// Pushes, pulls and stream opens per minute allowed to each user, sustained (0 = no
    /// limit); over it: 429 `rate_limited` with `Retry-After`.
    #[arg(long, env = "RATE_LIMIT_PER_MINUTE", default_value_t = 1200)]
    pub rate_limit_per_minute: u32,
    /// How many of those a user may send at once above the sustained rate.
    #[arg(long, env = "RATE_LIMIT_BURST", default_value_t = 300)]
    pub rate_limit_burst: u32,
    /// Requests per minute per client IP that fail authentication (0 = no limit).
    #[arg(long, env = "RATE_LIMIT_IP_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_ip_per_minute: u32,
    #[arg(long, env = "RATE_LIMIT_IP_BURST", default_value_t = 60)]
    pub rate_limit_ip_burst: u32,
    /// Open connections at most (live streams included); more wait to be accepted.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// A request's headers must arrive within this long.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub header_timeout_ms: u64,
    /// A connection that neither reads nor writes for this long is closed (live streams
    /// send a heartbeat or ping well within it).
    #[arg(long, env = "IDLE_TIMEOUT_MS", default_value_t = 75_000)]
    pub idle_timeout_ms: u64,
    /// A request's whole body must arrive within this long (408 otherwise).
    #[arg(long, env = "BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub body_timeout_ms: u64,
    /// Interval of the `: heartbeat` comments on SSE streams (tests shorten it).
    #[arg(long, env = "SSE_HEARTBEAT_MS", default_value_t = 30_000, hide = true)]
    pub sse_heartbeat_ms: u64,
    /// Notifications a live stream may fall behind by on the feed of its user (and the feed's
    /// router on the announcements of all pushes) before it re-reads from its cursor (tests
    /// and the load harness shrink it).
    #[arg(long, env = "BROADCAST_CAPACITY", default_value_t = 256, hide = true)]
    pub broadcast_capacity: usize,
    /// Development mode: allows running without auth configuration (a random HS256 secret is
    /// generated) and enables `POST /dev/token {userId}`. Never use in production.
    #[arg(long)]
    pub dev: bool,
}

impl Config {
    /// A configuration for tests and embedding: defaults, no auth, not dev.
    pub fn for_tests(database_url: impl Into<String>) -> Config {
        Config::parse_from(["mana-sync-server", "--database-url", &database_url.into()])
    }
}

/// Whether a `DATABASE_URL` selects the PostgreSQL backend.
pub fn is_postgres(database_url: &str) -> bool {
    database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
}
