//! `ListQuery`: what `list` and `liveQuery` accept.

use serde::Deserialize;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::error::JsCodedError;
use super::json::{from_js, to_js};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyBounds {
    #[serde(default)]
    pub lower: Option<Value>,
    #[serde(default)]
    pub upper: Option<Value>,
    #[serde(default)]
    pub lower_open: bool,
    #[serde(default)]
    pub upper_open: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Index (field) to read through; absent = primary key (`id`).
    #[serde(default)]
    pub index: Option<String>,
    /// Exact key match (shorthand for a range with equal bounds).
    #[serde(default)]
    pub equals: Option<Value>,
    #[serde(default)]
    pub range: Option<KeyBounds>,
    #[serde(default)]
    pub include_deleted: bool,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub reverse: bool,
}

impl ListQuery {
    pub fn from_js(v: &JsValue) -> Result<ListQuery, JsCodedError> {
        if v.is_undefined() || v.is_null() {
            return Ok(ListQuery::default());
        }
        from_js(v, "invalid_query")
    }

    pub fn key_range(&self) -> Result<Option<rexie::KeyRange>, JsCodedError> {
        let bad =
            |_| JsCodedError::new("invalid_query", "range bounds must be valid IndexedDB keys");
        if let Some(eq) = &self.equals {
            return Ok(Some(rexie::KeyRange::only(&to_js(eq)?).map_err(bad)?));
        }
        let Some(r) = &self.range else {
            return Ok(None);
        };
        let range = match (&r.lower, &r.upper) {
            (Some(l), Some(u)) => rexie::KeyRange::bound(
                &to_js(l)?,
                &to_js(u)?,
                Some(r.lower_open),
                Some(r.upper_open),
            ),
            (Some(l), None) => rexie::KeyRange::lower_bound(&to_js(l)?, Some(r.lower_open)),
            (None, Some(u)) => rexie::KeyRange::upper_bound(&to_js(u)?, Some(r.upper_open)),
            (None, None) => return Ok(None),
        };
        Ok(Some(range.map_err(bad)?))
    }
}
