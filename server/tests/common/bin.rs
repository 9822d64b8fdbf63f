//! The real `mana-sync-server` binary as a child process, its address read from its stdout.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_mana-sync-server");

/// The binary on `database_url`, on a free loopback port, with no auth configured (the
/// caller adds `--dev` or `MANA_JWT_SECRET`) and none of the test environment's settings.
pub fn server_command(database_url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", database_url)
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .env_remove("MANA_JWT_SECRET")
        .env_remove("MANA_JWKS_URL")
        .env_remove("MANA_AUTH_URL")
        .env_remove("MAX_BODY_BYTES")
        .env_remove("MAX_SCHEMA_VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Spawns `cmd` and returns the child with its base URL (`listening on …` on stdout).
pub fn spawn_listening(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed its address");
    (child, url)
}

/// A child killed when dropped, so a failing test leaves no server behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A token from the `--dev` server's `POST /dev/token`.
pub async fn dev_token(http: &reqwest::Client, base: &str, user: &str) -> String {
    let r = http
        .post(format!("{base}/dev/token"))
        .json(&json!({"userId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}
