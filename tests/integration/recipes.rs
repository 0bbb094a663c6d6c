//! The pipe recipes of the README and of `--help`, played as a new user
//! plays them: each side a shell command at its own terminal, nobody
//! pressing a key, and both must finish by themselves with exit 0
//! (issue 20). Also the plain dialer that must act on the listener's FIN
//! however early it comes.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::util::*;

/// A shell command run by bash at a terminal of its own (a pty that is
/// its controlling terminal and, unless redirected, its stdin, stdout and
/// stderr). Nothing is ever typed at it.
pub struct Term {
    child: Child,
    raw: Arc<Mutex<Vec<u8>>>,
    _master: std::fs::File,
}

impl Term {
    pub fn run(script: &str, dir: &std::path::Path) -> Term {
        let (master, slave) = crate::pty::open_pty(24, 200);
        let mut cmd = Command::new("bash");
        cmd.args(["-c", script])
            .current_dir(dir)
            .env("TERM", "xterm")
            .env("USER", "tester")
            .env_remove("P2PCHAT_SECRET")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        crate::pty::in_own_session(&mut cmd);
        let child = cmd.spawn().expect("spawn bash under a pty");
        drop(slave);
        let master = std::fs::File::from(master);
        let raw = Arc::new(Mutex::new(Vec::new()));
        let sink = raw.clone();
        let reader = master.try_clone().unwrap();
        crate::util::collect(reader, move |b| sink.lock().unwrap().extend_from_slice(b));
        Term {
            child,
            raw,
            _master: master,
        }
    }

    /// What the terminal showed, escapes and all, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }

    pub fn wait_for(&self, needle: &str) {
        wait_until_lazy(
            || format!("{needle:?} at the terminal:\n{}", self.text()),
            DEADLINE,
            || self.text().contains(needle),
        );
    }

    /// The port of the `listening on 127.0.0.1:PORT` line.
    pub fn port(&self) -> u16 {
        const LINE: &str = "listening on 127.0.0.1:";
        self.wait_for(LINE);
        let text = self.text();
        let rest = text.split(LINE).nth(1).expect("listening line");
        rest.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .expect("port")
    }

