//! Where a shared secret comes from: `P2PCHAT_SECRET`, `--secret-file`, or a
//! no-echo prompt on the terminal. Never from argv, where `ps` would show it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::Error;

pub const ENV_VAR: &str = "P2PCHAT_SECRET";

/// One place a secret can come from.
pub enum Source {
    Env,
    File(PathBuf),
    Ask,
}

impl Source {
    /// The source the user chose: a flag wins over the environment.
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

    /// Reads the secret, trimmed of surrounding whitespace; it must not be empty.
    pub fn read(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let raw = match self {
            Source::Env => Zeroizing::new(
                std::env::var_os(ENV_VAR)
                    .map(|v| v.into_encoded_bytes())
                    .unwrap_or_default(),
            ),
            Source::File(path) => read_first_line(path)?,
            Source::Ask => prompt_no_echo("shared secret: ")?,
        };
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return Err(Error::Usage(format!(
                "the shared secret from {} is empty",
                self.describe()
            )));
        }
        Ok(Zeroizing::new(trimmed.to_vec()))
    }
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
    let no_tty = |_| Error::Usage("--ask-secret needs a terminal to prompt on".into());
    let mut tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        return Err(Error::Usage(
            "--ask-secret needs a terminal to prompt on".into(),
        ));
    }
    let mut quiet = saved;
    quiet.c_lflag &= !(libc::ECHO | libc::ECHONL);
    quiet.c_lflag |= libc::ICANON;
    let _ = tty.write_all(prompt.as_bytes());
    // SAFETY: fd is an open terminal; the termios came from tcgetattr.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let mut line = Zeroizing::new(Vec::new());
    let result = BufReader::new(&tty).read_until(b'\n', &mut line);
    // SAFETY: as above; restores what the user had.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    let _ = tty.write_all(b"\n");
    result.map_err(|e| {
        Error::Usage(format!(
            "cannot read the secret: {}",
            crate::error::describe_io(&e)
        ))
    })?;
    Ok(line)
}
