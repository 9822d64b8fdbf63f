//! 429 (issue #13): per-user limits on push, pull and stream opens, per-IP limits on requests
//! that fail authentication, answered `{code:"rate_limited"}` with `Retry-After`.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

async fn pull(s: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut req = s
        .http
        .get(format!("{}/sync/notes/pull?collection=notes", s.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_user_over_the_limit_gets_429_with_retry_after_and_others_do_not() {
    let s = TestServer::start_with(|c| {
        c.rate_limit_per_minute = 60;
        c.rate_limit_burst = 3;
    })
    .await;
    let alice = token("alice", 3600);
    for _ in 0..3 {
        assert_eq!(pull(&s, Some(&alice)).await.status(), 200);
    }
    let push = s
        .http
        .post(format!("{}/sync/notes", s.base))
        .bearer_auth(&alice)
        .header("origin", "https://app.example")
        .json(&json!({"clientId": "c", "changes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 429, "pushes count too");
    // A page on another origin may read it.
    let exposed = push.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    let retry: u64 = push.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = push.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another user has their own bucket.
    assert_eq!(pull(&s, Some(&token("bob", 3600))).await.status(), 200);
    // Stream opens count: SSE is refused with the same answer.
    let sse = s
        .http
        .get(format!("{}/sync/notes/stream?collections=notes", s.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 429);
}

#[tokio::test]
async fn failed_authentications_are_limited_per_ip() {
    let s = TestServer::start_with(|c| {
        c.rate_limit_ip_per_minute = 60;
        c.rate_limit_ip_burst = 2;
    })
    .await;
    assert_eq!(pull(&s, None).await.status(), 401);
    assert_eq!(pull(&s, Some("not-a-jwt")).await.status(), 401);
    let r = pull(&s, Some("still-not-a-jwt")).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // A valid token is not held back by the IP's failures.
    assert_eq!(pull(&s, Some(&token("alice", 3600))).await.status(), 200);
}

#[tokio::test]
async fn a_websocket_open_over_the_limit_is_closed_with_4429() {
    let s = TestServer::start_with(|c| {
        c.rate_limit_per_minute = 60;
        c.rate_limit_burst = 1;
    })
    .await;
    let alice = token("alice", 3600);
    assert_eq!(pull(&s, Some(&alice)).await.status(), 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": alice}).to_string(),
    ))
    .await
    .unwrap();
    let mut frames = Vec::new();
    let code = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Text(t) => frames.push(serde_json::from_str::<Value>(&t).unwrap()),
                Message::Close(f) => return f.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(code, Some(4429));
    assert_eq!(frames[0]["code"], "rate_limited");
}
