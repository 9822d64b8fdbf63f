//! WebCrypto PBKDF2-SHA256: ~6× faster than the pure-Rust crate in wasm for 600,000
//! iterations (docs/backup.md), and the same bytes (the backup test vectors prove it natively).

use crate::error_code::ErrorCode;
use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use zeroize::Zeroizing;

use super::error::JsCodedError;

fn subtle() -> Result<web_sys::SubtleCrypto, JsCodedError> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())
        .ok()
        .filter(|c| !c.is_undefined())
        .ok_or_else(|| JsCodedError::new(ErrorCode::Internal, "WebCrypto is not available"))?;
    let subtle = Reflect::get(&crypto, &"subtle".into())
        .ok()
        .filter(|s| !s.is_undefined())
        .ok_or_else(|| {
            JsCodedError::new(
                ErrorCode::Internal,
                "crypto.subtle is not available (insecure context?)",
            )
        })?;
    Ok(subtle.unchecked_into())
}

fn js_err(e: JsValue) -> JsCodedError {
    JsCodedError::new(ErrorCode::Internal, format!("WebCrypto: {e:?}"))
}

/// The 32-byte PBKDF2-HMAC-SHA256 output, used directly as the AES-256 key.
pub async fn pbkdf2_sha256(
    passphrase: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<Zeroizing<[u8; 32]>, JsCodedError> {
    let subtle = subtle()?;
    let pass = Uint8Array::from(passphrase.as_bytes());
    let usages = js_sys::Array::of1(&"deriveBits".into());
    let base = JsFuture::from(
        subtle
            .import_key_with_str("raw", &pass, "PBKDF2", false, &usages)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    pass.fill(0, 0, pass.length());
    let params = Object::new();
    for (k, v) in [
        ("name", JsValue::from_str("PBKDF2")),
        ("hash", JsValue::from_str("SHA-256")),
        ("salt", Uint8Array::from(salt).into()),
        ("iterations", JsValue::from(iterations)),
    ] {
        Reflect::set(&params, &k.into(), &v).map_err(js_err)?;
    }
    let bits = JsFuture::from(
        subtle
            .derive_bits_with_object(&params, &base.unchecked_into(), 256)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    let bits = Uint8Array::new(&bits);
    let mut key = Zeroizing::new([0u8; 32]);
    bits.copy_to(&mut key[..]);
    bits.fill(0, 0, 32);
    Ok(key)
}
