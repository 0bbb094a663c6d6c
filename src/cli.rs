//! The command line: what the user typed (`Cli`, clap derive) and what the
//! program will do (`Config`), in two stages so the second can be checked.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::io::{IsTerminal, Write};

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::Error;
use crate::names;
use crate::protocol::code::Code;
use crate::protocol::{Random, Role};
use crate::secret;
use crate::session::Security;

/// Shown by `--help` and in the man page.
pub const EXAMPLES: &str = "\
Examples, one for each way of meeting:
  p2pchat listen 51423                    direct: wait for one peer on port 51423
  p2pchat dial 192.0.2.7 51423            ...and join it from the other machine
  p2pchat listen 51423 --code             direct, with a one-time code to type
  p2pchat dial 192.0.2.7:51423 --code     ...which the dialer is asked for
  p2pchat listen --relay relay.example.org   both behind NAT: meet at a relay
  p2pchat dial --relay relay.example.org     ...with the code the listener printed
  tar c dir | p2pchat dial host 51423     send a directory; the other side runs
  p2pchat listen 51423 | tar x            ...and unpacks it
  p2pchat dial host 51423 --send a.iso    send files inside the room; the other
  p2pchat listen 51423 --receive DIR      side takes them (or /send, /accept)

The chat is encrypted by default and both sides show the same verify code;
compare it by voice. Set P2PCHAT_SECRET (or use --secret-file/--ask-secret)
on both sides for a room that only holders of the secret can join.

A listener gives up after --tries failed attempts to join (default 3):
someone may be guessing the secret.";

/// The text after `--help`: the examples, the exit codes, where to read more.
fn after_help() -> String {
    let mut text = format!("{EXAMPLES}\n\nExit codes:\n");
    for (code, meaning) in crate::error::exit::TABLE {
        text.push_str(&format!("  {code:<4} {meaning}\n"));
    }
    text.push_str(
        "\nThe manual: man p2pchat (after installing doc/p2pchat.1), or\n  \
         p2pchat manpage | man -l -",
    );
    text
}

