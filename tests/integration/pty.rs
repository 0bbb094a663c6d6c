//! A real pseudo-terminal for the tests: p2pchat runs with a pty as its
//! controlling terminal, stdin, stdout and stderr, and a vt100 parser
//! renders what it draws so tests assert on the screen a person sees.

use std::io::Write;
use std::num::NonZeroU16;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::util::{wait_until, wait_until_lazy, BIN, DEADLINE};

pub struct Pty {
    master: std::fs::File,
    pub child: Child,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    /// Reads the terminal until every writer to it is gone.
    reader: Option<std::thread::JoinHandle<()>>,
}

fn size(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero size")
}

/// A new pseudo-terminal of `rows` x `cols`: its master and its slave.
pub fn open_pty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let mut ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two fds; null name and termios mean defaults.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &raw mut ws,
        )
    };
    assert_eq!(rc, 0, "openpty failed");
    // SAFETY: both fds are fresh and owned here.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// Makes `cmd` start a new session whose controlling terminal is the pty
/// on its stdout (which the caller set), as a terminal window does.
pub fn in_own_session(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(1, libc::TIOCSCTTY as _, 0);
            Ok(())
        });
    }
}

impl Pty {
    /// Starts p2pchat with `args` at a `rows` x `cols` terminal.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], rows: u16, cols: u16) -> Pty {
        Pty::spawn_stdin(args, env, rows, cols, true)
    }

    /// As `spawn`; with `stdin_tty` false, stdin is /dev/null instead.
    pub fn spawn_stdin(
        args: &[&str],
        env: &[(&str, &str)],
        rows: u16,
        cols: u16,
        stdin_tty: bool,
    ) -> Pty {
        let stdin = (!stdin_tty).then(Stdio::null);
        Pty::spawn_with(args, env, rows, cols, stdin)
    }

    /// As `spawn`, with stdin from `stdin` (None: the terminal).
    pub fn spawn_with(
        args: &[&str],
        env: &[(&str, &str)],
        rows: u16,
        cols: u16,
        stdin: Option<Stdio>,
    ) -> Pty {
        let (master, slave) = open_pty(rows, cols);
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TERM", "xterm")
            .env("USER", "tester")
            .env_remove("P2PCHAT_SECRET")
            .env_remove("NO_COLOR")
            .stdin(stdin.unwrap_or_else(|| Stdio::from(slave.try_clone().unwrap())))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        in_own_session(&mut cmd);
        let child = cmd.spawn().expect("spawn under a pty");
        drop(slave);
        let master = std::fs::File::from(master);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(size(rows), size(cols), 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (sc, rw) = (screen.clone(), raw.clone());
        let reader = master.try_clone().unwrap();
        let reader = crate::util::collect(reader, move |b| {
            sc.lock().unwrap().process(b);
            rw.lock().unwrap().extend_from_slice(b);
        });
        Pty {
            master,
            child,
            screen,
            raw,
            reader: Some(reader),
        }
    }

    /// The rendered screen, one string per row, trailing blanks trimmed.
    pub fn rows(&self) -> Vec<String> {
        let p = self.screen.lock().unwrap();
        let (_, cols) = p.screen().size();
        p.screen()
            .rows(0, cols.get())
            .map(|r| r.trim_end().to_string())
            .collect()
    }

    pub fn text(&self) -> String {
        self.rows().join("\n")
    }

    /// Everything the program wrote, escape sequences included.
    pub fn raw(&self) -> Vec<u8> {
        self.raw.lock().unwrap().clone()
    }

    /// Waits for `listening on 127.0.0.1:PORT` and returns the port.
    pub fn listening_port(&self) -> u16 {
        const LINE: &str = "listening on 127.0.0.1:";
        self.wait_for(LINE);
        // Rows joined without breaks: on a narrow terminal the line wraps.
        let text = self.rows().concat();
        let rest = text.split(LINE).nth(1).expect("listening line");
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("port")
    }

    pub fn wait_for(&self, needle: &str) {
        wait_until_lazy(
            || format!("{needle:?} on the screen:\n{}", self.text()),
            DEADLINE,
            || self.text().contains(needle),
        );
    }

    /// Waits until the row holding the cursor reads exactly `line`.
    pub fn wait_cursor_row(&self, line: &str) {
        wait_until_lazy(
            || format!("the cursor row to read {line:?}; screen:\n{}", self.text()),
            DEADLINE,
            || {
                let row = self.screen.lock().unwrap().screen().cursor_position().0 as usize;
                self.rows().get(row).is_some_and(|r| r == line)
            },
        );
    }

    pub fn type_text(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .expect("write to pty");
    }

    /// Resizes the terminal; the kernel sends SIGWINCH to the program.
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        self.screen.lock().unwrap().set_size(size(rows), size(cols));
        // SAFETY: TIOCSWINSZ on our pty master.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }

    /// Hangs up as a closing window does: SIGHUP to the program, and the
    /// terminal gone for reads.
    pub fn hang_up(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGHUP) };
    }

    /// Returns true if and only if the terminal echoes typed keys (as a
    /// shell left behind would need).
    pub fn echo_on(&self) -> bool {
        // SAFETY: tcgetattr on the master reports the pty pair's termios.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::tcgetattr(self.master.as_raw_fd(), &mut t) };
        rc == 0 && t.c_lflag & libc::ECHO != 0
    }

    pub fn code(&mut self) -> i32 {
        wait_until("the program to exit", DEADLINE, || {
            self.child.try_wait().unwrap().is_some()
        });
        let status = self.child.wait().unwrap();
        // What it wrote before exiting may still be on its way to the
        // screen: the reader ends once nothing holds the terminal open.
        if let Some(reader) = self.reader.take() {
            wait_until("the screen to have all it wrote", DEADLINE, || {
                reader.is_finished()
            });
        }
        status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status:?}\n{}", self.text()))
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
