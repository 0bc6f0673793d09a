//! `--nats` and its companions, shared by `serve`, `demo` and `pipe`: join
//! the hub to a NATS system (`docs/protocol.md` §12, README "More than one hub").

use std::path::PathBuf;

use framehub::NatsConfig;

/// Options that join a hub to a NATS system.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct NatsArgs {
    /// Join the NATS system at these servers (comma-separated,
    /// `nats://host:4222`): this hub's streams are served by every hub of
    /// the system, and every other hub's streams by this one.
    #[arg(long, value_name = "URL[,URL...]")]
    pub nats: Option<String>,
    /// This hub's id in the NATS system (`[A-Za-z0-9_-]`, default random).
    #[arg(long, requires = "nats")]
    pub hub_id: Option<String>,
    /// A NATS credentials file (`.creds`).
    #[arg(long, requires = "nats", value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// A NATS token.
    #[arg(long, requires = "nats")]
    pub nats_token: Option<String>,
    /// Require TLS to the NATS servers.
    #[arg(long, requires = "nats")]
    pub nats_tls: bool,
    /// PEM file of root certificates for the NATS servers' TLS.
    #[arg(long, requires = "nats", value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// Copies of the stream registry kept by JetStream (3 on a 3-node
    /// cluster keeps it through a node's death).
    #[arg(long, requires = "nats", default_value_t = 1)]
    pub nats_replicas: usize,
}

impl NatsArgs {
    /// The hub's `ServerConfig::nats`.
    pub fn config(&self) -> Option<NatsConfig> {
        let urls = self.nats.as_deref()?;
        Some(NatsConfig {
            hub_id: self.hub_id.clone(),
            credentials_file: self.nats_creds.clone(),
            token: self.nats_token.clone(),
            tls_required: self.nats_tls,
            root_certificates: self.nats_ca.clone(),
            registry_replicas: self.nats_replicas.clamp(1, 5),
            ..NatsConfig::new(urls)
        })
    }
}