    /// Waits (with `limit`) for bash to exit and returns what the script
    /// reported as `codes=...`: each command's exit status.
    pub fn codes(&mut self, limit: Duration) -> String {
        let end = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "the recipe did not finish by itself; its terminal:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.wait_for("codes=");
        let text = self.text();
        let rest = text.rsplit("codes=").next().unwrap_or_default();
        rest.lines().next().unwrap_or_default().trim().to_string()
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `CMD; echo codes=${PIPESTATUS[*]}`: every command's exit status.
fn reporting(cmd: &str) -> String {
    format!("{cmd}; echo \"codes=${{PIPESTATUS[*]}}\"")
}

/// One side of a recipe at its terminal, with p2pchat as `BIN`.
fn side(cmd: &str, dir: &std::path::Path) -> Term {
    Term::run(&reporting(&cmd.replace("p2pchat", BIN)), dir)
}

fn both_finish(a: &mut Term, b: &mut Term, want_a: &str, want_b: &str) {
    let (ca, cb) = (a.codes(DEADLINE), b.codes(DEADLINE));
    assert_eq!(
        (ca.as_str(), cb.as_str()),
        (want_a, want_b),
        "exit statuses; the terminals:\n{}\n---\n{}",
        a.text(),
        b.text()
    );
}

const MODES: [&str; 2] = ["", "--plain"];

#[test]
fn a_directory_sent_with_tar_arrives_and_both_sides_finish() {
    if !have("tar") {
        return;
    }
    for mode in MODES {
        let src = TempDir::new("tar-src");
        let dst = TempDir::new("tar-dst");
        std::fs::create_dir_all(src.0.join("project/sub")).unwrap();
        let big = random_bytes(300_000, 20);
        src.file("project/a.bin", &big);
        src.file("project/sub/notes.txt", b"lunch at one?\n");
        // The README's pair, in its order: the receiver first.
        let mut a = side(
            &format!("p2pchat listen 0 --bind 127.0.0.1 {mode} | tar x"),
            &dst.0,
        );
        let port = a.port();
        let mut b = side(
            &format!("tar c project | p2pchat dial 127.0.0.1 {port} {mode}"),
            &src.0,
        );
        both_finish(&mut a, &mut b, "0 0", "0 0");
        assert_same_bytes(
            &std::fs::read(dst.0.join("project/a.bin")).unwrap(),
            &big,
            "a.bin",
        );
        assert_eq!(
            std::fs::read(dst.0.join("project/sub/notes.txt")).unwrap(),
            b"lunch at one?\n"
        );
    }
}

#[test]
fn a_producer_piped_to_a_file_and_a_receiver_into_a_file_both_finish() {
    for mode in MODES {
        let dir = TempDir::new("producer");
        let mut a = side(
            &format!("p2pchat listen 0 --bind 127.0.0.1 {mode} > got"),
            &dir.0,
        );
        let port = a.port();
        let mut b = side(
            &format!("seq 1 20000 | p2pchat dial 127.0.0.1 {port} {mode} > out"),
            &dir.0,
        );
        both_finish(&mut a, &mut b, "0", "0 0");
        let want: String = (1..=20000).map(|i| format!("{i}\n")).collect();
        assert_eq!(std::fs::read_to_string(dir.0.join("got")).unwrap(), want);
        assert_eq!(std::fs::read(dir.0.join("out")).unwrap(), b"");
    }
}

#[test]
fn a_request_and_its_reply_both_ways_at_once_finish() {
    for mode in MODES {
        let dir = TempDir::new("request");
        dir.file("request", b"GET /\n");
        dir.file("answer", &random_bytes(100_000, 21));
        let mut a = side(
            &format!("p2pchat listen 0 --bind 127.0.0.1 {mode} < request > reply"),
            &dir.0,
        );
        let port = a.port();
        let mut b = side(
            &format!("p2pchat dial 127.0.0.1 {port} {mode} < answer > asked"),
            &dir.0,
        );
        both_finish(&mut a, &mut b, "0", "0");
        assert_eq!(std::fs::read(dir.0.join("asked")).unwrap(), b"GET /\n");
        assert_same_bytes(
            &std::fs::read(dir.0.join("reply")).unwrap(),
            &random_bytes(100_000, 21),
            "reply",
        );
    }
}

#[test]
fn a_receiver_piped_to_head_finishes_and_so_does_its_sender() {
    for mode in MODES {
        let dir = TempDir::new("head");
        let mut a = side(
            &format!("p2pchat listen 0 --bind 127.0.0.1 {mode} | head -c 100 > got"),
            &dir.0,
        );
        let port = a.port();
        // Less than head takes: head ends at the peer's EOF, not before.
        let mut b = side(
            &format!("seq 1 30 | p2pchat dial 127.0.0.1 {port} {mode}"),
            &dir.0,
        );
        both_finish(&mut a, &mut b, "0 0", "0 0");
        let want: String = (1..=30).map(|i| format!("{i}\n")).collect();
        assert_eq!(std::fs::read_to_string(dir.0.join("got")).unwrap(), want);
    }
}

/// Issue 20: `printf 'abc\n' | p2pchat -q listen P --plain >/dev/null &
/// sleep 4 | p2pchat -q dial 127.0.0.1 P --plain | cat`. The listener's
/// data and FIN can both be in before the dialer's connect is even seen
/// as complete; the dialer must still act on that FIN at once (its stdout
/// ends, so `cat` ends) and not when its own stdin ends.
#[test]
fn a_plain_dialer_acts_on_a_fin_that_came_with_the_connect() {
    for run in 0..20 {
        let mut listener = Command::new(BIN)
            .args(["-q", "listen", "0", "--bind", "127.0.0.1", "--plain"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the listener");
        {
            use std::io::Write;
            let mut stdin = listener.stdin.take().unwrap();
            stdin.write_all(b"abc\n").unwrap();
        }
        let mut err = listener.stderr.take().unwrap();
        let mut seen = Vec::new();
        let port = loop {
            let mut buf = [0u8; 256];
            let n = err.read(&mut buf).expect("listener stderr");
            assert!(
                n > 0,
                "the listener ended: {}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(rest) = text.split("listening on 127.0.0.1:").nth(1) {
                if rest.contains('\n') {
                    break rest.lines().next().unwrap().trim().parse::<u16>().unwrap();
                }
            }
        };
        // `sleep 4 |`: a stdin that stays open well past the test's limit.
        let mut sleep = Command::new("sleep")
            .arg("60")
            .stdout(Stdio::piped())
            .spawn()
            .expect("sleep");
        let mut dialer = Command::new(BIN)
            .args(["-q", "dial", "127.0.0.1", &port.to_string(), "--plain"])
            .stdin(Stdio::from(sleep.stdout.take().unwrap()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the dialer");
        // `| cat`: cat ends when the dialer's stdout does.
        let mut cat = Command::new("cat")
            .stdin(Stdio::from(dialer.stdout.take().unwrap()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("cat");
        let end = Instant::now() + Duration::from_secs(20);
        let finished = loop {
            if cat.try_wait().unwrap().is_some() {
                break true;
            }
            if Instant::now() > end {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut out = Vec::new();
        if finished {
            cat.stdout.take().unwrap().read_to_end(&mut out).unwrap();
        }
        for c in [&mut sleep, &mut dialer, &mut cat, &mut listener] {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(
            finished,
            "run {run}: the dialer's stdout stayed open after the listener's FIN"
        );
        assert_eq!(out, b"abc\n", "run {run}");
    }
}
