//! Load harness (`make load`, issue #13): one real `mana-sync-server` (release, SQLite in a
//! temp dir, rate limits off) with 1,000 SSE streams and 1,000 WebSockets open while pushes
//! run, plus one deliberately slow SSE reader and one slow WebSocket reader.
//!
//! Measured: push-to-delivery latency (from sending the push to the subscriber reading the
//! change, p50/p99 over every delivery), the server's peak RSS (`VmRSS` of its process),
//! streams that ended early ("dropped") and changes a subscriber never got ("missed"). The
//! slow readers stop reading for a while under a stream of big pushes for their user, so the
//! server falls behind the live feed for them; they must still get every change (resynced
//! from their cursor), and `/metrics` must count the resyncs. Targets: p99 ≤ 100 ms, RSS ≤
//! 250 MB, none dropped, none missed; the program exits 1 when one is not met.
//!
//! Every pusher pushes from the cursor of its last answer, as a client does (`LOAD_SINCE=0`:
//! without one, so that each answer is a first-sync snapshot — what the first version of
//! this harness did by mistake). The slow WebSocket reader pulls from its cursor when told,
//! and every slow reader must get each change exactly once. Also printed, to tell where time
//! goes: push answer times, the server's own push and fan-out histograms (`/metrics`), the
//! CPU of harness and server, and latency by when the push was sent.
//!
//! `LOAD_SSE`, `LOAD_WS` (1000 each), `LOAD_USERS` (100), `LOAD_PUSHES_PER_SEC` (50),
//! `LOAD_SECONDS` (30), `LOAD_SLOW` (1; 0: no slow user), `LOAD_SINCE` (1),
//! `LOAD_BROADCAST_CAPACITY` (64). Needs `ulimit -n` above the client count
//! (scripts/ci/load.sh).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "load-harness-secret-of-at-least-32-bytes";
const APP: &str = "load";
const SLOW_USER: &str = "slow";
/// Changes per push for the slow user, each in a table of its own (one WebSocket frame each),
/// with a payload big enough that its readers' TCP buffers fill while they pause.
const SLOW_BATCH: usize = 100;
const SLOW_PAYLOAD: usize = 2000;
const SLOW_EVERY: Duration = Duration::from_millis(250);
const SLOW_READ_FIRST: Duration = Duration::from_secs(3);
const SLOW_PAUSE: Duration = Duration::from_secs(20);
const DRAIN: Duration = Duration::from_secs(20);
/// How many notifications for its user a stream may fall behind by (`BROADCAST_CAPACITY`;
/// the server's default is 256; the same bounds the feed's router on all announcements). The
/// slow user's feed carries 4 a second, so a reader paused for 20 s falls 80 behind and must
/// be resynced from its cursor.
const BROADCAST_CAPACITY: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn token(user: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "exp": now + 3600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn hlc(n: usize) -> String {
    mana_sync::clock::Hlc::new(1_795_600_800_000 + n as u64, 0, 0x10ad)
        .unwrap()
        .to_string()
}

fn user_of(n: usize, users: usize) -> String {
    format!("u{:03}", n % users)
}

/// When push `n` was sent (the change `c{n}` in table `t{n}`).
struct Sent(Vec<OnceLock<Instant>>);

impl Sent {
    fn latency(&self, n: usize) -> Option<f64> {
        self.0
            .get(n)?
            .get()
            .map(|t| t.elapsed().as_secs_f64() * 1000.0)
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    /// (push number, push-to-delivery ms) of each first delivery.
    latencies_ms: Vec<(usize, f64)>,
    numbers: HashSet<usize>,
    /// Changes received a second time (a resync must not repeat what was delivered).
    duplicates: usize,
    dropped: bool,
}

impl Seen {
    /// Records change `n`; true the first time.
    fn got(&mut self, n: usize) -> bool {
        let first = self.numbers.insert(n);
        self.duplicates += usize::from(!first);
        first
    }
}

fn number(s: &str, prefix: char) -> Option<usize> {
    s.strip_prefix(prefix)?.parse().ok()
}

/// Splits `buf` into complete SSE events, returning the `data` of each.
fn sse_events(buf: &mut String) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let data: Vec<&str> = block
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
    out
}

fn page_ids(data: &str) -> Vec<String> {
    let page: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    page["serverChanges"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn sse_client(
    http: reqwest::Client,
    base: String,
    user: String,
    sent: Arc<Sent>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let resp = http
        .get(format!("{base}/sync/{APP}/stream"))
        .bearer_auth(token(&user))
        .send()
        .await;
    let Ok(resp) = resp.and_then(|r| r.error_for_status()) else {
        seen.dropped = true;
        return seen;
    };
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    let mut first = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return seen,
            chunk = body.next() => {
                let Some(Ok(chunk)) = chunk else {
                    seen.dropped = true;
                    return seen;
                };
                buf.push_str(&String::from_utf8_lossy(&chunk));
                for data in sse_events(&mut buf) {
                    if std::mem::take(&mut first) {
                        ready.fetch_add(1, Ordering::SeqCst);
                    }
                    for id in page_ids(&data) {
                        if let Some(n) = number(&id, 'c') {
                            if seen.got(n) {
                                seen.latencies_ms.extend(sent.latency(n).map(|l| (n, l)));
                            }
                        }
                    }
                }
            }
        }
    }
}

type Ws<S> = tokio_tungstenite::WebSocketStream<S>;

async fn ws_auth<S>(ws: &mut Ws<S>, user: &str) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let auth = json!({"type": "auth", "token": token(user), "clientId": "ws"});
    if ws.send(Message::text(auth.to_string())).await.is_err() {
        return false;
    }
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            return serde_json::from_str::<Value>(t.as_str()).is_ok_and(|v| v["type"] == "auth-ok");
        }
    }
    false
}

