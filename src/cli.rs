//! The command line: what the user typed (`Cli`, clap derive) and what the
//! program will do (`Config`), in two stages so the second can be checked.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::io::Write;

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::names;
use crate::protocol::Role;
use crate::secret;
use crate::session::Security;

const EXAMPLES: &str = "\
Examples:
  p2pchat listen 51423                  wait for one peer on port 51423
  p2pchat dial chat.example.org 51423   join it from another machine
  tar c dir | p2pchat dial host 51423   send a directory; the other side runs
  p2pchat listen 51423 | tar x          ...and unpacks it

The chat is encrypted by default and both sides show the same verify code;
compare it by voice. Set P2PCHAT_SECRET (or use --secret-file/--ask-secret)
on both sides for a room that only holders of the secret can join.

A listener gives up after --tries failed attempts to join (default 3):
someone may be guessing the secret.

Exit codes: 0 success, 1 connection failed or lost (or data not
delivered), 2 usage, 3 handshake or authentication failed, 4 integrity
failure, 101 internal error, 130 SIGINT, 143 SIGTERM, 129 SIGHUP.";

/// A private two-party chat and byte-exact data pipe over one TCP connection.
#[derive(Parser, Debug)]
#[command(name = "p2pchat", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Wait for exactly one peer to dial in.
    #[command(after_help = "Example:\n  p2pchat listen 51423")]
    Listen {
        /// TCP port to listen on (0 picks a free one)
        #[arg(value_parser = clap::value_parser!(u16))]
        port: u16,
        /// Address to listen on [default: [::], both IPv6 and IPv4]
        #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
        bind: Option<IpAddr>,
        /// Give up after N failed attempts to join (wrong secret, a tampered
        /// or abandoned key exchange): someone may be guessing
        #[arg(long, value_name = "N", default_value = "3",
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        tries: u32,
    },
    /// Connect to a listening peer.
    #[command(after_help = "Example:\n  p2pchat dial 192.0.2.7 51423")]
    Dial {
        /// Host name or address (IPv6 may be written [::1])
        host: String,
        /// TCP port of the listening peer
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Keep re-dialing a refused or unreachable peer for up to SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        retry: Option<Duration>,
    },
}

#[derive(Args, Debug)]
pub struct Global {
    /// No status lines on stderr (errors are still shown)
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The name the peer sees [default: your login name]
    #[arg(long, value_name = "NAME", global = true)]
    pub name: Option<String>,
    /// Raw, unencrypted TCP: interoperates with nc and socat
    #[arg(long, global = true)]
    pub plain: bool,
    /// Declare the peer dead after SECS seconds without a sign of life
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, global = true)]
    pub idle_timeout: Duration,
    /// Give up a handshake that does not finish within SECS seconds
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, global = true)]
    pub handshake_timeout: Duration,
    /// Read the shared secret from the first line of PATH
    #[arg(
        long,
        value_name = "PATH",
        global = true,
        conflicts_with = "ask_secret"
    )]
    pub secret_file: Option<PathBuf>,
    /// Prompt for the shared secret on the terminal (no echo)
    #[arg(long, global = true)]
    pub ask_secret: bool,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0 * 365.0) {
        return Err(format!("'{s}' must be more than 0 and at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_bind(s: &str) -> Result<IpAddr, String> {
    strip_brackets(s)
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address"))
}

/// `[::1]` is how people write IPv6 literals; the resolver wants `::1`.
pub fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

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
}

/// What the program will do, checked and complete.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: Endpoint,
    pub security: Security,
    /// Our sanitised display name.
    pub name: String,
    pub quiet: bool,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
}

impl Config {
    /// Failed attempts a listener allows (a dialer has one connection).
    pub fn tries(&self) -> u32 {
        match self.endpoint {
            Endpoint::Listen { tries, .. } => tries,
            Endpoint::Dial { .. } => 1,
        }
    }

    pub fn role(&self) -> Role {
        match self.endpoint {
            Endpoint::Listen { .. } => Role::Listener,
            Endpoint::Dial { .. } => Role::Dialer,
        }
    }
}

impl Cli {
    /// Checks the arguments and gathers the secret into a `Config`.
    pub fn into_config(self) -> Result<Config, Error> {
        let g = self.global;
        let endpoint = match self.command {
            Command::Listen { port, bind, tries } => Endpoint::Listen { bind, port, tries },
            Command::Dial { host, port, retry } => {
                let host = strip_brackets(&host).to_string();
                if host.is_empty() {
                    return Err(Error::Usage("the host name is empty".into()));
                }
                Endpoint::Dial { host, port, retry }
            }
        };
        let source = secret::Source::pick(g.secret_file, g.ask_secret)?;
        let security = match (g.plain, source) {
            (true, None) => Security::Plain,
            (true, Some(s)) => {
                return Err(Error::Usage(format!(
                    "--plain cannot be combined with a shared secret (from {})",
                    s.describe()
                )))
            }
            (false, None) => Security::VerifyCode,
            (false, Some(s)) => {
                let quiet = g.quiet;
                Security::Secret(s.read(&mut |w| {
                    if !quiet {
                        let _ = writeln!(std::io::stderr(), "p2pchat: {w}");
                    }
                })?)
            }
        };
        let name = match g.name {
            Some(n) => {
                let clean = names::sanitize(n.as_bytes());
                if clean.is_empty() {
                    return Err(Error::Usage(
                        "--name needs at least one printable character".into(),
                    ));
                }
                clean
            }
            None => names::login_name(),
        };
        Ok(Config {
            endpoint,
            security,
            name,
            quiet: g.quiet,
            idle_timeout: g.idle_timeout,
            handshake_timeout: g.handshake_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_before_or_after_the_command() {
        let cli = Cli::try_parse_from(["p2pchat", "-q", "dial", "[::1]", "5", "--plain"]).unwrap();
        assert!(cli.global.quiet && cli.global.plain);
        let cfg = cli.into_config().unwrap();
        match cfg.endpoint {
            Endpoint::Dial { host, port, .. } => assert_eq!((host.as_str(), port), ("::1", 5)),
            _ => panic!("expected dial"),
        }
    }

    #[test]
    fn bad_ports_are_usage_errors() {
        for port in ["notaport", "70000", "-1"] {
            assert!(Cli::try_parse_from(["p2pchat", "listen", port]).is_err());
        }
        assert!(Cli::try_parse_from(["p2pchat", "dial", "h", "0"]).is_err());
        assert!(Cli::try_parse_from(["p2pchat", "listen", "0"]).is_ok());
    }

    #[test]
    fn seconds_must_be_positive() {
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("abc").is_err());
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
    }
}
