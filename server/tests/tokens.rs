//! Token and start-up hardening (issue #13): `nbf`, the pinned HMAC algorithm, the secret's
//! minimum length, and `--dev` refused beside a real secret or JWKS.

mod common;

use common::*;
use jsonwebtoken::Algorithm;
use mana_sync_server::{AppState, Config};
use serde_json::{json, Value};

async fn pull_status(s: &TestServer, token: &str) -> (u16, Value) {
    let r = s
        .http
        .get(format!("{}/sync/notes/pull?collection=notes", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused_and_one_valid_now_accepted() {
    let s = TestServer::start().await;
    let now = now_secs();
    let later = signed(
        json!({"sub": "alice", "exp": now + 7200, "nbf": now + 3600}),
        Algorithm::HS256,
        SECRET,
    );
    let (status, body) = pull_status(&s, &later).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert!(body["message"].as_str().unwrap().contains("nbf"), "{body}");
    // Within the 30 s leeway, and in the past: fine.
    for nbf in [now + 10, now - 60] {
        let ok = signed(
            json!({"sub": "alice", "exp": now + 7200, "nbf": nbf}),
            Algorithm::HS256,
            SECRET,
        );
        assert_eq!(pull_status(&s, &ok).await.0, 200, "nbf {nbf}");
    }
}

#[tokio::test]
async fn hmac_tokens_other_than_hs256_are_refused_even_with_the_right_secret() {
    let s = TestServer::start().await;
    let claims = json!({"sub": "alice", "exp": now_secs() + 3600});
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let (status, body) = pull_status(&s, &signed(claims.clone(), alg, SECRET)).await;
        assert_eq!(status, 401, "{alg:?}");
        assert!(
            body["message"].as_str().unwrap().contains("HS256"),
            "{body}"
        );
    }
    assert_eq!(
        pull_status(&s, &signed(claims, Algorithm::HS256, SECRET))
            .await
            .0,
        200
    );
}

fn config(tweak: impl FnOnce(&mut Config)) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::for_tests(format!("sqlite://{}", dir.path().join("s.db").display()));
    tweak(&mut c);
    AppState::new(&c).map(|_| ())
}

#[test]
fn a_secret_shorter_than_32_bytes_is_refused_at_start_up() {
    for short in ["abc", "0123456789abcdef0123456789abcde"] {
        let err = config(|c| c.mana_jwt_secret = Some(short.into())).unwrap_err();
        assert!(err.contains("at least 32"), "{err}");
    }
    config(|c| c.mana_jwt_secret = Some("0123456789abcdef0123456789abcdef".into())).unwrap();
}

#[test]
fn dev_mode_is_refused_beside_a_real_secret_or_jwks() {
    let secret = "0123456789abcdef0123456789abcdef".to_string();
    let err = config(|c| {
        c.dev = true;
        c.mana_jwt_secret = Some(secret.clone());
    })
    .unwrap_err();
    assert!(err.contains("--dev cannot be combined"), "{err}");
    let err = config(|c| {
        c.dev = true;
        c.mana_jwks_url = Some("https://auth.example.com/.well-known/jwks.json".into());
    })
    .unwrap_err();
    assert!(err.contains("--dev cannot be combined"), "{err}");
    config(|c| c.dev = true).unwrap();
}
