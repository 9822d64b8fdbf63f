//! `mana-sync-server`: see the library crate for everything.
use clap::Parser;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = mana_sync_server::Config::parse();
    if let Err(e) = mana_sync_server::serve(config).await {
        eprintln!("mana-sync-server: {e}");
        std::process::exit(1);
    }
}
