//! The pipe front-end: peer bytes go to stdout exactly as sent, our stdin
//! goes to the peer exactly as read, and status lines go to stderr.

use std::io::{self, Write};

use std::sync::Arc;

use mio::{Registry, Token, Waker};

use super::sanitize::Sanitizer;
use super::{notice, stdio};
use crate::driver::user::{Notice, UserInput, UserSide, UserTokens};

pub struct Pipe {
    tokens: UserTokens,
    stdin: stdio::Stdin,
    stdout: stdio::Stdout,
    quiet: bool,
    /// Set when stdout is a terminal: the peer's bytes are made safe there.
    sanitizer: Option<Sanitizer>,
    /// stderr is a terminal: `--progress` redraws one line in place.
    stderr_is_terminal: bool,
    /// The progress line on screen, redrawn after a status line.
    progress_shown: Option<String>,
    /// stdin is a terminal and stdout is not: we are receiving.
    receiving: bool,
}

impl Pipe {
    pub fn open(
        registry: &Registry,
        tokens: UserTokens,
        quiet: bool,
        waker: Arc<Waker>,
    ) -> io::Result<Pipe> {
        Ok(Pipe {
            tokens,
            stdin: stdio::Stdin::open(registry, tokens.stdin, waker.clone())?,
            stdout: stdio::Stdout::open(registry, tokens.stdout, waker)?,
            quiet,
            sanitizer: stdio::is_terminal(1).then(Sanitizer::default),
            stderr_is_terminal: stdio::is_terminal(2),
            progress_shown: None,
            receiving: stdio::is_terminal(0) && !stdio::is_terminal(1),
        })
    }
}

/// One status line on stderr; a failing stderr is not worth dying for.
pub fn status_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

impl UserSide for Pipe {
    fn on_ready(&mut self, token: Token, closed: bool) {
        if token == self.tokens.stdin {
            self.stdin.on_ready(closed);
        } else if token == self.tokens.stdout {
            self.stdout.ready = true;
        }
    }

    fn on_wake(&mut self) {
        self.stdin.on_wake();
        self.stdout.on_wake();
    }

    fn finish(&mut self) {
        self.stdout.finish();
    }

    fn input_ready(&self) -> bool {
        self.stdin.is_open() && self.stdin.ready
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<UserInput> {
        match self.stdin.read(buf) {
            Ok(0) => Ok(UserInput::End),
            Ok(n) => Ok(UserInput::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stdin.ready = false;
                Ok(UserInput::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(UserInput::Blocked),
            Err(e) => Err(e),
        }
    }

    fn close_input(&mut self, registry: &Registry) {
        self.stdin.close(registry);
    }

    fn output_ready(&self) -> bool {
        self.stdout.is_open() && self.stdout.ready
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(s) = self.sanitizer.as_mut() {
            // A terminal: blocking writes of the rendered text.
            let mut shown = String::new();
            s.push(data, &mut shown);
            let mut out = io::stdout().lock();
            out.write_all(shown.as_bytes())?;
            out.flush()?;
            return Ok(data.len());
        }
        match self.stdout.write(data) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stdout.ready = false;
                Ok(0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            r => r,
        }
    }

    fn close_output(&mut self, registry: &Registry) {
        if let Some(s) = self.sanitizer.as_mut() {
            let mut rest = String::new();
            s.flush(&mut rest);
            let _ = io::stdout().lock().write_all(rest.as_bytes());
        }
        // Nothing may stay in std's buffer when fd 1 is replaced.
        let _ = io::stdout().flush();
        self.stdout.close(registry);
    }

    fn output_open(&self) -> bool {
        self.stdout.is_open()
    }

    fn notice(&mut self, notice: Notice<'_>) {
        if !self.quiet || notice.essential() {
            // A status line goes above the progress line, which stays last.
            if self.progress_shown.is_some() {
                let _ = write!(io::stderr().lock(), "\r\x1b[K");
            }
            for line in notice::lines(&notice) {
                status_line(&line);
            }
            if let Some(p) = &self.progress_shown {
                let _ = write!(io::stderr().lock(), "{p}");
            }
        }
    }

    fn input_follows_peer(&self) -> bool {
        self.receiving
    }

    fn input_rewindable(&self) -> bool {
        self.stdin.rewindable()
    }

    fn rewind_input(&mut self, at: u64) -> io::Result<()> {
        self.stdin.rewind(at)
    }

    fn input_len(&self) -> Option<u64> {
        stdio::regular_file_left()
    }

    fn progress_every(&self) -> std::time::Duration {
        // Redrawn in place at a terminal; occasional lines in a log.
        if self.stderr_is_terminal {
            std::time::Duration::from_millis(500)
        } else {
            std::time::Duration::from_secs(5)
        }
    }

    fn file_progress(&mut self, line: Option<&str>) {
        // `--progress` asked for it (the driver shows it only then): the
        // same line as a transfer's, redrawn in place at a terminal.
        match line {
            Some(line) => self.progress(line, false),
            None if self.stderr_is_terminal && self.progress_shown.is_some() => {
                let _ = write!(io::stderr().lock(), "\r\x1b[K");
                self.progress_shown = None;
            }
            None => {}
        }
    }

    fn progress(&mut self, line: &str, last: bool) {
        let mut err = io::stderr().lock();
        if !self.stderr_is_terminal {
            let _ = writeln!(err, "{line}");
            return;
        }
        // At a terminal: one line, redrawn in place, ended by the summary.
        let _ = write!(err, "\r\x1b[K{line}");
        if last {
            let _ = writeln!(err);
            self.progress_shown = None;
        } else {
            self.progress_shown = Some(line.to_string());
        }
    }
}
