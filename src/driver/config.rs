//! What the driver needs to run a room, in its own words: the command line
//! is mapped onto this by `main`, and nothing here knows about flags.

use std::net::IpAddr;
use std::time::Duration;

use crate::protocol::Role;
use crate::session::Security;

/// Where to connect.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Listen {
        bind: Option<IpAddr>,
        port: u16,
        /// Failed attempts allowed before giving up.
        tries: u32,
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
}

impl PeerConfig {
    /// Failed attempts a listener allows (a dialer has one connection; a
    /// one-time code allows one).
    pub fn tries(&self) -> u32 {
        match (&self.endpoint, &self.security) {
            (_, Security::Code(_)) => 1,
            (Endpoint::Listen { tries, .. }, _) => *tries,
            _ => 1,
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
