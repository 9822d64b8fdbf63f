//! Resource limits before authentication (issue #13): a declared body over MAX_BODY_BYTES is
//! answered 413 before it is sent; a WebSocket message bigger than any protocol frame closes
//! the socket instead of being buffered.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_body_declared_too_large_is_answered_413_before_it_is_sent() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 1024).await;
    let addr = s.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Headers only: a server that waited for the body would never answer.
    let head = format!(
        "POST /sync/notes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n",
        token("alice", 3600)
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || (text.contains("\r\n\r\n") && text.trim_end().ends_with('}')) {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer before the body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "payload_too_large");
    // Unauthenticated too: the limit holds before anything else.
    let r = s
        .http
        .post(format!("{}/sync/notes", s.base))
        .body(vec![b' '; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn a_websocket_message_bigger_than_any_frame_closes_the_socket_before_auth() {
    let s = TestServer::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    let big = "x".repeat(1024 * 1024);
    let _ = ws.send(Message::text(big)).await;
    // Refused for its size (1009, or the connection dropped), not read and then judged as a
    // bad auth frame (4401): the server never buffered it.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .expect("the socket was closed");
    assert!(matches!(ended, None | Some(1009)), "closed with {ended:?}");
    // A normal-sized auth frame on a new socket still works.
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    let auth = serde_json::json!({"type": "auth", "token": token("alice", 3600)});
    ws.send(Message::text(auth.to_string())).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let frame: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(frame["type"], "auth-ok");
}