async fn ws_client(
    addr: SocketAddr,
    user: String,
    sent: Arc<Sent>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else {
        seen.dropped = true;
        return seen;
    };
    if !ws_auth(&mut ws, &user).await {
        seen.dropped = true;
        return seen;
    }
    ready.fetch_add(1, Ordering::SeqCst);
    loop {
        tokio::select! {
            _ = stop.changed() => return seen,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let frame: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if let Some(n) = frame["table"].as_str().and_then(|t| number(t, 't')) {
                        if seen.numbers.insert(n) {
                            seen.latencies_ms.extend(sent.latency(n).map(|l| (n, l)));
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => {
                    seen.dropped = true;
                    return seen;
                }
            },
        }
    }
}

/// A TCP connection with a small receive buffer: a reader that pauses stalls the server soon.
async fn small_window(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(4096)?;
    sock.connect(addr).await
}

/// Reads for a while, stops reading for `SLOW_PAUSE`, then reads again.
fn paused(started: Instant) -> Option<Duration> {
    let e = started.elapsed();
    (e > SLOW_READ_FIRST && e < SLOW_READ_FIRST + SLOW_PAUSE)
        .then(|| SLOW_READ_FIRST + SLOW_PAUSE - e)
}

/// The slow SSE reader, over raw HTTP/1.1 (chunked) on a small-window socket.
async fn slow_sse(addr: SocketAddr, mut stop: watch::Receiver<bool>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut s) = small_window(addr).await else {
        seen.dropped = true;
        return seen;
    };
    let req = format!(
        "GET /sync/{APP}/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Accept: text/event-stream\r\n\r\n",
        token(SLOW_USER)
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        seen.dropped = true;
        return seen;
    }
    let started = Instant::now();
    let mut raw: Vec<u8> = Vec::new();
    let mut headers_done = false;
    let mut text = String::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(wait) = paused(started) {
            tokio::time::sleep(wait).await;
        }
        let n = tokio::select! {
            _ = stop.changed() => return seen,
            r = s.read(&mut chunk) => match r {
                Ok(0) | Err(_) => { seen.dropped = true; return seen; }
                Ok(n) => n,
            },
        };
        raw.extend_from_slice(&chunk[..n]);
        if !headers_done {
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") || !head.contains("transfer-encoding: chunked") {
                seen.dropped = true;
                return seen;
            }
            raw.drain(..end + 4);
            headers_done = true;
        }
        // De-chunk what is complete.
        while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size_hex = String::from_utf8_lossy(&raw[..line_end]).to_string();
            let Ok(size) = usize::from_str_radix(size_hex.split(';').next().unwrap().trim(), 16)
            else {
                seen.dropped = true;
                return seen;
            };
            if size == 0 {
                seen.dropped = true;
                return seen;
            }
            if raw.len() < line_end + 2 + size + 2 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(
                &raw[line_end + 2..line_end + 2 + size],
            ));
            raw.drain(..line_end + 2 + size + 2);
        }
        for data in sse_events(&mut text) {
            for id in page_ids(&data) {
                if let Some(n) = number(&id, 's') {
                    seen.got(n);
                }
            }
        }
    }
}