/// A private two-party chat and byte-exact data pipe over one TCP connection.
#[derive(Parser, Debug)]
#[command(name = "p2pchat", version, about, after_help = after_help())]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// `-q` before the command; each command that runs also takes it after.
    #[command(flatten)]
    pub quiet: Quiet,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Wait for exactly one peer to dial in.
    #[command(after_help = "Examples:\n  p2pchat listen 51423\n  \
        p2pchat listen 51423 --code          print a one-time code for the dialer\n  \
        p2pchat listen 51423 --map           ask the router to forward a public port\n  \
        p2pchat listen --relay relay.example.org   meet through a relay, with a code\n  \
        p2pchat listen 51423 --receive ~/in  take every file the peer offers into ~/in")]
    Listen {
        /// TCP port to listen on (0 picks a free one); not with --relay
        #[arg(value_parser = clap::value_parser!(u16), required_unless_present = "relay")]
        port: Option<u16>,
        /// Address to listen on [default: [::], both IPv6 and IPv4]
        #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
        bind: Option<IpAddr>,
        /// Give up after N failed attempts to join (wrong secret, a tampered
        /// or abandoned key exchange): someone may be guessing; with --keep,
        /// N in all rooms together
        #[arg(long, value_name = "N", default_value = "3",
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        tries: u32,
        /// Print a one-time code that the dialer must type: the room is
        /// authenticated before any data flows, and one wrong try burns it
        #[arg(long)]
        code: bool,
        /// Meet through a transit relay (implies --code): for when neither
        /// side can accept a connection (NAT)
        #[arg(long, value_name = "HOST[:PORT]", conflicts_with_all = ["bind", "port"])]
        relay: Option<String>,
        /// Host rooms one after another (a fresh code each time), like ncat -k;
        /// --tries counts the failed attempts of all rooms together
        #[arg(long)]
        keep: bool,
        /// Ask the router (the default gateway) to forward a public port to
        /// this one, with NAT-PMP (or PCP), then UPnP; the mapping is
        /// renewed while p2pchat runs and removed when it ends. Never done
        /// without this flag
        #[arg(long, conflicts_with = "relay")]
        map: bool,
        #[command(flatten)]
        room: RoomArgs,
    },
    /// Connect to a listening peer.
    #[command(after_help = "Examples:\n  p2pchat dial 192.0.2.7 51423\n  \
        p2pchat dial 192.0.2.7 51423 --code   asks for the listener's code\n  \
        p2pchat dial --relay relay.example.org    asks for the code (or set P2PCHAT_CODE)\n  \
        p2pchat dial 192.0.2.7 51423 --send a.pdf b.zip   offer files, leave once they arrived")]
    Dial {
        /// Host name or address, or HOST:PORT, or [IPv6]:PORT; not with
        /// --relay
        #[arg(value_name = "HOST", required_unless_present = "relay")]
        host: Option<String>,
        /// TCP port of the listening peer (unless given as HOST:PORT)
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        port: Option<u16>,
        /// Keep re-dialing a refused, unreachable or busy peer for up to SECS seconds
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        retry: Option<Duration>,
        /// The listener printed a one-time code: ask for it (or read
        /// P2PCHAT_CODE)
        #[arg(long)]
        code: bool,
        /// Meet through a transit relay (implies --code)
        #[arg(long, value_name = "HOST[:PORT]", conflicts_with_all = ["host", "port", "retry"])]
        relay: Option<String>,
        /// Through a relay: give up when nobody is in the room after SECS
        #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
        wait: Duration,
        #[command(flatten)]
        room: RoomArgs,
    },
    /// Run a transit relay: pairs two connections that name the same room
    /// and copies their (encrypted) bytes; sees no content.
    #[command(after_help = "Example:\n  p2pchat relay 4001\n\n\
        Speaks the magic-wormhole transit relay protocol: p2pchat and\n\
        magic-wormhole clients can both use it. Logs counts, never addresses.")]
    Relay {
        /// TCP port to listen on
        #[arg(value_parser = clap::value_parser!(u16))]
        port: u16,
        /// Address to listen on [default: [::], both IPv6 and IPv4]
        #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
        bind: Option<IpAddr>,
        #[command(flatten)]
        quiet: Quiet,
    },
    /// Print a completion script for a shell.
    #[command(after_help = "Install (the directory each shell reads at start):\n  \
        p2pchat completions bash > ~/.local/share/bash-completion/completions/p2pchat\n  \
        p2pchat completions zsh > ~/.zfunc/_p2pchat     (with fpath+=~/.zfunc)\n  \
        p2pchat completions fish > ~/.config/fish/completions/p2pchat.fish")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), the same as doc/p2pchat.1.
    #[command(after_help = "Read it with:\n  p2pchat manpage | man -l -")]
    Manpage,
}

/// Parses the command line. A flag given to the wrong command is told
/// where it belongs ("--retry is for dial, not listen"), where clap alone
/// would only call it unexpected or suggest a look-alike.
pub fn parse_args(args: &[OsString]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(args).map_err(|e| belongs_elsewhere(e, args))
}

fn belongs_elsewhere(e: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return e;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let flag = arg.split('=').next().unwrap_or(arg).to_string();
    let mut cmd = Cli::command();
    cmd.build();
    let used = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| cmd.find_subcommand(a).is_some())
        .map(str::to_string);
    let owners: Vec<String> = cmd
        .get_subcommands()
        .filter(|sub| {
            sub.get_arguments().any(|a| {
                !a.is_global_set()
                    && (flag
                        .strip_prefix("--")
                        .is_some_and(|l| a.get_long() == Some(l))
                        || flag.len() == 2
                            && flag.strip_prefix('-').and_then(|c| c.chars().next())
                                == a.get_short())
            })
        })
        .map(|sub| sub.get_name().to_string())
        .collect();
    if owners.is_empty() {
        return e;
    }
    let message = match &used {
        Some(u) if owners.contains(u) => {
            format!("{flag} belongs to {u}: put it after '{u}'")
        }
        Some(u) => format!("{flag} is for {}, not {u}", owners.join(" and ")),
        None => format!("{flag} is for {}", owners.join(" and ")),
    };
    match used.as_deref().and_then(|u| cmd.find_subcommand_mut(u)) {
        Some(sub) => sub.error(ErrorKind::UnknownArgument, message),
        None => cmd.error(ErrorKind::UnknownArgument, message),
    }
}

