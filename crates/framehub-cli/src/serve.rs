//! `framehub serve`: a hub with no streams of its own, where publishers
//! anywhere claim stream names (`ws://HOST:PORT/_/publish/<name>`) and
//! viewers watch them by URL.

use anyhow::Context;
use framehub::{AuthContext, AuthError, Principal, Server, ServerConfig};

/// Options of `framehub serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = framehub::DEFAULT_PORT)]
    pub port: u16,
    /// A token publishers may present (repeat for several; the n-th token's
    /// publisher is the principal `publisher-n`). Without any, only
    /// publishers on loopback are let in.
    #[arg(long = "publish-token", value_name = "T")]
    pub publish_tokens: Vec<String>,
    /// Seconds a stream stays offline after its publisher left, before it ends.
    #[arg(long, default_value_t = 10.0)]
    pub grace: f64,
    #[command(flatten)]
    pub nats: crate::nats_args::NatsArgs,
}

/// Runs the hub until Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let grace = std::time::Duration::try_from_secs_f64(args.grace)
        .ok()
        .filter(|g| *g <= std::time::Duration::from_secs(86_400))
        .context("--grace must be between 0 and 86400 seconds")?;
    let tokens = args.publish_tokens.clone();
    let publish_authenticate = (!tokens.is_empty()).then(|| {
        framehub::authenticator(move |ctx: AuthContext| {
            let found = ctx
                .token
                .as_deref()
                .and_then(|t| tokens.iter().position(|k| k == t));
            async move {
                match found {
                    Some(i) => Ok(Some(Principal::new(format!("publisher-{}", i + 1)))),
                    None => Err(AuthError("unknown publisher token".into())),
                }
            }
        })
    });
    let cfg = ServerConfig {
        publish_authenticate,
        publisher_grace: grace,
        nats: args.nats.config(),
        ..ServerConfig::default()
    };
    let server = Server::builder()
        .config(cfg)
        .bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = server.local_addr().context("listener has an address")?;
    say!("framehub listening on http://{addr}/");
    say!("  publishers: ws://{addr}/_/publish/<name>");
    if let Some(id) = server.hub_id() {
        say!("  joined NATS as hub '{id}'");
    }
    if args.publish_tokens.is_empty() && !addr.ip().is_loopback() {
        esay!("no --publish-token: only publishers on this machine's loopback are let in");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    esay!("shutting down");
    server.close().await;
    Ok(())
}