/// Notes a `sync-available` frame for one of the slow user's tables; true when it was one.
fn hint(text: &str, hinted: &mut HashSet<usize>) -> bool {
    let frame: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    frame["table"]
        .as_str()
        .and_then(|t| number(t, 's'))
        .map(|n| hinted.insert(n))
        .is_some()
}

/// Pulls from `cursor` until the server has nothing more, counting the slow user's changes.
async fn pull_all(
    http: &reqwest::Client,
    base: &str,
    cursor: &mut Option<String>,
    seen: &mut Seen,
) -> bool {
    loop {
        let mut req = http
            .get(format!("{base}/sync/{APP}/pull"))
            .bearer_auth(token(SLOW_USER))
            .query(&[("clientId", "slow-ws")]);
        if let Some(c) = cursor.as_deref() {
            req = req.query(&[("since", c)]);
        }
        let Ok(resp) = req.send().await.and_then(|r| r.error_for_status()) else {
            return false;
        };
        let Ok(page) = resp.json::<Value>().await else {
            return false;
        };
        for c in page["serverChanges"].as_array().into_iter().flatten() {
            if let Some(n) = c["id"].as_str().and_then(|id| number(id, 's')) {
                seen.got(n);
            }
        }
        *cursor = page["syncedUntil"].as_str().map(str::to_owned);
        if page["hasMore"] != true {
            return true;
        }
    }
}

/// The slow WebSocket reader: like a real client, it pulls from its cursor when told that a
/// table changed. Returns what it pulled and the tables it was told about.
async fn slow_ws(
    http: reqwest::Client,
    base: String,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> (Seen, HashSet<usize>) {
    let mut seen = Seen::default();
    let mut hinted = HashSet::new();
    let Ok(stream) = small_window(addr).await else {
        seen.dropped = true;
        return (seen, hinted);
    };
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await
    else {
        seen.dropped = true;
        return (seen, hinted);
    };
    if !ws_auth(&mut ws, SLOW_USER).await {
        seen.dropped = true;
        return (seen, hinted);
    }
    // First sync (empty: the slow user has pushed nothing yet); then only what is announced.
    let mut cursor = None;
    if !pull_all(&http, &base, &mut cursor, &mut seen).await {
        seen.dropped = true;
        return (seen, hinted);
    }
    let started = Instant::now();
    loop {
        if let Some(wait) = paused(started) {
            tokio::time::sleep(wait).await;
        }
        let mut pull = tokio::select! {
            _ = stop.changed() => return (seen, hinted),
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => hint(t.as_str(), &mut hinted),
                Some(Ok(_)) => false,
                _ => {
                    seen.dropped = true;
                    return (seen, hinted);
                }
            },
        };
        // Take every announcement already here, then pull once for all of them.
        while let Some(Some(Ok(m))) = futures_util::FutureExt::now_or_never(ws.next()) {
            if let Message::Text(t) = m {
                pull |= hint(t.as_str(), &mut hinted);
            }
        }
        if pull && !pull_all(&http, &base, &mut cursor, &mut seen).await {
            seen.dropped = true;
            return (seen, hinted);
        }
    }
}

