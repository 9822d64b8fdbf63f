//! Rate limits (the 429 of the protocol): per user on push, pull and stream opens, and per
//! client IP on requests that fail authentication. Over the limit: `429 {code:"rate_limited"}`
//! with `Retry-After` in whole seconds, which the client's sync engine waits out. Token
//! buckets from `governor`; the defaults are far above what a syncing client sends.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// Every this many checks, buckets that are full again are forgotten (memory stays bounded by
/// the recently active users and IPs).
const SWEEP_EVERY: u64 = 4096;

pub struct RateLimits {
    users: Option<DefaultKeyedRateLimiter<String>>,
    ips: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

/// `per_minute` sustained with bursts of up to `burst`; `None` (no limit) for 0.
fn quota(per_minute: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_minute)?;
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Some(Quota::per_minute(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(user: (u32, u32), ip: (u32, u32)) -> RateLimits {
        RateLimits {
            users: quota(user.0, user.1).map(RateLimiter::keyed),
            ips: quota(ip.0, ip.1).map(RateLimiter::keyed),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// One push, pull or stream open by `user`.
    pub fn check_user(&self, user: &str) -> Result<(), AppError> {
        self.sweep();
        let Some(limiter) = &self.users else {
            return Ok(());
        };
        limiter
            .check_key(&user.to_owned())
            .map_err(|wait| self.limited(wait.wait_time_from(self.clock.now())))
    }

    /// One request from `ip` that failed authentication. Unknown IPs (an embedded router
    /// without connection info) are not limited.
    pub fn check_ip(&self, ip: Option<IpAddr>) -> Result<(), AppError> {
        self.sweep();
        let (Some(limiter), Some(ip)) = (&self.ips, ip) else {
            return Ok(());
        };
        limiter
            .check_key(&ip)
            .map_err(|wait| self.limited(wait.wait_time_from(self.clock.now())))
    }

    fn limited(&self, wait: std::time::Duration) -> AppError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        AppError::rate_limited(secs.max(1))
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            if let Some(l) = &self.users {
                l.retain_recent();
            }
            if let Some(l) = &self.ips {
                l.retain_recent();
            }
        }
    }
}
