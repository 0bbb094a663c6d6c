//! Entry point and composition root: parse, build the reactor and the
//! front-end, run the room, and map every error to one exit code in one
//! place.

use std::io::{self, Write};
use std::process::ExitCode;

use p2pchat::cli::{Config, Plan};
use p2pchat::driver::config::{MapConfig, PeerConfig};
use p2pchat::driver::files::FilePolicy;
use p2pchat::driver::relay::RelayConfig;
use p2pchat::driver::{peer, relay, Reactor, SystemRng};
use p2pchat::error::{exit, Error};
use p2pchat::frontend::{self, ChatOptions};
use p2pchat::manual;
use p2pchat::protocol::code::Code;
use p2pchat::session::Security;

fn main() -> ExitCode {
    // Never a backtrace for the user: one line, and the documented code (101).
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(io::stderr(), "p2pchat: internal error: {info}");
    }));
    // Colors, redrawn progress lines and the prompt's cursor moves are
    // escape sequences; a Windows console acts on them only when asked.
    p2pchat::sys::terminal::enable_escapes();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match p2pchat::cli::parse_args(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        Err(e) => {
            // One style for every error: `p2pchat: ...`, clap's included.
            let text = e.render().to_string();
            let text = match text.strip_prefix("error: ") {
                Some(rest) => format!("p2pchat: {rest}"),
                None => text,
            };
            let _ = write!(io::stderr(), "{text}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let result = SystemRng::new()
        .and_then(|mut rng| cli.into_plan(&mut rng))
        .and_then(|plan| match plan {
            Plan::Room(cfg) if cfg.keep => keep_hosting(cfg),
            Plan::Room(cfg) => run(&peer_config(&cfg), chat_options(&cfg), &mut 0).map(|_| ()),
            Plan::Relay { bind, port, quiet } => Reactor::new().and_then(|mut r| {
                let cfg = RelayConfig {
                    bind,
                    port,
                    quiet,
                    limits: p2pchat::relay::Limits::default(),
                };
                relay::run(&mut r, &cfg)
            }),
            Plan::Completions(shell) => print(|out| manual::completions(shell, out)),
            Plan::Manpage => print(manual::manpage),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// `listen --keep`: one room after another, each with a fresh code, until
/// we leave at the prompt (`/quit`, Ctrl-D), a signal, or a failure that
/// the next room would meet too (the port is taken, the relay is
/// unreachable, the terminal is gone). A peer leaving ends only its room.
/// The `--tries` budget is the process's: failed attempts add up over the
/// rooms, and when they reach it the hosting ends (exit 3), or a stranger
/// would get a fresh set of guesses with every room.
fn keep_hosting(mut cfg: Config) -> Result<(), Error> {
    loop {
        if let Security::Code(_) = cfg.security {
            cfg.security = Security::Code(Code::generate(&mut SystemRng::new()?));
        }
        let mut failed = cfg.failed_before;
        let result = run(&peer_config(&cfg), chat_options(&cfg), &mut failed);
        cfg.failed_before = failed;
        match result {
            Ok(peer::Ended::ByUs) => return Ok(()),
            Ok(peer::Ended::Otherwise) => {}
            Err(
                e @ (Error::Interrupted(_) | Error::Usage(_) | Error::Local(_) | Error::Connect(_)),
            ) => return Err(e),
            // The room's own error already counts every room's attempts.
            Err(e) if failed >= cfg.tries => return Err(e),
            Err(e) => {
                // A room that ends badly is a normal event while hosting:
                // said as a status line, not as the program's error.
                let _ = writeln!(io::stderr(), "the room ended: {e}");
            }
        }
        if failed >= cfg.tries {
            return Err(Error::AuthFailed(format!(
                "{failed} failed attempt{} to join while hosting: someone may be guessing; \
                 giving up",
                if failed == 1 { "" } else { "s" }
            )));
        }
        if !cfg.quiet {
            let _ = writeln!(io::stderr(), "the room is over; hosting the next one");
        }
    }
}

/// What the chat room alone needs.
fn chat_options(cfg: &Config) -> ChatOptions {
    ChatOptions {
        keep: cfg.keep,
        bell: cfg.bell,
    }
}

/// The room the user asked for, in the driver's terms.
fn peer_config(cfg: &Config) -> PeerConfig {
    PeerConfig {
        endpoint: cfg.endpoint.clone(),
        security: cfg.security.clone(),
        name: cfg.name.clone(),
        quiet: cfg.quiet,
        idle_timeout: cfg.idle_timeout,
        handshake_timeout: cfg.handshake_timeout,
        progress: cfg.progress,
        resume: cfg.resume,
        resume_buffer: cfg.resume_buffer,
        tries: cfg.tries,
        failed_before: cfg.failed_before,
        map: cfg.map.then(|| MapConfig { lease: map_lease() }),
        send: cfg.send.clone(),
        files: FilePolicy {
            dir: cfg.save_dir.clone(),
            take_all: cfg.receive_all,
        },
    }
}

/// The lease asked of the router: two hours (RFC 6886's recommendation),
/// or `P2PCHAT_MAP_LEASE` seconds, which the tests set to watch renewals.
fn map_lease() -> std::time::Duration {
    let secs = std::env::var("P2PCHAT_MAP_LEASE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&s| s > 0)
        .unwrap_or(7200);
    std::time::Duration::from_secs(secs)
}

/// Wires the pieces: one reactor, the front-end the terminal calls for,
/// and the peer service on top. `failed` comes back with the failed
/// attempts to join so far (see [`peer::run`]).
fn run(cfg: &PeerConfig, chat: ChatOptions, failed: &mut u32) -> Result<peer::Ended, Error> {
    let mut reactor = Reactor::new()?;
    let mut ui = frontend::open(
        cfg,
        chat,
        reactor.registry(),
        reactor.user_tokens(),
        reactor.waker(),
        reactor.interrupts(),
    )?;
    let result = peer::run(&mut reactor, cfg, ui.as_mut(), failed);
    ui.finish();
    result
}

/// Writes a generated document to stdout; a closed stdout (`| head`) is
/// the reader's choice, not an error.
fn print(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Error> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Local(format!(
            "cannot write to stdout: {}",
            p2pchat::error::describe_io(&e)
        ))),
    }
}

fn report(e: &Error) -> ExitCode {
    // Not eprintln!: it panics when stderr is a closed pipe.
    let _ = writeln!(io::stderr(), "p2pchat: {e}");
    ExitCode::from(e.exit_code())
}
