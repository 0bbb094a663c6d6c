//! The pipe front-end: peer bytes go to stdout exactly as sent, our stdin
//! goes to the peer exactly as read, and status lines go to stderr.

use std::io::{self, Write};

use mio::{Registry, Token};

use super::sanitize::Sanitizer;
use super::{Input, Notice, UserSide, STDIN, STDOUT};
use crate::driver::net::display_addr;
use crate::driver::stdio;

pub struct Pipe {
    stdin: stdio::Input,
    stdout: stdio::Output,
    quiet: bool,
    /// Set when stdout is a terminal: the peer's bytes are made safe there.
    sanitizer: Option<Sanitizer>,
}

impl Pipe {
    pub fn open(registry: &Registry, quiet: bool) -> io::Result<Pipe> {
        Ok(Pipe {
            stdin: stdio::Input::open(registry, STDIN)?,
            stdout: stdio::Output::open(registry, STDOUT)?,
            quiet,
            sanitizer: stdio::is_terminal(1).then(Sanitizer::default),
        })
    }
}

/// One status line on stderr; a failing stderr is not worth dying for.
pub fn status_line(line: &str) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

impl UserSide for Pipe {
    fn on_ready(&mut self, token: Token, closed: bool) {
        match token {
            STDIN => self.stdin.on_ready(closed),
            STDOUT => self.stdout.ready = true,
            _ => {}
        }
    }

    fn rearm(&mut self, registry: &Registry) {
        self.stdin.rearm(registry, STDIN);
    }

    fn input_ready(&self) -> bool {
        self.stdin.is_open() && self.stdin.ready
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<Input> {
        match self.stdin.read(buf) {
            Ok(0) => Ok(Input::End),
            Ok(n) => Ok(Input::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stdin.ready = false;
                Ok(Input::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Input::Blocked),
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
            io::stdout().lock().write_all(shown.as_bytes())?;
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
        self.stdout.close(registry);
    }

    fn output_open(&self) -> bool {
        self.stdout.is_open()
    }

    fn notice(&mut self, notice: Notice<'_>) {
        if !self.quiet {
            if let Some(line) = describe(&notice) {
                status_line(&line);
            }
        }
    }
}

/// The status line for a notice, as both front-ends word it.
pub fn describe(notice: &Notice<'_>) -> Option<String> {
    Some(match notice {
        Notice::Listening(addr) => format!("listening on {addr}"),
        Notice::PlainWarning => {
            "plain mode: the chat is not encrypted; anyone on the path can read and change it"
                .into()
        }
        Notice::FailedAttempt(addr, why) => {
            format!(
                "connection from {} failed: {why}; still waiting",
                display_addr(*addr)
            )
        }
        Notice::Joined {
            peer,
            name,
            verify_code,
        } => {
            let mut line = match name {
                Some(n) => format!("connected to {n} ({})", display_addr(*peer)),
                None => format!("connected to {}", display_addr(*peer)),
            };
            if let Some(code) = verify_code {
                line.push_str(&format!("\nverify code: {code}"));
            }
            line
        }
        Notice::PeerDone(name) => format!("{name} stopped sending"),
        Notice::PeerLeft(name) => format!("{name} left the room"),
    })
}
