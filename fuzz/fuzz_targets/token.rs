//! Token verification (`Auth::verify`, HS256 with a fixed 38-byte secret, no JWKS).
//!
//! Input: a token as is, or, after a leading `S`, `<header JSON>\n<claims JSON>` that is signed
//! here with the secret so the fuzzer gets past the signature to the header and claims checks.
//! Whatever verifies must name HS256, carry a non-empty `sub`, and be neither expired nor not yet
//! valid (beyond the 30 s leeway).
#![no_main]
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use mana_sync_server::auth::Auth;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

const SECRET: &[u8] = b"mana-sync-fuzz-secret-0123456789abcdef";

fn auth() -> &'static Auth {
    static AUTH: OnceLock<Auth> = OnceLock::new();
    AUTH.get_or_init(|| Auth::new(Some(SECRET), None).unwrap())
}

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET).unwrap();
    mac.update(input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{sig}")
}

/// Without JWKS, verification never waits: one poll must finish it.
fn verify(token: &str) -> Result<String, String> {
    let mut fut = pin!(auth().verify(token));
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => r.map_err(|e| e.to_string()),
        Poll::Pending => panic!("HS256-only verification returned Pending"),
    }
}

/// A verified token's header or claims, read as loosely as the verifier reads them: fields it
/// does not know are skipped (an out-of-range number in an unknown claim is no reason to refuse).
fn segment<T: DeserializeOwned>(token: &str, i: usize) -> Option<T> {
    let part = token
        .split('.')
        .nth(i)
        .expect("a verified token has three parts");
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .expect("a verified token's parts are base64url");
    serde_json::from_slice(&bytes).ok()
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Times {
    exp: Option<Value>,
    nbf: Option<Value>,
}

fuzz_target!(|data: &[u8]| {
    let token = match data.strip_prefix(b"S") {
        Some(rest) => {
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let (header, claims) = rest.split_at(split);
            sign(header, claims.get(1..).unwrap_or_default())
        }
        None => match std::str::from_utf8(data) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        },
    };
    let Ok(sub) = verify(&token) else {
        return;
    };
    assert!(!sub.trim().is_empty(), "verified with an empty subject");
    let header: Header = segment(&token, 0).expect("a verified token's header parses");
    assert_eq!(header.alg, "HS256", "verified a {} token", header.alg);
    let Some(times) = segment::<Times>(&token, 1) else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if let Some(nbf) = times.nbf.as_ref().and_then(Value::as_f64) {
        assert!(
            nbf <= (now + 60) as f64,
            "verified a token not valid before {nbf}"
        );
    }
    let exp = times.exp.as_ref().and_then(Value::as_f64);
    assert!(
        exp.is_some_and(|e| e + 60.0 >= now as f64),
        "verified an expired token (exp {exp:?})"
    );
});
