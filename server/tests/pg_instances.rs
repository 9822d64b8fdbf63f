//! Two real `mana-sync-server` processes on one PostgreSQL database (docs/deployment.md): a
//! push to instance A reaches an SSE client and a WebSocket client of instance B within 1 s
//! (LISTEN/NOTIFY), and a pull on B sees it.
//!
//! Needs `MANA_TEST_DATABASE_URL` (scripts/ci/pg.sh provides it); skipped without it.

mod common;

use std::time::{Duration, Instant};

use common::bin::{server_command, spawn_listening, KillOnDrop};
use common::ws::{next_json, open_ws};
use common::{hlc, insert, token, Client, SseReader, SECRET};
use serde_json::{json, Value};

/// The bound of issue #11: a push to one instance reaches the other's streams within it.
const BOUND: Duration = Duration::from_secs(1);
const ROUNDS: usize = 5;

/// Both instances, started together (they migrate the fresh database under one advisory
/// lock), sharing the JWT secret so a token verifies on either.
fn start_two(url: &str) -> [(KillOnDrop, String); 2] {
    std::thread::scope(|s| {
        let start = || {
            s.spawn(|| {
                let mut cmd = server_command(url);
                cmd.env("MANA_JWT_SECRET", SECRET);
                let (child, base) = spawn_listening(&mut cmd);
                (KillOnDrop(child), base)
            })
        };
        let (a, b) = (start(), start());
        [a.join().unwrap(), b.join().unwrap()]
    })
}

fn client(base: &str, client_id: &str) -> Client {
    Client {
        base: base.to_owned(),
        http: reqwest::Client::new(),
        token: token("alice", 3600),
        client_id: client_id.to_owned(),
        cursor: None,
    }
}

async fn open_sse(base: &str, client_id: &str) -> SseReader {
    let resp = reqwest::Client::new()
        .get(format!("{base}/sync/notes/stream?clientId={client_id}"))
        .bearer_auth(token("alice", 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    SseReader::new(resp)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_one_instance_reaches_streams_of_another_within_a_second() {
    let test = "a_push_to_one_instance_reaches_streams_of_another_within_a_second";
    let Some(url) = common::pg::fresh_database_or_skip(test).await else {
        return;
    };
    let [(_a, a_base), (_b, b_base)] = start_two(&url);
    assert_ne!(a_base, b_base);

    let mut sse = open_sse(&b_base, "sse-on-b").await;
    let backlog = sse
        .next(Duration::from_secs(5))
        .await
        .expect("backlog event");
    let page: Value = serde_json::from_str(&backlog.data).unwrap();
    assert_eq!(page["serverChanges"], json!([]));
    let ws_url = format!("{}/ws", b_base.replacen("http://", "ws://", 1));
    let mut ws = open_ws(&ws_url, &token("alice", 3600), "ws-on-b").await;

    let pusher = client(&a_base, "pusher-on-a");
    let (mut sse_ms, mut ws_ms, mut ack_ms) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let id = format!("n{round}");
        let change = insert("notes", &id, json!({"round": round}), &hlc(round as u64, 1));
        // The waits start before the push, so the bound counts from the push's start.
        let t0 = Instant::now();
        let (ev, frame, acked) = tokio::join!(
            async { (sse.next(BOUND).await, t0.elapsed()) },
            async { (next_json(&mut ws, BOUND).await, t0.elapsed()) },
            async {
                pusher.push("notes", vec![change]).await;
                t0.elapsed()
            },
        );
        let (ev, sse_at) = ev;
        let ev = ev.unwrap_or_else(|| panic!("round {round}: no SSE event on B within 1 s"));
        let page: Value = serde_json::from_str(&ev.data).unwrap();
        let ids: Vec<&str> = page["serverChanges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [id.as_str()], "round {round}");
        let (frame, ws_at) = frame;
        let frame = frame.unwrap_or_else(|| panic!("round {round}: no WebSocket frame within 1 s"));
        assert_eq!(
            frame,
            json!({"type": "sync-available", "appId": "notes", "table": "notes"})
        );
        sse_ms.push(ms(sse_at));
        ws_ms.push(ms(ws_at));
        ack_ms.push(ms(acked));
    }
    eprintln!(
        "{test}: from the push's start on A, ms per round: ack {ack_ms:.1?}, \
         SSE on B {sse_ms:.1?}, WebSocket on B {ws_ms:.1?}"
    );

    // And a pull on B sees every push made on A.
    let mut reader = client(&b_base, "reader-on-b");
    let got = reader.pull_all("notes").await;
    let mut ids: Vec<String> = got.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    let want: Vec<String> = (0..ROUNDS).map(|r| format!("n{r}")).collect();
    assert_eq!(ids, want);
}
