//! What the driver needs to run a room, in its own words: the command line
//! is mapped onto this by `main`, and nothing here knows about flags.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::Role;
use crate::session::Security;

/// Where to connect.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Listen {
        bind: Option<IpAddr>,
        port: u16,
    },
    Dial {
        host: String,
        port: u16,
        retry: Option<Duration>,
    },
    /// Through a transit relay, in the room of the code.
    Relay {
        host: String,
        port: u16,
        role: Role,
        /// The dialer gives up when nobody is in the room after this.
        wait: Duration,
    },
}

/// One room, checked and complete.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    pub endpoint: Endpoint,
    pub security: Security,
    /// Our sanitised display name.
    pub name: String,
    pub quiet: bool,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Report how a transfer is going (`--progress`).
    pub progress: bool,
    /// Resume a lost connection within this grace period (None: off).
    pub resume: Option<Duration>,
    /// Bytes of ours kept until the peer confirms them (resume).
    pub resume_buffer: usize,
    /// A listener's budget of failed attempts to join, for the whole
    /// process (`--tries`; with `--keep`, across all its rooms).
    pub tries: u32,
    /// Failed attempts that earlier rooms of this process saw (`--keep`):
    /// they count against [`PeerConfig::tries`].
    pub failed_before: u32,
    /// A listener asks the router for a port mapping (`--map`).
    pub map: Option<MapConfig>,
    /// Files offered as the room opens (`--send`).
    pub send: Vec<PathBuf>,
    /// Where received files go, and whether every offer is taken
    /// (`--receive DIR`) or the user is asked (`--save-dir DIR`).
    pub files: super::files::FilePolicy,
    /// File bytes leave room in TCP's window for the chat on links with
    /// at least this round trip ([`super::pacing::MIN_RTT`]).
    pub pace_min_rtt: Duration,
}

impl PeerConfig {
    /// Files must arrive: `--send` or `--receive` make the exit status
    /// say whether they did.
    pub fn files_strict(&self) -> bool {
        !self.send.is_empty() || self.files.take_all
    }
}

/// Asking the router for a port mapping, in the driver's words.
#[derive(Debug, Clone)]
pub struct MapConfig {
    /// The lifetime asked of the router; the mapping is renewed at half of
    /// what the router grants.
    pub lease: Duration,
}

impl PeerConfig {
    /// Failed attempts this process still allows (a dialer has one
    /// connection). A one-time code allows one more per room on top of
    /// this: the session burns the code at its first failure.
    pub fn tries(&self) -> u32 {
        match self.role() {
            Role::Listener => self.tries,
            Role::Dialer => 1,
        }
    }

    pub fn role(&self) -> Role {
        match self.endpoint {
            Endpoint::Listen { .. } => Role::Listener,
            Endpoint::Dial { .. } => Role::Dialer,
            Endpoint::Relay { role, .. } => role,
        }
    }
}
