//! Bearer-token authentication: HS256 with a shared secret (`MANA_JWT_SECRET`) and/or
//! asymmetric keys (RS256/ES256/…) from a JWKS endpoint (`MANA_JWKS_URL`), fetched and cached.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::error::AppError;
use crate::AppState;

/// Keys are refetched at most this often when a token names an unknown `kid`.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);
/// Cached keys are refreshed after this long.
const JWKS_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

pub struct Auth {
    hs256: Option<(DecodingKey, EncodingKey)>,
    jwks: Option<Jwks>,
}

struct Jwks {
    url: String,
    http: reqwest::Client,
    cache: RwLock<Option<(Instant, Arc<JwkSet>)>>,
    refresh: Mutex<Option<Instant>>,
}

impl Auth {
    /// `None` when neither a secret nor a JWKS URL is configured.
    /// The shortest HS256 secret accepted: the hash's output size (RFC 7518 §3.2).
    pub const MIN_SECRET_BYTES: usize = 32;

    pub fn new(secret: Option<&[u8]>, jwks_url: Option<String>) -> Option<Auth> {
        if secret.is_none() && jwks_url.is_none() {
            return None;
        }
        Some(Auth {
            hs256: secret.map(|s| (DecodingKey::from_secret(s), EncodingKey::from_secret(s))),
            jwks: jwks_url.map(|url| Jwks {
                url,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap_or_default(),
                cache: RwLock::new(None),
                refresh: Mutex::new(None),
            }),
        })
    }

    /// Signs an HS256 token (for `POST /dev/token` and tests).
    pub fn sign(&self, user_id: &str, ttl: Duration) -> Result<String, AppError> {
        let (_, key) = self
            .hs256
            .as_ref()
            .ok_or_else(|| AppError::internal("no HS256 secret to sign with"))?;
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .map_err(|e| AppError::internal(format!("signing failed: {e}")))
    }

    /// Verifies a token and returns its subject (the user id).
    pub async fn verify(&self, token: &str) -> Result<String, AppError> {
        self.verify_claims(token).await.map(|c| c.sub)
    }

    /// Verifies a token and returns its claims (long-lived streams end when `exp` passes).
    pub async fn verify_claims(&self, token: &str) -> Result<Claims, AppError> {
        let header = decode_header(token)
            .map_err(|e| AppError::unauthorized(format!("malformed token: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_aud = false;
        // A token not valid yet is refused like an expired one (with the same leeway).
        validation.validate_nbf = true;
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = match header.alg {
            // The secret is an HS256 key: a token that names another HMAC algorithm is not
            // one of ours, whatever it was signed with.
            Algorithm::HS256 => {
                let (key, _) = self.hs256.as_ref().ok_or_else(|| {
                    AppError::unauthorized("HMAC-signed tokens are not accepted here")
                })?;
                decode::<Claims>(token, key, &validation)
            }
            Algorithm::HS384 | Algorithm::HS512 => {
                return Err(AppError::unauthorized(format!(
                    "{:?} tokens are not accepted: HMAC tokens must be HS256",
                    header.alg
                )))
            }
            alg => {
                let jwks = self.jwks.as_ref().ok_or_else(|| {
                    AppError::unauthorized(format!("{alg:?} tokens are not accepted here"))
                })?;
                let key = jwks.key(header.kid.as_deref(), alg).await?;
                decode::<Claims>(token, &key, &validation)
            }
        }
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired".to_owned(),
                ErrorKind::ImmatureSignature => "token not valid yet (nbf)".to_owned(),
                ErrorKind::InvalidSignature => "bad token signature".to_owned(),
                _ => format!("invalid token: {e}"),
            };
            AppError::unauthorized(why)
        })?
        .claims;
        if claims.sub.trim().is_empty() {
            return Err(AppError::unauthorized("token has an empty subject"));
        }
        Ok(claims)
    }
}

impl Jwks {
    async fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AppError> {
        if let Some(set) = self.cached(false).await {
            if let Some(k) = find_key(&set, kid, alg) {
                return Ok(k);
            }
        }
        // Unknown kid (rotation) or stale cache: refetch, rate-limited.
        let set = self.refetch().await?;
        find_key(&set, kid, alg)
            .ok_or_else(|| AppError::unauthorized("token signed with an unknown key"))
    }

    async fn cached(&self, allow_stale: bool) -> Option<Arc<JwkSet>> {
        let c = self.cache.read().await;
        c.as_ref()
            .filter(|(at, _)| allow_stale || at.elapsed() < JWKS_TTL)
            .map(|(_, s)| s.clone())
    }

    async fn refetch(&self) -> Result<Arc<JwkSet>, AppError> {
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < JWKS_MIN_REFRESH) {
            if let Some(set) = self.cached(true).await {
                return Ok(set);
            }
        }
        *last = Some(Instant::now());
        let fetched = async {
            let resp = self.http.get(&self.url).send().await?.error_for_status()?;
            resp.json::<JwkSet>().await
        }
        .await;
        match fetched {
            Ok(set) => {
                let set = Arc::new(set);
                *self.cache.write().await = Some((Instant::now(), set.clone()));
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed");
                self.cached(true)
                    .await
                    .ok_or_else(|| AppError::unavailable("signing keys unavailable"))
            }
        }
    }
}

fn find_key(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let candidates: Vec<_> = match kid {
        Some(kid) => set.find(kid).into_iter().collect(),
        // No kid: only unambiguous when the set has a single key.
        None if set.keys.len() == 1 => set.keys.iter().collect(),
        None => Vec::new(),
    };
    candidates
        .into_iter()
        .filter(|jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|ka| ka.to_string() == format!("{alg:?}"))
        })
        .find_map(|jwk| DecodingKey::from_jwk(jwk).ok())
}

/// When a token expiring at `exp` (unix seconds) stops being valid, as a tokio instant.
pub fn expiry_instant(exp: u64) -> tokio::time::Instant {
    let left = exp.saturating_sub(unix_now());
    tokio::time::Instant::now() + Duration::from_secs(left.min(365 * 24 * 3600))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The authenticated caller and their bearer token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: String,
    pub token: String,
}

/// Extracts `Authorization: Bearer <token>`.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let v = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The client's IP address, when the server runs with connection info (`serve`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp(info.map(|c| c.0.ip())))
    }
}

/// Verifies a request's token under the rate limits: a failure counts against the client's
/// IP (429 once over), a success against the user (429 once over).
pub async fn authenticate(
    state: &AppState,
    token: Option<&str>,
    ip: ClientIp,
) -> Result<Claims, AppError> {
    let verified = match token {
        Some(t) => state.auth.verify_claims(t).await,
        None => Err(AppError::unauthorized("missing bearer token")),
    };
    match verified {
        Ok(claims) => {
            state.rate.check_user(&claims.sub)?;
            Ok(claims)
        }
        Err(e) => {
            state.rate.check_ip(ip.0)?;
            Err(e)
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let ip = ClientIp::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientIp(None));
        let token = bearer(parts).map(str::to_owned);
        let claims = authenticate(state, token.as_deref(), ip).await?;
        Ok(AuthUser {
            user_id: claims.sub,
            token: token.unwrap_or_default(),
        })
    }
}
