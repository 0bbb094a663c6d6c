//! Entry point and composition root: parse, build the reactor and the
//! front-end, run the room, and map every error to one exit code in one
//! place.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use p2pchat::cli::Cli;
use p2pchat::driver::{peer, Reactor};
use p2pchat::error::{exit, Error};
use p2pchat::frontend;

fn main() -> ExitCode {
    // Never a backtrace for the user: one line, and the documented code (101).
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(io::stderr(), "p2pchat: internal error: {info}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match cli.into_config().and_then(|cfg| run(&cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

/// Wires the pieces: one reactor, the front-end the terminal calls for,
/// and the peer service on top.
fn run(cfg: &p2pchat::cli::Config) -> Result<(), Error> {
    let mut reactor = Reactor::new()?;
    let mut ui = frontend::open(
        cfg,
        reactor.registry(),
        reactor.user_tokens(),
        reactor.waker(),
        reactor.interrupts(),
    )?;
    let result = peer::run(&mut reactor, cfg, ui.as_mut());
    ui.finish();
    result
}

fn report(e: &Error) -> ExitCode {
    // Not eprintln!: it panics when stderr is a closed pipe.
    let _ = writeln!(io::stderr(), "p2pchat: {e}");
    ExitCode::from(e.exit_code())
}
