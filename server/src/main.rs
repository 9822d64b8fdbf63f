//! Placeholder until the sync server lands: answers `GET /health`.
use axum::{routing::get, Json, Router};

#[tokio::main]
async fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3050".into());
    let app = Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok", "version": mana_sync::VERSION})) }),
    );
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.expect("bind");
    println!("mana-sync-server listening on http://127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("serve");
}
