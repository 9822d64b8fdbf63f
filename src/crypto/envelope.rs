//! `enc:1:` + base64url(nonce 12 ‖ AES-256-GCM ciphertext ‖ tag 16) of a field's JSON value,
//! with associated data `collection/id/field` so a ciphertext can't move to another field.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;

use super::gcm::{Gcm, NONCE_LEN, TAG_LEN};
use super::CryptoError;
use crate::strict_json;

pub const ENVELOPE_PREFIX: &str = "enc:1:";

/// Whether a stored value is an envelope.
pub fn is_encrypted(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.starts_with(ENVELOPE_PREFIX))
}

/// An initialised AES-256-GCM instance: the key schedule is computed once and reused for
/// every field (it is zeroized on drop by the `zeroize` feature).
#[derive(Clone)]
pub struct FieldCipher {
    gcm: Gcm,
}

impl FieldCipher {
    pub fn new(key: &[u8; 32]) -> FieldCipher {
        FieldCipher { gcm: Gcm::new(key) }
    }

    fn aad(collection: &str, id: &str, field: &str) -> Vec<u8> {
        format!("{collection}/{id}/{field}").into_bytes()
    }

    /// Seals one field value under the given nonce (which must never repeat for this key).
    pub fn encrypt(
        &self,
        collection: &str,
        id: &str,
        field: &str,
        value: &Value,
        nonce: [u8; NONCE_LEN],
    ) -> String {
        let text = serde_json::to_vec(value).expect("a JSON value always serialises");
        self.encrypt_text(collection, id, field, text, nonce)
    }

    /// Seals a field value given as its JSON text (unchecked: the caller's).
    pub fn encrypt_text(
        &self,
        collection: &str,
        id: &str,
        field: &str,
        mut buf: Vec<u8>,
        nonce: [u8; NONCE_LEN],
    ) -> String {
        self.gcm
            .seal(&nonce, &Self::aad(collection, id, field), &mut buf);
        let mut raw = Vec::with_capacity(NONCE_LEN + buf.len());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&buf);
        let mut out = String::with_capacity(ENVELOPE_PREFIX.len() + raw.len() * 4 / 3 + 4);
        out.push_str(ENVELOPE_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&raw, &mut out);
        out
    }

    /// Opens a stored value. Values that are not envelopes pass through unchanged.
    pub fn decrypt(
        &self,
        collection: &str,
        id: &str,
        field: &str,
        value: &Value,
    ) -> Result<Value, CryptoError> {
        let Value::String(s) = value else {
            return Ok(value.clone());
        };
        let Some(b64) = s.strip_prefix(ENVELOPE_PREFIX) else {
            return Ok(value.clone());
        };
        let buf = self.open_text(collection, id, field, b64)?;
        strict_json::as_text(&buf)
            .ok()
            .and_then(|text| serde_json::from_str(text).ok())
            .ok_or_else(|| CryptoError::decrypt_failed(collection, id, field))
    }

    /// The plaintext bytes (a JSON value's text, unchecked) of an envelope given without its
    /// prefix.
    pub fn open_text(
        &self,
        collection: &str,
        id: &str,
        field: &str,
        b64: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        let fail = || CryptoError::decrypt_failed(collection, id, field);
        let raw = URL_SAFE_NO_PAD
            .decode(b64)
            .or_else(|_| URL_SAFE.decode(b64))
            .map_err(|_| fail())?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(fail());
        }
        let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN].try_into().expect("length checked");
        let mut buf = raw;
        buf.drain(..NONCE_LEN);
        self.gcm
            .open(&nonce, &Self::aad(collection, id, field), &mut buf)
            .map_err(|_| fail())?;
        Ok(buf)
    }
}
