//! Optional billing gate (docs/protocol.md: 402 when sync is not subscribed).
//!
//! Enabled when `MANA_CREDITS_URL` is set. For a user syncing an app not listed in
//! `BILLING_EXEMPT_APPS`, the server asks `GET {MANA_CREDITS_URL}/api/v1/sync/status?userId={userId}`
//! with header `X-Service-Key: {MANA_SERVICE_KEY}` and expects `{ "active": bool }`; answers are
//! cached for 5 minutes. `active: false` → 402 `payment_required`. When the credits service is
//! unreachable the gate fails open (logged): an outage of billing must not stop people's sync.

use std::collections::HashSet;
use std::time::Duration;

use axum::http::StatusCode;
use serde::Deserialize;

use crate::cache::TtlCache;
use crate::error::AppError;

/// How long a user's answer is used (the seed's 5 minutes).
const TTL: Duration = Duration::from_secs(300);

pub struct Billing {
    url: Option<String>,
    service_key: Option<String>,
    exempt: HashSet<String>,
    http: reqwest::Client,
    cache: TtlCache<bool>,
}

#[derive(Deserialize)]
struct Status {
    active: bool,
}

impl Billing {
    pub fn new(url: Option<String>, service_key: Option<String>, exempt: &str) -> Billing {
        Billing {
            url: url
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_owned()),
            service_key: service_key.filter(|k| !k.is_empty()),
            exempt: exempt
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            cache: TtlCache::new(TTL),
        }
    }

    /// `Ok` when the user may sync this app.
    pub async fn check(&self, user_id: &str, app_id: &str) -> Result<(), AppError> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        if self.exempt.contains(app_id) {
            return Ok(());
        }
        let active = match self.cache.get(user_id).await {
            Some(a) => a,
            None => {
                let mut req = self
                    .http
                    .get(format!("{url}/api/v1/sync/status"))
                    .query(&[("userId", user_id)]);
                if let Some(k) = &self.service_key {
                    req = req.header("x-service-key", k);
                }
                let fetched =
                    async { req.send().await?.error_for_status()?.json::<Status>().await }.await;
                match fetched {
                    Ok(s) => {
                        self.cache.insert(user_id, s.active).await;
                        s.active
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "billing check failed; letting sync through");
                        true
                    }
                }
            }
        };
        if active {
            Ok(())
        } else {
            Err(AppError::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment_required",
                "sync is not part of this account's plan",
            ))
        }
    }
}
