//! Entry point: parse, run, and map every error to one exit code in one place.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;

use p2pchat::cli::Cli;
use p2pchat::driver;
use p2pchat::error::{exit, Error};

fn main() -> ExitCode {
    // Never a backtrace for the user: one line, and the documented code.
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
    match cli.into_config().and_then(driver::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(&e),
    }
}

fn report(e: &Error) -> ExitCode {
    // Not eprintln!: it panics when stderr is a closed pipe.
    let _ = writeln!(io::stderr(), "p2pchat: {e}");
    ExitCode::from(e.exit_code())
}