/// The port a transit relay listens on unless told otherwise.
pub const DEFAULT_RELAY_PORT: u16 = 4001;

/// `--relay HOST[:PORT]` for `role`.
fn relay_endpoint(relay: &str, role: Role, wait: Duration) -> Result<Endpoint, Error> {
    let (host, port) = parse_host_port(relay, DEFAULT_RELAY_PORT)?;
    Ok(Endpoint::Relay {
        host,
        port,
        role,
        wait,
    })
}

/// `HOST[:PORT]`, `[v6]:PORT` or a bare IPv6 address.
pub fn parse_host_port(s: &str, default_port: u16) -> Result<(String, u16), Error> {
    let (host, port) = split_host_port(s)?;
    Ok((host, port.unwrap_or(default_port)))
}

/// What `dial` was given: `HOST PORT`, `HOST:PORT`, `[v6]:PORT`, or an
/// IPv6 address (bare or in brackets) and `PORT`.
pub fn dial_target(host: &str, port: Option<u16>) -> Result<(String, u16), Error> {
    let (name, inline) = split_host_port(host)?;
    match (inline, port) {
        (Some(_), Some(p)) => Err(Error::Usage(format!(
            "the port is given twice: in '{host}' and as {p}"
        ))),
        (None, None) => Err(Error::Usage(format!(
            "dial needs a port: '{host} PORT' or '{host}:PORT'"
        ))),
        (Some(p), None) | (None, Some(p)) => Ok((name, p)),
    }
}

/// Splits `HOST[:PORT]`, `[v6][:PORT]` or a bare IPv6 address (which has no
/// port: its colons are its own).
fn split_host_port(s: &str) -> Result<(String, Option<u16>), Error> {
    let bad = || Error::Usage(format!("'{s}' is not HOST[:PORT]"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else if s.matches(':').count() == 1 {
        let (h, p) = s.split_once(':').ok_or_else(bad)?;
        (h, Some(p))
    } else {
        // No colon, or a bare IPv6 address.
        (s, None)
    };
    if host.is_empty() {
        return Err(Error::Usage(if s.is_empty() {
            "the host name is empty".into()
        } else {
            format!("'{s}' has no host name")
        }));
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(Error::Usage(format!("'{p}' in '{s}' is not a port"))),
        },
    };
    Ok((host.to_string(), port))
}

/// The heading of the options that shape a room, in `listen` and `dial`.
const ROOM_OPTIONS: &str = "Room options (listen and dial)";
const FILE_OPTIONS: &str = "File options (listen and dial)";

/// `-q`: taken before the command and by each command that runs, not by
/// `completions` or `manpage`, which print nothing else.
#[derive(Args, Debug, Default)]
pub struct Quiet {
    /// No status lines on stderr (errors are still shown)
    #[arg(short, long)]
    pub quiet: bool,
}

/// The options of a room: `listen` and `dial` take them, nothing else does.
#[derive(Args, Debug)]
pub struct RoomArgs {
    #[command(flatten)]
    pub quiet: Quiet,
    /// The name the peer sees [default: your login name]
    #[arg(long, value_name = "NAME", help_heading = ROOM_OPTIONS)]
    pub name: Option<String>,
    /// Raw, unencrypted TCP: interoperates with nc and socat
    #[arg(long, help_heading = ROOM_OPTIONS)]
    pub plain: bool,
    /// Declare the peer dead after SECS seconds without a sign of life
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs, help_heading = ROOM_OPTIONS)]
    pub idle_timeout: Duration,
    /// Give up a handshake that does not finish within SECS seconds
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs, help_heading = ROOM_OPTIONS)]
    pub handshake_timeout: Duration,
    /// Read the shared secret from the first line of PATH
    #[arg(
        long,
        value_name = "PATH",
        help_heading = ROOM_OPTIONS,
        conflicts_with = "ask_secret"
    )]
    pub secret_file: Option<PathBuf>,
    /// Prompt for the shared secret on the terminal (no echo)
    #[arg(long, help_heading = ROOM_OPTIONS)]
    pub ask_secret: bool,
    /// At a terminal, no bell for a message that arrives after 30 s
    /// without keys or messages
    #[arg(long, help_heading = ROOM_OPTIONS)]
    pub no_bell: bool,
    /// Show how a transfer in a pipe is going on stderr: bytes, rate, and
    /// percent and time left when stdin is a file
    #[arg(long, help_heading = ROOM_OPTIONS)]
    pub progress: bool,
    /// When the connection drops, reconnect and carry on within SECS
    /// seconds, nothing lost or doubled (0: off; not with --plain)
    #[arg(long, value_name = "SECS", help_heading = ROOM_OPTIONS, value_parser = parse_grace)]
    pub resume: Option<Duration>,
    /// With resume and stdin not a regular file: keep up to MIB mebibytes
    /// we sent until the peer confirms them; a transfer goes at most MIB
    /// per round trip (a file is read again instead)
    #[arg(long, value_name = "MIB", default_value = "2", help_heading = ROOM_OPTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub resume_buffer: u32,
    /// Offer FILE (or several) as the room opens, and leave once every
    /// one is confirmed; exit 0 only if all arrived (put it last, or
    /// repeat it for each file)
    #[arg(long, value_name = "FILE", num_args = 1.., help_heading = FILE_OPTIONS)]
    pub send: Vec<PathBuf>,
    /// Take every file the peer offers into DIR without asking; exit 0
    /// only if each arrived whole
    #[arg(long, value_name = "DIR", help_heading = FILE_OPTIONS, conflicts_with = "save_dir")]
    pub receive: Option<PathBuf>,
    /// At a terminal, save accepted files in DIR [default: the current
    /// directory]
    #[arg(long, value_name = "DIR", help_heading = FILE_OPTIONS)]
    pub save_dir: Option<PathBuf>,
}

