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

/// An AES-256-GCM key for WebCrypto, from raw bytes.
async fn aes_key(key: &[u8; 32], usage: &str) -> Result<JsValue, JsCodedError> {
    let raw = Uint8Array::from(&key[..]);
    let usages = js_sys::Array::of1(&usage.into());
    let key = JsFuture::from(
        subtle()?
            .import_key_with_str("raw", &raw, "AES-GCM", false, &usages)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err);
    raw.fill(0, 0, 32);
    key
}

fn gcm_params(iv: &[u8]) -> Result<Object, JsCodedError> {
    let params = Object::new();
    Reflect::set(&params, &"name".into(), &"AES-GCM".into()).map_err(js_err)?;
    Reflect::set(&params, &"iv".into(), &Uint8Array::from(iv).into()).map_err(js_err)?;
    Ok(params)
}

/// AES-256-GCM by WebCrypto (off the main thread), no associated data: ciphertext ‖ 16-byte
/// tag, the same bytes as `backup::seal::encrypt_in_place`.
pub async fn aes_gcm_encrypt(
    key: &[u8; 32],
    iv: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, JsCodedError> {
    let key = aes_key(key, "encrypt").await?;
    let out = JsFuture::from(
        subtle()?
            .encrypt_with_object_and_u8_array(&gcm_params(iv)?, &key.unchecked_into(), plaintext)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    Ok(Uint8Array::new(&out).to_vec())
}

/// The inverse of [`aes_gcm_encrypt`]; `Ok(None)` when the tag does not verify.
pub async fn aes_gcm_decrypt(
    key: &[u8; 32],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Option<Vec<u8>>, JsCodedError> {
    let key = aes_key(key, "decrypt").await?;
    let out = JsFuture::from(
        subtle()?
            .decrypt_with_object_and_u8_array(&gcm_params(iv)?, &key.unchecked_into(), ciphertext)
            .map_err(js_err)?,
    )
    .await;
    // WebCrypto rejects a tag that does not verify with an `OperationError`.
    match out {
        Ok(out) => Ok(Some(Uint8Array::new(&out).to_vec())),
        Err(e)
            if Reflect::get(&e, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                .as_deref()
                == Some("OperationError") =>
        {
            Ok(None)
        }
        Err(e) => Err(js_err(e)),
    }
}

/// SHA-256 by WebCrypto (off the main thread).
pub async fn sha256(bytes: &[u8]) -> Result<[u8; 32], JsCodedError> {
    let out = JsFuture::from(
        subtle()?
            .digest_with_str_and_u8_array("SHA-256", bytes)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    let mut hash = [0u8; 32];
    Uint8Array::new(&out).copy_to(&mut hash);
    Ok(hash)
}
