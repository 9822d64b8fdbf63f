//! A WebSocket client of `/ws`: the auth frame first, then JSON frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects to `url` (`ws://…/ws`), authenticates with `token` as `client_id`, and expects
/// `auth-ok`.
pub async fn open_ws(url: &str, token: &str, client_id: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": token, "clientId": client_id}).to_string(),
    ))
    .await
    .unwrap();
    let ok = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("auth answer");
    assert_eq!(ok["type"], "auth-ok", "{ok}");
    ws
}

/// The next text frame as JSON, or `None` when none arrives `within`.
pub async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    tokio::time::timeout(within, async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).ok();
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
