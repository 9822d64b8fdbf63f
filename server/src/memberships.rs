//! Which shared spaces a user belongs to (docs/protocol.md, "Notifications and visibility").
//!
//! Two providers, or none (then a user only has their personal space):
//! - the auth service (`MANA_AUTH_URL`): `GET {MANA_AUTH_URL}/api/v1/internal/users/{userId}/memberships`
//!   with `X-Service-Key: {MANA_SERVICE_KEY}`, answering `[{ organizationId, role }]`; each
//!   user's answer is cached for `MEMBERSHIPS_CACHE_SECS` (5 minutes). When the service is
//!   unreachable or answers something else, the request goes on with no shared spaces
//!   (fail-open, logged): an auth-service outage must not stop personal sync.
//! - a static JSON file (`MEMBERSHIPS_FILE`) for self-hosters:
//!   `{ "<userId>": [{ "organizationId": "team-1", "role": "member" }], … }`, read once at
//!   start-up; a file that is not exactly that refuses the start.
//!
//! A space's id is the organization's id. Roles are validated and kept out of the rules:
//! members read a space's rows, only a row's author writes it.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::cache::TtlCache;
use crate::store::{Viewer, PERSONAL_PREFIX};

/// How long a user's answer from the auth service is used.
pub const DEFAULT_CACHE: Duration = Duration::from_secs(300);
/// A lookup that takes longer counts as unreachable (the request waits for it).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest answer read; a user in more organizations than fit is a broken answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
const MAX_MEMBERSHIPS: usize = 10_000;
const MAX_ID_BYTES: usize = 256;
const MAX_ROLE_BYTES: usize = 64;

/// One membership, as the auth service and the static file spell it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub organization_id: String,
    pub role: String,
}

/// Why the memberships configuration refuses the start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipsConfigError {
    #[error("MANA_AUTH_URL and MEMBERSHIPS_FILE are both set: memberships come from one of them")]
    TwoSources,
    #[error("MANA_AUTH_URL {0:?} is not an http:// or https:// URL")]
    BadAuthUrl(String),
    #[error("MANA_AUTH_URL needs MANA_SERVICE_KEY: the memberships endpoint is an internal one")]
    NoServiceKey,
    #[error("MEMBERSHIPS_FILE {path}: {source}")]
    FileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("MEMBERSHIPS_FILE {path}: {message} (expected {{\"<userId>\": [{{\"organizationId\": \"…\", \"role\": \"…\"}}]}})")]
    FileInvalid { path: PathBuf, message: String },
}

impl MembershipsConfigError {
    pub fn code(&self) -> &'static str {
        match self {
            MembershipsConfigError::TwoSources => "memberships_two_sources",
            MembershipsConfigError::BadAuthUrl(_) => "memberships_bad_auth_url",
            MembershipsConfigError::NoServiceKey => "memberships_no_service_key",
            MembershipsConfigError::FileUnreadable { .. } => "memberships_file_unreadable",
            MembershipsConfigError::FileInvalid { .. } => "memberships_file_invalid",
        }
    }
}

/// Where memberships come from, as configured.
#[derive(Debug, Clone, Default)]
pub struct MembershipsConfig {
    pub auth_url: Option<String>,
    pub service_key: Option<String>,
    pub file: Option<PathBuf>,
    pub cache_ttl: Duration,
}

pub struct Memberships {
    source: Source,
}

enum Source {
    None,
    Static(HashMap<String, Arc<[String]>>),
    Service(Service),
}

struct Service {
    base: reqwest::Url,
    key: String,
    http: reqwest::Client,
    cache: TtlCache<Arc<[String]>>,
}

impl Memberships {
    /// Memberships from nowhere: every user only has their personal space.
    pub fn none() -> Memberships {
        Memberships {
            source: Source::None,
        }
    }

    pub fn new(config: &MembershipsConfig) -> Result<Memberships, MembershipsConfigError> {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
        let source = match (nonempty(&config.auth_url), &config.file) {
            (Some(_), Some(_)) => return Err(MembershipsConfigError::TwoSources),
            (None, None) => Source::None,
            (None, Some(path)) => Source::Static(read_file(path)?),
            (Some(url), None) => {
                let base = reqwest::Url::parse(url.trim())
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base())
                    .ok_or_else(|| MembershipsConfigError::BadAuthUrl(url.clone()))?;
                let key =
                    nonempty(&config.service_key).ok_or(MembershipsConfigError::NoServiceKey)?;
                Source::Service(Service {
                    base,
                    key,
                    http: reqwest::Client::builder()
                        .timeout(LOOKUP_TIMEOUT)
                        .build()
                        .unwrap_or_default(),
                    cache: TtlCache::new(config.cache_ttl),
                })
            }
        };
        Ok(Memberships { source })
    }

    /// The viewer for a user: their personal space plus the spaces they are a member of.
    /// Never an error: an unreachable auth service means no shared spaces for now.
    pub async fn viewer(&self, user_id: &str) -> Viewer {
        let mut viewer = Viewer::personal(user_id);
        let spaces = match &self.source {
            Source::None => return viewer,
            Source::Static(map) => map.get(user_id).cloned().unwrap_or_default(),
            Source::Service(service) => service.spaces(user_id).await,
        };
        viewer.spaces.extend(spaces.iter().cloned());
        // Authoritative, also when fail-open left it empty: writing into a space not known to
        // be one's own is refused (403, which a client keeps pending and retries).
        viewer.memberships_known = true;
        viewer
    }
}

