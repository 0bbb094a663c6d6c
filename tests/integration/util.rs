//! Helpers for the integration tests: a child guard that kills on drop,
//! waits with deadlines, and generated test data.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_p2pchat");
/// Generous: CI machines are small and busy.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `cond` until it holds or `limit` passes; panics with `what`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// As `wait_until`, with the message made only on failure (it may show
/// state as it was at that moment).
pub fn wait_until_lazy(what: impl Fn() -> String, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {}", what());
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "p2pchat-test-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, data).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a child's stdin comes from.
pub enum In {
    /// A pipe the test writes to (and closes by dropping it).
    Pipe,
    Null,
    File(PathBuf),
}

/// A running p2pchat (or other tool) whose stdout and stderr are collected.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stdout_ended: Arc<AtomicBool>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

/// Reads `r` on a thread of its own until its end, handing each chunk to
/// `sink`.
pub fn collect<R: Read + Send + 'static>(
    mut r: R,
    sink: impl Fn(&[u8]) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink(&buf[..n]),
            }
        }
    })
}

impl Proc {
    pub fn spawn(program: &str, args: &[&str], input: In, env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("P2PCHAT_SECRET")
            .env("USER", "tester");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(match &input {
            In::Pipe => Stdio::piped(),
            In::Null => Stdio::null(),
            In::File(p) => Stdio::from(std::fs::File::open(p).expect("open stdin file")),
        });
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout_ended = Arc::new(AtomicBool::new(false));
        let (o, e, ended) = (stdout.clone(), stderr.clone(), stdout_ended.clone());
        let out_pipe = child.stdout.take().expect("stdout");
        let readers = vec![
            std::thread::spawn(move || {
                collect(out_pipe, move |b| o.lock().unwrap().extend_from_slice(b))
                    .join()
                    .ok();
                ended.store(true, Ordering::SeqCst);
            }),
            collect(child.stderr.take().expect("stderr"), move |b| {
                e.lock().unwrap().push_str(&String::from_utf8_lossy(b))
            }),
        ];
        Proc {
            stdin: child.stdin.take(),
            child,
            stdout,
            stdout_ended,
            stderr,
            readers,
            status: None,
        }
    }

    /// Runs p2pchat with `args`.
    pub fn p2p(args: &[&str], input: In) -> Proc {
        Proc::spawn(BIN, args, input, &[])
    }

    pub fn p2p_env(args: &[&str], input: In, env: &[(&str, &str)]) -> Proc {
        Proc::spawn(BIN, args, input, env)
    }

    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stdout_len(&self) -> usize {
        self.stdout.lock().unwrap().len()
    }

    /// Returns true if and only if the child's stdout has not reached EOF.
    pub fn stdout_open(&self) -> bool {
        !self.stdout_ended.load(Ordering::SeqCst)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn write(&mut self, data: &[u8]) {
        self.stdin
            .as_mut()
            .expect("stdin is a pipe")
            .write_all(data)
            .expect("write to child stdin");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn wait_stderr(&self, needle: &str) {
        wait_until(&format!("stderr to contain {needle:?}"), DEADLINE, || {
            self.stderr().contains(needle)
        });
    }

    pub fn wait_stdout(&self, len: usize) {
        wait_until(&format!("{len} bytes on stdout"), DEADLINE, || {
            self.stdout_len() >= len
        });
    }

    /// Waits for the exit (with a deadline) and for stdout/stderr to end.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("process did not exit in time; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.status = Some(status);
        status
    }

    /// Waits and returns the exit code (panics on death by signal).
    pub fn code(&mut self) -> i32 {
        let s = self.wait();
        s.code()
            .unwrap_or_else(|| panic!("killed by a signal: {s:?}; stderr:\n{}", self.stderr()))
    }

    /// Peak resident memory so far in KiB (VmHWM), or None once exited.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `p2pchat listen [flags] 0 --bind ADDR` and returns it with its port.
pub fn listen(flags: &[&str], bind: &str, input: In) -> (Proc, u16) {
    listen_env(flags, bind, input, &[])
}

pub fn listen_env(flags: &[&str], bind: &str, input: In, env: &[(&str, &str)]) -> (Proc, u16) {
    let mut args: Vec<&str> = vec!["listen"];
    args.extend(flags);
    args.extend(["0", "--bind", bind]);
    let p = Proc::p2p_env(&args, input, env);
    let port = wait_port(&p);
    (p, port)
}

/// The rest of the first complete stderr line that contains `prefix`,
/// after it (waiting for the line to be complete).
pub fn stderr_after(p: &Proc, prefix: &str) -> String {
    let rest = || p.stderr().split(prefix).nth(1).map(str::to_string);
    wait_until(&format!("a stderr line with {prefix:?}"), DEADLINE, || {
        rest().is_some_and(|r| r.contains('\n'))
    });
    rest()
        .and_then(|r| r.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// Reads the port from the `listening on ADDR:PORT` status line.
pub fn wait_port(p: &Proc) -> u16 {
    let line = stderr_after(p, "listening on ");
    line.rsplit(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Starts `p2pchat dial [flags] HOST PORT`.
pub fn dial(flags: &[&str], host: &str, port: u16, input: In) -> Proc {
    dial_env(flags, host, port, input, &[])
}

pub fn dial_env(flags: &[&str], host: &str, port: u16, input: In, env: &[(&str, &str)]) -> Proc {
    let port = port.to_string();
    let mut args: Vec<&str> = vec!["dial"];
    args.extend(flags);
    args.extend([host, &port]);
    Proc::p2p_env(&args, input, env)
}

/// A port nobody listens on (bound and released at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Returns true if and only if `tool` can be run; tests that need it say
/// clearly when it is missing.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        eprintln!("SKIPPED: `{tool}` is not installed (install it to run this test; CI does)");
    }
    found
}

/// Asserts that both processes exited 0, showing both stderrs if not.
pub fn assert_both_ok(a: &mut Proc, b: &mut Proc) {
    let codes = (a.code(), b.code());
    assert_eq!(
        codes,
        (0, 0),
        "exit codes; stderr:\n{}\n---\n{}",
        a.stderr(),
        b.stderr()
    );
}

/// Asserts two large byte strings equal without printing megabytes.
pub fn assert_same_bytes(got: &[u8], want: &[u8], what: &str) {
    let first_difference = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        got == want,
        "{what}: got {} of {} bytes, first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}
