//! Connection limits (issue #13): idle connections are closed, a trickled header or body
//! does not hold a request open, a connection limit keeps descriptors for live work, and live
//! streams survive the idle timeout through their heartbeats and pings.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

fn tight(c: &mut mana_sync_server::Config) {
    c.max_connections = 20;
    c.idle_timeout_ms = 400;
    c.header_timeout_ms = 400;
    c.body_timeout_ms = 400;
    c.sse_heartbeat_ms = 100;
}

fn addr(s: &TestServer) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; what it sent, or `None` after `within`.
async fn until_closed(tcp: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn idle_connections_past_the_limit_neither_starve_health_nor_stay_open() {
    let s = TestServer::start_with(tight).await;
    let mut idle = Vec::new();
    for _ in 0..60 {
        idle.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    let t0 = Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        s.http.get(format!("{}/health", s.base)).send(),
    )
    .await
    .expect("/health answers while 60 idle connections wait")
    .unwrap();
    assert_eq!(health.status(), 200);
    println!("/health answered after {:?}", t0.elapsed());
    for tcp in &mut idle {
        assert!(
            until_closed(tcp, Duration::from_secs(10)).await.is_some(),
            "an idle connection was closed"
        );
    }
}

#[tokio::test]
async fn a_trickled_header_is_cut_off() {
    let s = TestServer::start_with(tight).await;
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    let t0 = Instant::now();
    // One header byte every 100 ms keeps the connection active, but the headers never end.
    let trickle = async {
        for _ in 0..50 {
            if tcp.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    trickle.await;
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the server closed the connection before the trickle ended"
    );
}

#[tokio::test]
async fn a_trickled_body_gets_408() {
    let s = TestServer::start_with(tight).await;
    let mut tcp = TcpStream::connect(addr(&s)).await.unwrap();
    let head = format!(
        "POST /sync/notes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        token("alice", 3600)
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    tokio::spawn(async move {
        for _ in 0..50 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(4), async {
        while !String::from_utf8_lossy(&got).contains("request_timeout") {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn live_streams_outlive_the_idle_timeout() {
    let s = TestServer::start_with(tight).await;
    let alice = token("alice", 3600);
    let mut sse = s
        .http
        .get(format!("{}/sync/notes/stream?collections=notes", s.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        serde_json::json!({"type": "auth", "token": alice}).to_string(),
    ))
    .await
    .unwrap();
    let t0 = Instant::now();
    let mut pings = 0;
    // Three idle timeouts long: both streams stay up.
    while t0.elapsed() < Duration::from_millis(1200) {
        tokio::select! {
            chunk = sse.next() => assert!(matches!(chunk, Some(Ok(_))), "SSE ended"),
            m = ws.next() => match m {
                Some(Ok(Message::Ping(_))) => pings += 1,
                Some(Ok(Message::Text(_) | Message::Pong(_))) => {}
                other => panic!("WebSocket ended: {other:?}"),
            },
        }
    }
    assert!(pings >= 3, "{pings} pings");
}