impl Service {
    async fn spaces(&self, user_id: &str) -> Arc<[String]> {
        if let Some(spaces) = self.cache.get(user_id).await {
            return spaces;
        }
        match self.fetch(user_id).await {
            Ok(spaces) => {
                self.cache.insert(user_id, spaces.clone()).await;
                spaces
            }
            Err(why) => {
                tracing::warn!(
                    user_id,
                    error = %why,
                    "memberships lookup failed: going on without shared spaces"
                );
                Arc::from([])
            }
        }
    }

    async fn fetch(&self, user_id: &str) -> Result<Arc<[String]>, String> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| "auth URL cannot take a path".to_owned())?
            .pop_if_empty()
            .extend(["api", "v1", "internal", "users", user_id, "memberships"]);
        let mut resp = self
            .http
            .get(url)
            .header("x-service-key", &self.key)
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("answer over {MAX_ANSWER_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let list: Vec<Membership> = serde_json::from_slice(&body)
            .map_err(|e| format!("answer is not [{{organizationId, role}}]: {e}"))?;
        spaces_of(list)
    }
}

/// The space ids of a list of memberships, each checked.
fn spaces_of(list: Vec<Membership>) -> Result<Arc<[String]>, String> {
    if list.len() > MAX_MEMBERSHIPS {
        return Err(format!(
            "{} memberships; at most {MAX_MEMBERSHIPS}",
            list.len()
        ));
    }
    list.into_iter()
        .enumerate()
        .map(|(i, m)| {
            check(&m)
                .map(|()| m.organization_id)
                .map_err(|e| format!("[{i}]: {e}"))
        })
        .collect()
}

fn check(m: &Membership) -> Result<(), String> {
    let bad = |s: &str, max: usize| {
        s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control)
    };
    if bad(&m.organization_id, MAX_ID_BYTES) {
        return Err(format!(
            "organizationId must be 1 to {MAX_ID_BYTES} bytes without control characters"
        ));
    }
    if m.organization_id.starts_with(PERSONAL_PREFIX) {
        return Err(format!(
            "organizationId {:?} names a personal space",
            m.organization_id
        ));
    }
    if bad(&m.role, MAX_ROLE_BYTES) {
        return Err(format!(
            "role must be 1 to {MAX_ROLE_BYTES} bytes without control characters"
        ));
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<HashMap<String, Arc<[String]>>, MembershipsConfigError> {
    let text = std::fs::read(path).map_err(|source| MembershipsConfigError::FileUnreadable {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| MembershipsConfigError::FileInvalid {
        path: path.to_owned(),
        message,
    };
    let UserLists(lists) = serde_json::from_slice(&text).map_err(|e| invalid(e.to_string()))?;
    let mut map = HashMap::with_capacity(lists.len());
    for (user, list) in lists {
        if user.trim().is_empty() {
            return Err(invalid("an empty user id".into()));
        }
        let spaces = spaces_of(list).map_err(|e| invalid(format!("user {user:?}{e}")))?;
        if map.insert(user.clone(), spaces).is_some() {
            return Err(invalid(format!("user {user:?} is listed twice")));
        }
    }
    Ok(map)
}

/// The file's object, in order and with duplicate keys kept (a map would silently keep the
/// last of two entries for one user).
struct UserLists(Vec<(String, Vec<Membership>)>);

impl<'de> Deserialize<'de> for UserLists {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UserLists;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of user id → [{organizationId, role}]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<UserLists, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry()? {
                    out.push(entry);
                }
                Ok(UserLists(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(org: &str, role: &str) -> Membership {
        Membership {
            organization_id: org.into(),
            role: role.into(),
        }
    }

    #[test]
    fn memberships_are_checked() {
        assert_eq!(
            &*spaces_of(vec![m("team-1", "owner"), m("t2", "member")]).unwrap(),
            ["team-1", "t2"]
        );
        for bad in [
            m("", "member"),
            m(" ", "member"),
            m("a\nb", "member"),
            m("_personal:bob", "member"),
            m("team", ""),
            m(&"x".repeat(MAX_ID_BYTES + 1), "member"),
        ] {
            assert!(spaces_of(vec![bad.clone()]).is_err(), "{bad:?}");
        }
    }
}
