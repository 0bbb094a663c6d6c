//! Where a shared secret comes from: `P2PCHAT_SECRET`, `--secret-file`, or a
//! no-echo prompt on the terminal. Never from argv, where `ps` would show it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
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

/// A warning if others may read or change the secret file.
fn permissive(path: &PathBuf) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "warning: secret file {} can be read or changed by other users (mode {:o}); \
             chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

/// Removes `name` from the environment, and first overwrites its value
/// where the kernel shows it: `/proc/PID/environ` reads the process's
/// original environment block, which `remove_var` alone leaves intact.
/// Called while the program is still single-threaded.
pub fn scrub_env(name: &str) {
    // Linux: the initial environment lives in the process's memory and
    // `environ` points into it until something replaces it.
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    let prefix = format!("{name}=");
    // SAFETY: single-threaded at this point; each entry is a NUL-terminated
    // string we only overwrite in place, within its own length.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = *p;
            let bytes = std::ffi::CStr::from_ptr(entry).to_bytes();
            if bytes.starts_with(prefix.as_bytes()) {
                let value = entry.add(prefix.len());
                std::ptr::write_bytes(value, 0, bytes.len() - prefix.len());
            }
            p = p.add(1);
        }
        std::env::remove_var(name);
    }
}

/// While a secret is in memory: no core file, and no ptrace or
/// /proc/PID/mem reading by other processes of the same user.
fn protect_memory() {
    let zero = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on our own process with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &zero);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
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
    // No echo, and Ctrl-C read as a key (not a signal) so the terminal is
    // always put back before we leave.
    quiet.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG);
    quiet.c_cc[libc::VMIN] = 1;
    quiet.c_cc[libc::VTIME] = 0;
    let _ = tty.write_all(prompt.as_bytes());
    // SAFETY: fd is an open terminal; the termios came from tcgetattr.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &quiet) };
    let result = read_secret_keys(&mut tty);
    // SAFETY: as above; restores what the user had.
    unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    let _ = tty.write_all(b"\n");
    let line = result?;
    Ok(line)
}

/// Reads keys up to Enter: Backspace and Ctrl-U edit, Ctrl-C interrupts
/// (exit 130), Ctrl-D on an empty line gives up.
fn read_secret_keys(tty: &mut File) -> Result<Zeroizing<Vec<u8>>, Error> {
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
