//! The chat room in tmux, a terminal that reflows wrapped lines on a resize
//! as most do (VTE, kitty, iTerm2); vt100 in `pty.rs` does not. A resize
//! while the draft wraps must never erase a received message, and a
//! wide-character draft must leave no stale copy of the prompt.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::*;

/// A tmux server of its own running one p2pchat, killed on drop.
pub(crate) struct Tmux {
    socket: String,
}

impl Tmux {
    /// `p2pchat ARGS` in a detached `cols` × `rows` window, or None (after
    /// a SKIPPED line) without tmux.
    pub(crate) fn start(args: &[&str], cols: u16, rows: u16) -> Option<Tmux> {
        if !have("tmux") {
            return None;
        }
        let mut command = format!("exec '{BIN}'");
        for a in args {
            command.push_str(&format!(" '{a}'"));
        }
        Tmux::start_command(&command, cols, rows)
    }

    /// A shell `command` in a detached `cols` × `rows` window, or None
    /// without tmux.
    pub(crate) fn start_command(command: &str, cols: u16, rows: u16) -> Option<Tmux> {
        if !have("tmux") {
            return None;
        }
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "p2preflow{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let t = Tmux { socket };
        let (c, r) = (cols.to_string(), rows.to_string());
        t.tmux(&["new-session", "-d", "-x", &c, "-y", &r, command]);
        // The window follows resize-window, not the (absent) client.
        t.tmux(&["set-option", "-g", "window-size", "manual"]);
        Some(t)
    }

    pub(crate) fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The whole history and screen, wrapped lines joined.
    pub(crate) fn transcript(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-"])
    }

    /// The screen as shown, row by row.
    pub(crate) fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p"])
    }

    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Resizes the window and waits until the program's pty has the new
    /// width: tmux sets it (and so sends the SIGWINCH) a moment after the
    /// pane itself changed.
    pub(crate) fn resize(&self, cols: u16) {
        self.tmux(&["resize-window", "-t", "0", "-x", &cols.to_string()]);
        let tty = self.tmux(&["display-message", "-p", "-t", "0", "#{pane_tty}"]);
        let tty = std::fs::File::open(tty.trim()).expect("the pane's tty");
        wait_until("the pty to take the new width", DEADLINE, || {
            use std::os::fd::AsRawFd;
            // SAFETY: TIOCGWINSZ fills a winsize; the fd is open.
            let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
            rc == 0 && ws.ws_col == cols
        });
    }

    pub(crate) fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) {
        wait_until_lazy(
            || format!("{what}; the screen:\n{}", self.screen()),
            DEADLINE,
            || cond(&self.transcript()),
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.tmux(&["kill-server"]);
    }
}

/// Bob listens from a pipe; alice dials from tmux.
fn room(cols: u16) -> Option<(Tmux, Proc)> {
    let (bob, port) = listen(&["--name", "bob"], "127.0.0.1", In::Pipe);
    let port = port.to_string();
    let alice = Tmux::start(&["dial", "--name", "alice", "127.0.0.1", &port], cols, 20)?;
    alice.wait_for("alice's prompt", |t| t.contains("alice>"));
    Some((alice, bob))
}

fn leave(alice: Tmux, mut bob: Proc) {
    // Ctrl-U drops a draft still in the editor.
    alice.keys(&["C-u", "/quit", "Enter"]);
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}

/// Shrinking and widening the window while a long draft wraps, with the
/// prompt at the bottom under messages that wrap too: every message is
/// still there once, on the screen or in the scrollback.
#[test]
fn a_resize_with_a_wrapped_draft_never_erases_messages() {
    for narrow in [30, 40, 60] {
        let Some((alice, mut bob)) = room(80) else {
            return;
        };
        let lines: String = (1..=30)
            .map(|i| format!("message {i:02} from bob, long enough to wrap at forty\n"))
            .collect();
        bob.write(lines.as_bytes());
        alice.wait_for("the 30 messages", |t| t.contains("message 30 from bob"));
        let draft = "x".repeat(150);
        alice.keys(&[&draft]);
        // Rows joined: a redraw per key may leave the wrap unmarked.
        let flat = |t: &str| t.replace('\n', "");
        alice.wait_for("the draft", |t| flat(t).contains(&draft));
        alice.resize(narrow);
        // A key after the resize: drawn once the editor took the resize.
        alice.keys(&["y"]);
        alice.wait_for("the draft at the narrow width", |t| flat(t).contains("xy"));
        alice.resize(80);
        alice.keys(&["z"]);
        alice.wait_for("the draft at the wide width", |t| flat(t).contains("xyz"));
        let transcript = alice.transcript();
        for i in 1..=30 {
            let line = format!("message {i:02} from bob, long enough to wrap at forty");
            assert_eq!(
                transcript.matches(&line).count(),
                1,
                "narrow {narrow}: {line:?} erased or doubled; the transcript:\n{transcript}"
            );
        }
        leave(alice, bob);
    }
}

/// A line of wide characters that fills rows to the last column (the
/// 37th character after `alice> ` leaves column 80 empty): once sent, the
/// transcript line replaces the whole echo, and no stale prompt is left.
#[test]
fn a_wide_character_line_at_the_wrap_edge_leaves_no_stale_prompt() {
    let Some((alice, bob)) = room(80) else {
        return;
    };
    for (sent, count) in [37, 76, 116].into_iter().enumerate() {
        let line = "字".repeat(count);
        alice.keys(&[&line, "Enter"]);
        // The transcript line, then the next prompt drawn under it.
        alice.wait_for("the sent line and the next prompt", |t| {
            t.matches("alice: ").count() == sent + 1
                && t.lines()
                    .rfind(|l| !l.trim().is_empty())
                    .is_some_and(|l| l.starts_with("alice>"))
        });
        let screen = alice.screen();
        let prompts = screen.lines().filter(|l| l.starts_with("alice>")).count();
        assert_eq!(
            prompts, 1,
            "{count} wide characters: a stale prompt:\n{screen}"
        );
    }
    leave(alice, bob);
}
