//! `POST /sync/{appId}` (push), `GET /sync/{appId}/pull` and `POST /dev/token`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use mana_sync::protocol::{PullResponse, ValidChange, MAX_CHANGES_PER_PUSH};
use mana_sync::{Change, SyncResponse};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::AuthUser;
use crate::error::AppError;
use crate::store::{self, Cursor, PageQuery, PushRequest};
use crate::{AppState, PushEvent};

pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 5000;

/// A changeset whose changes are parsed one by one, so that an error names its index.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawChangeset<'a> {
    client_id: String,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default, borrow)]
    changes: Vec<&'a RawValue>,
}

pub(crate) fn body_rejection(rej: BytesRejection) -> AppError {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::payload_too_large("payload_too_large", "request body exceeds MAX_BODY_BYTES")
    } else {
        AppError::bad_request("invalid_body", rej.body_text())
    }
}

pub(crate) fn check_app_id(app_id: &str) -> Result<(), AppError> {
    if app_id.is_empty() || app_id.len() > 200 || app_id.chars().any(char::is_control) {
        return Err(AppError::bad_request("invalid_app_id", "invalid appId"));
    }
    Ok(())
}

/// Parses a `since` cursor; empty = absent (first sync).
pub(crate) fn parse_cursor(s: Option<&str>) -> Result<Option<Cursor>, AppError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => Cursor::parse(s).map(Some).ok_or_else(|| {
            AppError::bad_request("invalid_cursor", "since is not a cursor of this server")
        }),
    }
}

fn schema_too_new(v: u32, max: u32) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "schema_version_unsupported",
        format!("schemaVersion {v} is above this server's maximum {max}"),
    )
}

pub async fn push(
    State(st): State<AppState>,
    Path(app_id): Path<String>,
    user: AuthUser,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncResponse>, AppError> {
    let started = std::time::Instant::now();
    let body = body.map_err(body_rejection)?;
    check_app_id(&app_id)?;
    let raw: RawChangeset = serde_json::from_slice(&body).map_err(|e| {
        AppError::bad_request("malformed_json", format!("body is not a changeset: {e}"))
    })?;
    if raw.changes.len() > MAX_CHANGES_PER_PUSH {
        return Err(AppError::payload_too_large(
            "too_many_changes",
            format!(
                "{} changes in one push; at most {MAX_CHANGES_PER_PUSH}",
                raw.changes.len()
            ),
        ));
    }
    if raw.client_id.trim().is_empty() {
        return Err(AppError::bad_request(
            "invalid_client_id",
            "clientId is empty",
        ));
    }
    if let Some(v) = raw.schema_version {
        if v > st.max_schema_version {
            return Err(schema_too_new(v, st.max_schema_version));
        }
    }
    let since = match &raw.since {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => parse_cursor(Some(s))?,
        Some(Value::Number(n)) => parse_cursor(Some(&n.to_string()))?,
        Some(_) => {
            return Err(AppError::bad_request(
                "invalid_cursor",
                "since must be a string",
            ))
        }
    };
    let mut changes: Vec<ValidChange> = Vec::with_capacity(raw.changes.len());
    for (i, r) in raw.changes.iter().enumerate() {
        let c: Change = serde_json::from_str(r.get()).map_err(|e| {
            AppError::bad_request("invalid_change", format!("changes[{i}]: {e}")).with_index(i)
        })?;
        if c.schema_version() > st.max_schema_version {
            return Err(schema_too_new(c.schema_version(), st.max_schema_version).with_index(i));
        }
        // The one validation, shared with the client; the plan takes only validated changes.
        let c = ValidChange::new(c).map_err(|e| {
            AppError::bad_request(e.code().as_str(), format!("changes[{i}]: {e}")).with_index(i)
        })?;
        changes.push(c);
    }
    let client_id = raw.client_id;

    st.billing.check(&user.user_id, &app_id).await?;
    let viewer = st.memberships.viewer(&user.user_id).await;
    let outcome = store::push(
        st.store.as_ref(),
        PushRequest {
            app_id: app_id.clone(),
            viewer: viewer.clone(),
            client_id: client_id.clone(),
            changes,
        },
    )
    .await?;
    st.metrics.pushes.inc();
    st.metrics.changes.inc_by(outcome.applied.len() as u64);
    st.metrics
        .push_seconds
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(
        app = %app_id, user = %user.user_id, applied = outcome.applied.len(),
        duplicates = outcome.duplicates, "push committed"
    );
    if !outcome.applied.is_empty() {
        // No receiver is fine: nobody is listening.
        let _ = st.events.send(Arc::new(PushEvent {
            committed: std::time::Instant::now(),
            app_id: app_id.clone(),
            client_id: client_id.clone(),
            changes: outcome.applied,
        }));
    }
    let page = st
        .store
        .page(PageQuery {
            app_id,
            viewer,
            collections: None,
            since,
            limit: DEFAULT_LIMIT,
            exclude_client: Some(client_id),
        })
        .await?;
    Ok(Json(SyncResponse {
        server_changes: page.changes,
        conflicts: outcome.conflicts,
        synced_until: page.next.to_string(),
        has_more: page.has_more,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullParams {
    collection: Option<String>,
    collections: Option<String>,
    since: Option<String>,
    limit: Option<String>,
    /// Leave out this client's own pushes (it has them), as a push answer does.
    client_id: Option<String>,
}

/// `collection=a` or `collections=a,b`; none = every table.
pub(crate) fn parse_collections(a: Option<&str>, b: Option<&str>) -> Option<Vec<String>> {
    let list: Vec<String> = [a, b]
        .into_iter()
        .flatten()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

pub async fn pull(
    State(st): State<AppState>,
    Path(app_id): Path<String>,
    user: AuthUser,
    params: Result<Query<PullParams>, QueryRejection>,
) -> Result<Json<PullResponse>, AppError> {
    check_app_id(&app_id)?;
    let Query(p) = params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let limit = match p.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 => n.min(MAX_LIMIT),
            _ => {
                return Err(AppError::bad_request(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_LIMIT}"),
                ))
            }
        },
    };
    let since = parse_cursor(p.since.as_deref())?;
    st.billing.check(&user.user_id, &app_id).await?;
    let viewer = st.memberships.viewer(&user.user_id).await;
    let page = st
        .store
        .page(PageQuery {
            app_id,
            viewer,
            collections: parse_collections(p.collection.as_deref(), p.collections.as_deref()),
            since,
            limit,
            exclude_client: p.client_id.filter(|c| !c.trim().is_empty()),
        })
        .await?;
    Ok(Json(PullResponse {
        server_changes: page.changes,
        synced_until: page.next.to_string(),
        has_more: page.has_more,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevTokenRequest {
    user_id: String,
}

/// `POST /dev/token {userId}` → `{token}` (only with `--dev`): an HS256 token valid for a day.
pub async fn dev_token(
    State(st): State<AppState>,
    body: Result<Json<DevTokenRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = body.map_err(|e| AppError::bad_request("malformed_json", e.body_text()))?;
    if req.user_id.trim().is_empty() {
        return Err(AppError::bad_request("invalid_user_id", "userId is empty"));
    }
    let token = st.auth.sign(&req.user_id, Duration::from_secs(24 * 3600))?;
    Ok(Json(serde_json::json!({ "token": token })))
}
