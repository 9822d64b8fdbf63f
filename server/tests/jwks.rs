//! RS256 tokens verified with keys from a JWKS endpoint (`MANA_JWKS_URL`).
//! The key pair in `fixtures/` is a throwaway generated for this test only.

mod common;

use common::TestServer;
use serde_json::{json, Value};

const KEY_DER: &[u8] = include_bytes!("fixtures/rs256_test_key.der");
const JWKS: &str = include_str!("fixtures/rs256_test_key.jwks.json");

fn rs256(sub: &str, kid: &str, ttl: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        &json!({"sub": sub, "exp": now + ttl}),
        &jsonwebtoken::EncodingKey::from_rsa_der(KEY_DER),
    )
    .unwrap()
}

#[tokio::test]
async fn rs256_tokens_are_verified_against_the_jwks() {
    let jwks = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(|| async { ([("content-type", "application/json")], JWKS.to_owned()) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, jwks).await.unwrap() });

    let s = TestServer::start_with(|c| {
        c.mana_jwt_secret = None;
        c.mana_jwks_url = Some(url);
    })
    .await;
    let pull = |token: String| {
        let http = s.http.clone();
        let base = s.base.clone();
        async move {
            let r = http
                .get(format!("{base}/sync/notes/pull"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let good = rs256("carol", "test-key-1", 3600);
    assert_eq!(pull(good.clone()).await.0, 200);

    let (status, body) = pull(rs256("carol", "unknown-kid", 3600)).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = pull(rs256("carol", "test-key-1", -3600)).await;
    assert_eq!(status, 401, "expired");
    // Tampered payload: signature no longer matches.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(pull(parts.join(".")).await.0, 401);
    // HS256 is not accepted when no secret is configured.
    assert_eq!(pull(common::token("carol", 3600)).await.0, 401);
}