/// The default grace period for a lost connection to come back.
pub const DEFAULT_RESUME: Duration = Duration::from_secs(60);

fn parse_grace(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_secs(s)
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

/// Where to connect: the driver's own type, which the command line fills.
pub use crate::driver::config::{Endpoint, MapConfig, PeerConfig};
use crate::driver::files::FilePolicy;
use crate::driver::pacing;

/// What the program will do: a room, or a relay.
// One per process: boxing the room would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Plan {
    Room(Config),
    Relay {
        bind: Option<IpAddr>,
        port: u16,
        quiet: bool,
    },
    /// Print a completion script for this shell.
    Completions(clap_complete::Shell),
    /// Print the manual page.
    Manpage,
}

/// What the program will do, checked and complete: the room in the
/// driver's own terms, and what only the program around it needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub room: PeerConfig,
    /// Host rooms one after another.
    pub keep: bool,
    /// Ring the bell for a message after a quiet spell (chat room).
    pub bell: bool,
}

impl Cli {
    /// Checks the arguments and gathers the secret or the code into a
    /// `Plan`. A dialer with a code is asked for it here, before anything
    /// connects; a listener's code is drawn from `rng`.
    pub fn into_plan(self, rng: &mut dyn Random) -> Result<Plan, Error> {
        let quiet = self.quiet.quiet;
        let mut map = false;
        // What meets whom, and whether a one-time code authenticates it.
        let (endpoint, code, keep, tries, g) = match self.command {
            Command::Completions { shell } => return Ok(Plan::Completions(shell)),
            Command::Manpage => return Ok(Plan::Manpage),
            Command::Relay {
                port,
                bind,
                quiet: q,
            } => {
                return Ok(Plan::Relay {
                    bind,
                    port,
                    quiet: quiet || q.quiet,
                });
            }
            Command::Listen {
                port,
                bind,
                tries,
                code,
                relay,
                keep,
                map: m,
                room,
            } => match relay {
                // A listener waits at the relay as long as it takes.
                Some(r) => (
                    relay_endpoint(&r, Role::Listener, Duration::MAX)?,
                    true,
                    keep,
                    tries,
                    room,
                ),
                None => {
                    // Invariant: clap requires the port without --relay.
                    let port = port.ok_or_else(|| Error::Usage("the port is missing".into()))?;
                    map = m;
                    match bind {
                        // The router forwards to our IPv4 address on its
                        // network: a listener elsewhere gets nothing.
                        Some(ip)
                            if m && (ip.is_loopback() || ip.is_ipv6() && !ip.is_unspecified()) =>
                        {
                            return Err(Error::Usage(format!(
                                "--map forwards to this machine's IPv4 address on the router's \
                                 network: it cannot reach a listener on {ip} (--bind)"
                            )));
                        }
                        _ => {}
                    }
                    (Endpoint::Listen { bind, port }, code, keep, tries, room)
                }
            },
            Command::Dial {
                host,
                port,
                retry,
                code,
                relay,
                wait,
                room,
            } => match relay {
                Some(r) => (
                    relay_endpoint(&r, Role::Dialer, wait)?,
                    true,
                    false,
                    1,
                    room,
                ),
                None => {
                    // Invariant: clap requires the host without --relay.
                    let Some(host) = host else {
                        return Err(Error::Usage("dial needs HOST and PORT, or --relay".into()));
                    };
                    let (host, port) = dial_target(&host, port)?;
                    (Endpoint::Dial { host, port, retry }, code, false, 1, room)
                }
            },
        };
        let quiet = quiet || g.quiet.quiet;
        if keep && !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
            return Err(Error::Usage(
                "--keep hosts chat rooms at a terminal: in a pipe, stdin and stdout belong to one room"
                    .into(),
            ));
        }
        if g.progress && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            return Err(Error::Usage(
                "--progress is for transfers in a pipe; at a terminal the chat shows what arrives"
                    .into(),
            ));
        }
        let source = secret::Source::pick(g.secret_file, g.ask_secret)?;
        let what = if matches!(endpoint, Endpoint::Relay { .. }) {
            "--relay"
        } else {
            "--code"
        };
        let security = match (g.plain, source, code) {
            (true, _, true) => {
                return Err(Error::Usage(format!(
                    "{what} cannot be combined with --plain: a one-time code authenticates an \
                     encrypted room, and a relay must never see the content"
                )))
            }
            (true, None, false) => Security::Plain,
            (true, Some(s), false) => {
                return Err(Error::Usage(format!(
                    "--plain cannot be combined with a shared secret (from {})",
                    s.describe()
                )))
            }
            (false, Some(s), true) => {
                return Err(Error::Usage(format!(
                    "{what} uses a one-time code; it cannot be combined with a shared secret \
                     (from {})",
                    s.describe()
                )))
            }
            (false, None, true) => Security::Code(match endpoint {
                Endpoint::Listen { .. }
                | Endpoint::Relay {
                    role: Role::Listener,
                    ..
                } => Code::generate(rng),
                _ => crate::code_entry::read("code: ")?,
            }),
            (false, None, false) => Security::VerifyCode,
            (false, Some(s), false) => Security::Secret(s.read(&mut |w| {
                if !quiet {
                    let _ = writeln!(std::io::stderr(), "p2pchat: {w}");
                }
            })?),
        };
        let resume = match (g.resume, &security) {
            (Some(d), Security::Plain) if !d.is_zero() => {
                return Err(Error::Usage(
                    "--resume cannot be combined with --plain: nothing there can prove a \
                     reconnection is the peer's"
                        .into(),
                ))
            }
            (_, Security::Plain) => None,
            (Some(d), _) if d.is_zero() => None,
            (Some(d), _) => Some(d),
            (None, _) => Some(DEFAULT_RESUME),
        };
        let files_asked = !g.send.is_empty() || g.receive.is_some() || g.save_dir.is_some();
        if files_asked && matches!(security, Security::Plain) {
            return Err(Error::Usage(
                "--send, --receive and --save-dir need the encrypted room: --plain carries one \
                 stream of raw bytes, with no way to say where a file starts or ends"
                    .into(),
            ));
        }
        if keep && !g.send.is_empty() {
            return Err(Error::Usage(
                "--send offers its files to one room; it cannot be combined with --keep".into(),
            ));
        }
        for path in &g.send {
            crate::files::disk::Outgoing::open(path).map_err(|e| {
                Error::Usage(format!(
                    "--send: {}",
                    crate::files::disk::describe(&e, path)
                ))
            })?;
        }
        let receive_all = g.receive.is_some();
        let save_dir = g
            .receive
            .or(g.save_dir)
            .unwrap_or_else(|| PathBuf::from("."));
        // The current directory is checked only when a file is accepted.
        if save_dir != Path::new(".") || receive_all {
            crate::files::disk::check_dir(&save_dir).map_err(|e| {
                Error::Usage(format!(
                    "--{}: {}",
                    if receive_all { "receive" } else { "save-dir" },
                    crate::files::disk::describe(&e, &save_dir)
                ))
            })?;
        }
        let name = match g.name {
            Some(n) => {
                let clean = names::sanitize(n.as_bytes());
                if clean.is_empty() {
                    return Err(Error::Usage(
                        "--name needs at least one printable character".into(),
                    ));
                }
                if names::too_long(n.as_bytes()) && !quiet {
                    let _ = writeln!(
                        std::io::stderr(),
                        "p2pchat: --name is cut to {} characters: the peer sees \"{clean}\"",
                        names::MAX_NAME_CHARS
                    );
                }
                clean
            }
            None => names::login_name(),
        };
        Ok(Plan::Room(Config {
            room: PeerConfig {
                endpoint,
                security,
                name,
                quiet,
                idle_timeout: g.idle_timeout,
                handshake_timeout: g.handshake_timeout,
                progress: g.progress,
                resume,
                resume_buffer: g.resume_buffer as usize * 1024 * 1024,
                tries,
                failed_before: 0,
                map: map.then(|| MapConfig { lease: map_lease() }),
                send: g.send,
                files: FilePolicy {
                    dir: save_dir,
                    take_all: receive_all,
                },
                pace_min_rtt: pace_min_rtt(),
            },
            keep,
            bell: !g.no_bell,
        }))
    }
}