fn start_server(db: &std::path::Path, broadcast_capacity: usize) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mana-sync-server"))
        .env("BROADCAST_CAPACITY", broadcast_capacity.to_string())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MANA_JWT_SECRET", SECRET)
        .env("RATE_LIMIT_PER_MINUTE", "0")
        .env("RATE_LIMIT_IP_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .env_remove("MANA_AUTH_URL")
        .env_remove("MANA_CREDITS_URL")
        .env_remove("MEMBERSHIPS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("server binary");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed its address");
    (child, base)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Pushes like a client: from its cursor (`since`), so the answer holds only what it lacks.
/// Returns the new cursor, or `None` when the push failed.
async fn push(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    since: Option<String>,
    changes: Vec<Value>,
) -> Option<String> {
    let body = json!({"clientId": "pusher", "since": since, "changes": changes});
    let resp = http
        .post(format!("{base}/sync/{APP}"))
        .bearer_auth(token(user))
        .json(&body)
        .send()
        .await
        .ok()?
        .error_for_status()
        .ok()?;
    let answer: Value = resp.json().await.ok()?;
    Some(answer["syncedUntil"].as_str()?.to_owned())
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

/// A Prometheus histogram's cumulative bucket counts (`le`, count) and its count and sum.
struct Hist {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

impl Hist {
    fn parse(text: &str, name: &str) -> Hist {
        let mut h = Hist {
            buckets: Vec::new(),
            count: 0.0,
            sum: 0.0,
        };
        for line in text.lines() {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let v: f64 = value.parse().unwrap_or(0.0);
            if let Some(le) = key
                .strip_prefix(&format!("{name}_bucket{{le=\""))
                .and_then(|r| r.strip_suffix("\"}"))
            {
                h.buckets.push((le.parse().unwrap_or(f64::INFINITY), v));
            } else if key == format!("{name}_count") {
                h.count = v;
            } else if key == format!("{name}_sum") {
                h.sum = v;
            }
        }
        h
    }

    /// The difference of two scrapes: what happened in between.
    fn since(&self, before: &Hist) -> Hist {
        Hist {
            buckets: self
                .buckets
                .iter()
                .zip(before.buckets.iter().chain(std::iter::repeat(&(0.0, 0.0))))
                .map(|(a, b)| (a.0, a.1 - b.1))
                .collect(),
            count: self.count - before.count,
            sum: self.sum - before.sum,
        }
    }

    /// The upper bound of the bucket holding quantile `q`, in ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        let want = self.count * q;
        self.buckets
            .iter()
            .find(|(_, c)| *c >= want)
            .map(|(le, _)| le * 1000.0)
            .unwrap_or(f64::NAN)
    }

    fn describe(&self) -> String {
        format!(
            "{:.0} observed, mean {:.1} ms, p50 <= {} ms, p99 <= {} ms",
            self.count,
            if self.count > 0.0 {
                self.sum / self.count * 1000.0
            } else {
                f64::NAN
            },
            self.quantile_ms(0.5),
            self.quantile_ms(0.99)
        )
    }
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let n_sse = env("LOAD_SSE", 1000);
    let n_ws = env("LOAD_WS", 1000);
    let users = env("LOAD_USERS", 100).max(1);
    let rate = env("LOAD_PUSHES_PER_SEC", 50).max(1);
    let seconds = env("LOAD_SECONDS", 30).max(1);
    let with_slow = env("LOAD_SLOW", 1) != 0;
    let with_since = env("LOAD_SINCE", 1) != 0;
    let capacity = env("LOAD_BROADCAST_CAPACITY", BROADCAST_CAPACITY).max(1);
    let total_pushes = rate * seconds;

    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start_server(&dir.path().join("load.db"), capacity);
    let pid = child.id();
    let addr: SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let idle_rss = rss_kb(pid).unwrap_or(0);

    let peak_rss = Arc::new(AtomicUsize::new(idle_rss as usize));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, on) = (peak_rss.clone(), sampling.clone());
        tokio::spawn(async move {
            while on.load(Ordering::SeqCst) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb as usize, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let sent = Arc::new(Sent((0..total_pushes).map(|_| OnceLock::new()).collect()));
    let acked: Arc<Vec<OnceLock<f64>>> =
        Arc::new((0..total_pushes).map(|_| OnceLock::new()).collect());
    let ready = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // Open every stream before the pushes start.
    let opened = Instant::now();
    let mut clients = Vec::new();
    for i in 0..n_sse.max(n_ws) {
        if i < n_sse {
            clients.push(tokio::spawn(sse_client(
                http.clone(),
                base.clone(),
                user_of(i, users),
                sent.clone(),
                ready.clone(),
                stop.clone(),
            )));
        }
        if i < n_ws {
            clients.push(tokio::spawn(ws_client(
                addr,
                user_of(i, users),
                sent.clone(),
                ready.clone(),
                stop.clone(),
            )));
        }
        if i % 50 == 49 {
            // Pace the opens a little: the backlog is not what is measured.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let slow = with_slow.then(|| {
        (
            tokio::spawn(slow_sse(addr, stop.clone())),
            tokio::spawn(slow_ws(http.clone(), base.clone(), addr, stop.clone())),
        )
    });
    while ready.load(Ordering::SeqCst) < n_sse + n_ws {
        if opened.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "only {} of {} streams opened",
                ready.load(Ordering::SeqCst),
                n_sse + n_ws
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_secs = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected_rss = rss_kb(pid).unwrap_or(0);

    // Pushes: one change each, round-robin over the users, at `rate` per second; and the
    // slow user's big pushes beside them. Each user pushes from the cursor of its last answer.
    let failed_pushes = Arc::new(AtomicUsize::new(0));
    let slow_pushed = Arc::new(AtomicUsize::new(0));
    let cursors: Arc<Vec<std::sync::Mutex<Option<String>>>> =
        Arc::new((0..users).map(|_| std::sync::Mutex::new(None)).collect());
    let before = scrape(&http, &base).await;
    let cpu_before = (cpu_secs(std::process::id()), cpu_secs(pid));
    let pushes_started = Instant::now();
    let slow_pusher = with_slow.then(|| {
        let (http, base, failed, pushed) = (
            http.clone(),
            base.clone(),
            failed_pushes.clone(),
            slow_pushed.clone(),
        );
        tokio::spawn(async move {
            let payload = "x".repeat(SLOW_PAYLOAD);
            let mut tick = tokio::time::interval(SLOW_EVERY);
            let mut next = 0;
            let mut cursor = None;
            while pushes_started.elapsed() < Duration::from_secs(seconds as u64) {
                tick.tick().await;
                let changes: Vec<Value> = (next..next + SLOW_BATCH)
                    .map(|n| {
                        json!({"eventId": format!("0190a6f0-0000-7000-9000-{n:012x}"), "table": format!("s{n}"),
                               "id": format!("s{n}"), "op": "insert",
                               "data": {"blob": payload}, "updatedAt": hlc(n)})
                    })
                    .collect();
                let since = if with_since { cursor.clone() } else { None };
                match push(&http, &base, SLOW_USER, since, changes).await {
                    Some(c) => {
                        cursor = Some(c);
                        next += SLOW_BATCH;
                        pushed.store(next, Ordering::SeqCst);
                    }
                    None => {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    });
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let mut pushes = Vec::with_capacity(total_pushes);
    for n in 0..total_pushes {
        tick.tick().await;
        let (http, base, sent, acked, failed, cursors) = (
            http.clone(),
            base.clone(),
            sent.clone(),
            acked.clone(),
            failed_pushes.clone(),
            cursors.clone(),
        );
        pushes.push(tokio::spawn(async move {
            let change = json!({"eventId": format!("0190a6f0-0000-7000-8000-{n:012x}"), "table": format!("t{n}"),
                                "id": format!("c{n}"), "op": "insert",
                                "data": {"n": n}, "updatedAt": hlc(n)});
            let u = n % users;
            let since = if with_since { cursors[u].lock().unwrap().clone() } else { None };
            let _ = sent.0[n].set(Instant::now());
            match push(&http, &base, &user_of(n, users), since, vec![change]).await {
                Some(c) => {
                    let _ = acked[n].set(sent.latency(n).unwrap_or(f64::NAN));
                    *cursors[u].lock().unwrap() = Some(c);
                }
                None => {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for p in pushes {
        let _ = p.await;
    }
    if let Some(p) = slow_pusher {
        let _ = p.await;
    }
    let push_secs = pushes_started.elapsed().as_secs_f64();
    let cpu_after = (cpu_secs(std::process::id()), cpu_secs(pid));
    let during = scrape(&http, &base).await;

    // Let every subscriber (the slow ones included) catch up, then stop.
    tokio::time::sleep(DRAIN).await;
    let metrics = scrape(&http, &base).await;
    let _ = stop_tx.send(true);
    let mut latencies = Vec::new();
    // Deliveries by when their push was sent, in windows of 5 s.
    let window = (rate * 5).max(1);
    let mut by_window: Vec<Vec<f64>> = vec![Vec::new(); total_pushes.div_ceil(window)];
    let (mut dropped, mut missed, mut expected_total, mut duplicates) =
        (0usize, 0usize, 0usize, 0usize);
    for (i, c) in clients.into_iter().enumerate() {
        let seen = c.await.unwrap();
        // Clients alternate SSE / WebSocket while both remain; each belongs to user i / 2.
        let index = if i < 2 * n_sse.min(n_ws) {
            i / 2
        } else {
            i - n_sse.min(n_ws)
        };
        let user = index % users;
        let expected = (0..total_pushes).filter(|n| n % users == user).count();
        expected_total += expected;
        missed += expected.saturating_sub(seen.numbers.len());
        dropped += usize::from(seen.dropped);
        duplicates += seen.duplicates;
        for &(n, l) in &seen.latencies_ms {
            by_window[n / window].push(l);
            latencies.push(l);
        }
    }
    let slow_total = slow_pushed.load(Ordering::SeqCst);
    let (slow_missed, slow_dups, slow_hints_missed) = match slow {
        Some((s, w)) => {
            let (slow_sse, (slow_ws, hinted)) = (s.await.unwrap(), w.await.unwrap());
            dropped += usize::from(slow_sse.dropped) + usize::from(slow_ws.dropped);
            let missing =
                |set: &HashSet<usize>| (0..slow_total).filter(|n| !set.contains(n)).count();
            (
                [missing(&slow_sse.numbers), missing(&slow_ws.numbers)],
                [slow_sse.duplicates, slow_ws.duplicates],
                missing(&hinted),
            )
        }
        None => ([0, 0], [0, 0], 0),
    };
    sampling.store(false, Ordering::SeqCst);
    let _ = sampler.await;
    let _ = child.kill();
    let _ = child.wait();

    latencies.sort_by(f64::total_cmp);
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    let max = latencies.last().copied().unwrap_or(f64::NAN);
    let mut acks: Vec<f64> = acked.iter().filter_map(|a| a.get().copied()).collect();
    acks.sort_by(f64::total_cmp);
    let peak_mb = peak_rss.load(Ordering::SeqCst) as f64 / 1024.0;
    let resyncs = metric(&metrics, "mana_sync_stream_resyncs_total");
    let failed = failed_pushes.load(Ordering::SeqCst);
    let busy = |i: usize| {
        let (b, a) = if i == 0 {
            (cpu_before.0, cpu_after.0)
        } else {
            (cpu_before.1, cpu_after.1)
        };
        (a - b) / push_secs * 100.0
    };

    println!(
        "load: {n_sse} SSE + {n_ws} WebSocket clients over {users} users, opened in {open_secs:.1} s; \
         broadcast capacity {capacity}; pushes {} a cursor",
        if with_since { "from" } else { "without" }
    );
    println!(
        "pushes: {total_pushes} single-change pushes in {push_secs:.1} s ({:.0}/s), plus {slow_total} \
         slow-user changes in pushes of {SLOW_BATCH} x {SLOW_PAYLOAD} B every {} ms{}; {failed} failed",
        total_pushes as f64 / push_secs,
        SLOW_EVERY.as_millis(),
        if with_slow { "" } else { " (slow user off)" }
    );
    println!(
        "push answered (harness, single-change): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&acks, 0.5),
        percentile(&acks, 0.99),
        acks.last().copied().unwrap_or(f64::NAN)
    );
    let (push_h, fan_h) = (
        Hist::parse(&during, "mana_sync_push_seconds")
            .since(&Hist::parse(&before, "mana_sync_push_seconds")),
        Hist::parse(&during, "mana_sync_fanout_seconds")
            .since(&Hist::parse(&before, "mana_sync_fanout_seconds")),
    );
    println!(
        "server push (request to commit, /metrics): {}",
        push_h.describe()
    );
    println!(
        "server fan-out (commit to stream send, /metrics): {}",
        fan_h.describe()
    );
    println!(
        "CPU during the pushes (% of one core): harness {:.0} %, server {:.0} %",
        busy(0),
        busy(1)
    );
    println!(
        "push-to-delivery over {} deliveries (of {expected_total} expected): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        latencies.len()
    );
    let over_time: Vec<String> = by_window
        .iter_mut()
        .enumerate()
        .map(|(w, l)| {
            l.sort_by(f64::total_cmp);
            format!(
                "{}-{} s: p50 {:.0} / p99 {:.0}",
                w * 5,
                w * 5 + 5,
                percentile(l, 0.5),
                percentile(l, 0.99)
            )
        })
        .collect();
    println!("  by when the push was sent (ms): {}", over_time.join("; "));
    println!(
        "server RSS: idle {:.1} MB, all connected {:.1} MB, peak {peak_mb:.1} MB",
        idle_rss as f64 / 1024.0,
        connected_rss as f64 / 1024.0
    );
    println!("streams dropped: {dropped}; events missed: {missed}; delivered twice: {duplicates}");
    println!(
        "slow readers (paused {} s): SSE missed {} of {slow_total} (twice: {}), WebSocket pulled: missed {} \
         (twice: {}), tables not announced {}; server resyncs from a cursor: {resyncs}",
        SLOW_PAUSE.as_secs(),
        slow_missed[0],
        slow_dups[0],
        slow_missed[1],
        slow_dups[1],
        slow_hints_missed,
    );
    let checks = [
        ("p99 <= 100 ms", p99 <= 100.0),
        ("peak RSS <= 250 MB", peak_mb <= 250.0),
        ("no stream dropped", dropped == 0),
        (
            "no event missed",
            missed == 0 && slow_missed == [0, 0] && slow_hints_missed == 0,
        ),
        (
            "no change delivered twice",
            duplicates == 0 && slow_dups == [0, 0],
        ),
        ("no push failed", failed == 0),
        (
            "the slow readers were resynced",
            !with_slow || resyncs >= 1.0,
        ),
    ];
    let mut ok = true;
    for (what, pass) in checks {
        println!("  {} {what}", if pass { "PASS" } else { "MISS" });
        ok &= pass;
    }
    if !ok {
        std::process::exit(1);
    }
}
