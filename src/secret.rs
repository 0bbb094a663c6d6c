//! Where a shared secret comes from: `P2PCHAT_SECRET`, `--secret-file`, or a
//! no-echo prompt on the terminal. Never from argv, where `ps` would show it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Signal};

pub const ENV_VAR: &str = "P2PCHAT_SECRET";
/// Below this many characters a secret is easy to guess: say so.
const SHORT_SECRET: usize = 8;

/// One place a secret can come from.
pub enum Source {
    Env,
    File(PathBuf),
    Ask,
}

impl Source {
    /// The source the user chose: `--secret-file` or `--ask-secret` wins
    /// over `P2PCHAT_SECRET`; both flags at once are a usage error.
    pub fn pick(file: Option<PathBuf>, ask: bool) -> Result<Option<Source>, Error> {
        Ok(match (file, ask) {
            (Some(_), true) => {
                return Err(Error::Usage(
                    "give the secret one way: --secret-file or --ask-secret".into(),
                ))
            }
            (Some(path), false) => Some(Source::File(path)),
            (None, true) => Some(Source::Ask),
            (None, false) => std::env::var_os(ENV_VAR).map(|_| Source::Env),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Env => ENV_VAR.to_string(),
            Source::File(p) => format!("--secret-file {}", p.display()),
            Source::Ask => "--ask-secret".to_string(),
        }
    }

    /// Reads the secret, trimmed of surrounding whitespace; it must not be
    /// empty. Warnings (a short secret, a file others can read) go to
    /// `warn`. The environment variable is wiped once read.
    pub fn read(&self, warn: &mut dyn FnMut(String)) -> Result<Zeroizing<Vec<u8>>, Error> {
        let raw = match self {
            Source::Env => {
                let v = Zeroizing::new(
                    std::env::var_os(ENV_VAR)
                        .map(|v| v.into_encoded_bytes())
                        .unwrap_or_default(),
                );
                scrub_env(ENV_VAR);
                v
            }
            Source::File(path) => {
                if let Some(w) = permissive(path) {
                    warn(w);
                }
                read_first_line(path)?
            }
            Source::Ask => prompt_no_echo("shared secret: ")?,
        };
        protect_memory();
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(Error::Usage(format!(
                "the shared secret from {} is empty",
                self.describe()
            )));
        }
        let chars = String::from_utf8_lossy(trimmed).chars().count();
        if chars < SHORT_SECRET {
            warn(format!(
                "warning: the shared secret is only {chars} character{}: a stranger gets a few \
                 guesses per run (--tries), so a short secret can fall; use {SHORT_SECRET} or more",
                if chars == 1 { "" } else { "s" }
            ));
        }
        Ok(Zeroizing::new(trimmed.to_vec()))
    }
}

/// A warning if others may read or change the secret file (Unix; Windows
/// has no mode bits to look at).
fn permissive(path: &std::path::Path) -> Option<String> {
    let mode = crate::sys::process::file_mode(path)?;
    (mode & 0o077 != 0).then(|| {
        format!(
            "warning: secret file {} can be read or changed by other users (mode {:o}); \
             chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

/// Removes `name` from the environment, overwriting its value first where
/// other processes could read it (`sys::process::scrub_env`).
pub fn scrub_env(name: &str) {
    crate::sys::process::scrub_env(name);
}

/// While a secret is in memory: no core file, and no debugger or memory
/// reading by other processes, as far as the system allows.
fn protect_memory() {
    crate::sys::process::protect_memory();
}

fn read_first_line(path: &PathBuf) -> Result<Zeroizing<Vec<u8>>, Error> {
    let file = File::open(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read secret file {}: {}",
            path.display(),
            crate::error::describe_io(&e)
        ))
    })?;
    let mut line = Zeroizing::new(Vec::new());
    // A secret file is small; cap what we read so /dev/zero cannot eat memory.
    BufReader::new(file.take(64 * 1024))
        .read_until(b'\n', &mut line)
        .map_err(|e| {
            Error::Usage(format!(
                "cannot read secret file {}: {}",
                path.display(),
                crate::error::describe_io(&e)
            ))
        })?;
    Ok(line)
}

/// Prompts on the controlling terminal with echo off. Stdin is never used:
/// it may carry the data to send.
fn prompt_no_echo(prompt: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let no_tty = || Error::Usage("--ask-secret needs a terminal to prompt on".into());
    let tty = crate::sys::terminal::Tty::open().map_err(|_| no_tty())?;
    let result = {
        // No echo, and Ctrl-C read as a key (not a signal) so the terminal
        // is always put back (when the guard drops) before we leave.
        let _quiet = tty.quiet_keys().ok_or_else(no_tty)?;
        let _ = (&tty.output).write_all(prompt.as_bytes());
        read_secret_keys(&tty.input)
    };
    let _ = (&tty.output).write_all(b"\n");
    let line = result?;
    Ok(line)
}

/// Reads keys up to Enter: Backspace and Ctrl-U edit, Ctrl-C interrupts
/// (exit 130), Ctrl-D on an empty line gives up.
fn read_secret_keys(mut tty: &File) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut line = Zeroizing::new(Vec::new());
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Usage(format!(
                    "cannot read the secret: {}",
                    crate::error::describe_io(&e)
                )))
            }
        }
        match byte[0] {
            b'\r' | b'\n' => break,
            0x03 => return Err(Error::Interrupted(Signal::Int)),
            0x04 if line.is_empty() => break,
            0x7f | 0x08 => {
                line.pop();
            }
            0x15 => line.clear(),
            b => line.push(b),
        }
    }
    Ok(line)
}