/// The lease asked of the router: two hours (RFC 6886's recommendation),
/// or `P2PCHAT_MAP_LEASE` seconds, which the tests set to watch renewals.
fn map_lease() -> Duration {
    let secs = std::env::var("P2PCHAT_MAP_LEASE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(7200);
    Duration::from_secs(secs)
}

/// The shortest round trip on which file bytes leave room in TCP's window
/// for the chat: [`pacing::MIN_RTT`], or `P2PCHAT_PACE_MIN_RTT_US`
/// microseconds, which the tests set to 0 to pace on loopback too.
fn pace_min_rtt() -> Duration {
    std::env::var("P2PCHAT_PACE_MIN_RTT_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(pacing::MIN_RTT, Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        cli.into_plan(&mut crate::protocol::DeterministicRng::new(1))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn quiet_goes_before_or_after_the_command() {
        for args in [
            &["p2pchat", "-q", "dial", "[::1]", "5", "--plain"][..],
            &["p2pchat", "dial", "[::1]", "5", "--plain", "-q"][..],
        ] {
            let Ok(Plan::Room(cfg)) = plan(args) else {
                panic!("expected a room")
            };
            assert!(cfg.room.quiet);
            assert!(matches!(cfg.room.security, Security::Plain));
            match cfg.room.endpoint {
                Endpoint::Dial { host, port, .. } => {
                    assert_eq!((host.as_str(), port), ("::1", 5))
                }
                _ => panic!("expected dial"),
            }
        }
        let Ok(Plan::Relay { quiet: true, .. }) = plan(&["p2pchat", "relay", "0", "-q"]) else {
            panic!("relay takes -q")
        };
    }

    #[test]
    fn each_command_takes_only_its_own_flags() {
        let args = |a: &[&str]| -> Vec<OsString> {
            std::iter::once("p2pchat")
                .chain(a.iter().copied())
                .map(Into::into)
                .collect()
        };
        for flag in [
            &["--idle-timeout", "5"][..],
            &["--resume-buffer", "7"],
            &["--plain"],
            &["--name", "x"],
            &["--progress"],
        ] {
            let mut a = vec!["relay", "0"];
            a.extend(flag);
            let err = parse_args(&args(&a)).unwrap_err();
            assert!(
                err.to_string()
                    .contains(&format!("{} is for listen and dial, not relay", flag[0])),
                "{err}"
            );
        }
        // Room options go after the command they shape.
        let err = parse_args(&args(&["--plain", "listen", "5"])).unwrap_err();
        assert!(
            err.to_string()
                .contains("--plain belongs to listen: put it after 'listen'"),
            "{err}"
        );
        for sub in ["completions", "manpage", "relay"] {
            let mut cmd = Cli::command();
            cmd.build();
            let sub = cmd.find_subcommand(sub).expect("a command");
            let longs: Vec<_> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
            for room in ["plain", "name", "resume", "idle-timeout", "secret-file"] {
                assert!(!longs.contains(&room), "{} lists --{room}", sub.get_name());
            }
        }
    }

    #[test]
    fn map_is_off_by_default_and_needs_an_ipv4_listener() {
        let map = |args: &[&str]| match plan(args) {
            Ok(Plan::Room(c)) => Ok(c.room.map.is_some()),
            Ok(_) => Err("not a room".to_string()),
            Err(e) => Err(e),
        };
        assert_eq!(map(&["p2pchat", "listen", "0"]), Ok(false));
        assert_eq!(map(&["p2pchat", "listen", "0", "--map"]), Ok(true));
        assert_eq!(
            map(&["p2pchat", "listen", "0", "--map", "--bind", "192.168.1.2"]),
            Ok(true)
        );
        assert_eq!(
            map(&["p2pchat", "listen", "0", "--map", "--bind", "::"]),
            Ok(true)
        );
        for bind in ["127.0.0.1", "::1", "2001:db8::7"] {
            let e = map(&["p2pchat", "listen", "0", "--map", "--bind", bind]).unwrap_err();
            assert!(e.contains("--map forwards to this machine's IPv4"), "{e}");
        }
        assert!(map(&["p2pchat", "listen", "--relay", "r.example", "--map"]).is_err());
        assert!(map(&["p2pchat", "dial", "h", "1", "--map"]).is_err());
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
    fn dial_takes_a_port_inline_or_apart_but_not_both() {
        let ok = |h: &str, p: Option<u16>| dial_target(h, p).map_err(|e| e.to_string());
        assert_eq!(ok("h", Some(5)), Ok(("h".into(), 5)));
        assert_eq!(ok("h:5", None), Ok(("h".into(), 5)));
        assert_eq!(ok("[::1]:5", None), Ok(("::1".into(), 5)));
        assert_eq!(ok("[::1]", Some(5)), Ok(("::1".into(), 5)));
        assert_eq!(ok("fe80::1", Some(5)), Ok(("fe80::1".into(), 5)));
        assert!(ok("h:5", Some(6)).unwrap_err().contains("given twice"));
        assert!(ok("h", None).unwrap_err().contains("needs a port"));
        assert!(ok("::1", None).unwrap_err().contains("needs a port"));
        assert!(ok("h:0", None).unwrap_err().contains("not a port"));
        assert!(ok("[::1]x", None).is_err());
        assert!(ok(":5", None).unwrap_err().contains("no host name"));
    }

    #[test]
    fn a_misplaced_flag_is_told_where_it_belongs() {
        let args = |a: &[&str]| -> Vec<OsString> {
            std::iter::once("p2pchat")
                .chain(a.iter().copied())
                .map(Into::into)
                .collect()
        };
        let err = parse_args(&args(&["listen", "5", "--retry", "3"])).unwrap_err();
        assert!(
            err.to_string().contains("--retry is for dial, not listen"),
            "{err}"
        );
        let err = parse_args(&args(&["dial", "h", "5", "--tries=2"])).unwrap_err();
        assert!(
            err.to_string().contains("--tries is for listen, not dial"),
            "{err}"
        );
        let err = parse_args(&args(&["dial", "h", "5", "--nonsense"])).unwrap_err();
        assert!(err.to_string().contains("unexpected argument"), "{err}");
    }

    #[test]
    fn seconds_must_be_positive() {
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("abc").is_err());
        assert_eq!(parse_secs("1.5").unwrap(), Duration::from_millis(1500));
    }
}
