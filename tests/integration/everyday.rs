//! Everyday situations a new user meets, each with the right ending and
//! the right words (issue 20): leaving a room nobody joined, a receiver
//! that cannot write, a room already taken, a forgotten `--code`.

use std::net::TcpStream;

use crate::pty::Pty;
use crate::util::*;

/// Nobody listens on 127.0.0.1:`port` any more.
fn port_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn quit_and_ctrl_d_end_a_listener_nobody_joined() {
    for mode in [&[][..], &["--plain"], &["--keep"], &["--code"]] {
        for keys in ["/quit\r", "\x04"] {
            let mut args = vec!["listen", "0", "--bind", "127.0.0.1"];
            args.extend_from_slice(mode);
            let mut alice = Pty::spawn(&args, &[], 24, 80);
            let port = alice.listening_port();
            alice.type_text(keys);
            assert_eq!(alice.code(), 0, "{mode:?} {keys:?}:\n{}", alice.text());
            assert!(
                port_closed(port),
                "{mode:?} {keys:?}: the port is still open"
            );
            assert!(
                !alice.text().contains("p2pchat:"),
                "{mode:?} {keys:?}: leaving is no error:\n{}",
                alice.text()
            );
        }
    }
}

#[test]
fn a_line_typed_before_anyone_joined_goes_out_when_the_peer_comes() {
    let mut alice = Pty::spawn(
        &["listen", "0", "--bind", "127.0.0.1", "--name", "alice"],
        &[],
        24,
        80,
    );
    let port = alice.listening_port();
    alice.type_text("early bird\r");
    alice.wait_for("early bird");
    let mut bob = dial(&["--name", "bob"], "127.0.0.1", port, In::Pipe);
    bob.wait_stdout(11);
    assert_eq!(bob.stdout(), b"early bird\n");
    alice.wait_cursor_row("alice>");
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());
}

#[test]
fn a_third_dialer_is_told_the_room_is_busy() {
    for flags in [&[][..], &["--resume", "30"]] {
        let (mut l, port) = listen(flags, "127.0.0.1", In::Pipe);
        let mut d = dial(flags, "127.0.0.1", port, In::Pipe);
        l.wait_stderr("connected to");
        let mut third = dial(flags, "127.0.0.1", port, In::Null);
        assert_eq!(third.code(), 1, "{}", third.stderr());
        assert!(
            third.stderr().contains(&format!(
                "127.0.0.1:{port} is busy: someone else is in that room"
            )),
            "{}",
            third.stderr()
        );
        // The room itself goes on untouched, and says nothing of it.
        d.write(b"still here\n");
        l.wait_stdout(11);
        l.close_stdin();
        d.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert!(!l.stderr().contains("failed"), "{}", l.stderr());
    }
}

#[test]
fn dialing_a_code_room_without_the_code_names_the_code_and_the_command() {
    let mut l = Proc::p2p(&["listen", "0", "--bind", "127.0.0.1", "--code"], In::Pipe);
    let port = wait_port(&l);
    let code = stderr_after(&l, "code: ").trim().to_string();
    let mut d = dial(&[], "127.0.0.1", port, In::Null);
    assert_eq!(d.code(), 3, "{}", d.stderr());
    let want = format!(
        "127.0.0.1:{port} expects a one-time code: run p2pchat dial 127.0.0.1 {port} --code"
    );
    assert!(d.stderr().contains(&want), "{}", d.stderr());
    assert!(!d.stderr().contains("shared secret"), "{}", d.stderr());
    l.wait_stderr("without the one-time code");
    // That cost the room nothing: the code still opens it.
    let port_arg = port.to_string();
    let mut d = Proc::p2p_env(
        &["dial", "127.0.0.1", &port_arg, "--code"],
        In::Pipe,
        &[("P2PCHAT_CODE", &code)],
    );
    d.write(b"with the code\n");
    l.wait_stdout(14);
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
}

/// Waits at most `limit` for `p` to exit and returns its code.
fn code_within(p: &mut Proc, limit: std::time::Duration) -> i32 {
    let end = std::time::Instant::now() + limit;
    while p.child.try_wait().ok().flatten().is_none() {
        assert!(
            std::time::Instant::now() < end,
            "no exit within {limit:?}; stderr:\n{}",
            p.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    p.code()
}

#[test]
fn a_receiver_that_cannot_write_tells_its_sender_why() {
    let tmp = TempDir::new("full");
    let file = tmp.file("data", &random_bytes(300_000, 6));
    let limit = std::time::Duration::from_secs(20);
    let why = "the peer could not write what it received (no space left on device)";
    let own = "cannot write what the peer sent to stdout: no space left on device";
    // The receiver listens, writing to a full disk; the sender dials.
    let mut l = Proc::spawn(
        "bash",
        &[
            "-c",
            &format!("exec {BIN} listen 0 --bind 127.0.0.1 </dev/null >/dev/full"),
        ],
        In::Null,
        &[],
    );
    let port = wait_port(&l);
    let mut d = dial(&[], "127.0.0.1", port, In::File(file.clone()));
    assert_eq!(code_within(&mut d, limit), 1, "{}", d.stderr());
    assert!(d.stderr().contains(why), "{}", d.stderr());
    assert!(!d.stderr().contains("tamper"), "{}", d.stderr());
    assert_eq!(code_within(&mut l, limit), 1, "{}", l.stderr());
    assert!(l.stderr().contains(own), "{}", l.stderr());

    // Roles swapped: the sender listens, and does not wait for a resume.
    let (mut l, port) = listen(&[], "127.0.0.1", In::File(file));
    let mut d = Proc::spawn(
        "bash",
        &[
            "-c",
            &format!("exec {BIN} dial 127.0.0.1 {port} </dev/null >/dev/full"),
        ],
        In::Null,
        &[],
    );
    assert_eq!(code_within(&mut l, limit), 1, "{}", l.stderr());
    assert!(l.stderr().contains(why), "{}", l.stderr());
    assert!(!l.stderr().contains("reconnect"), "{}", l.stderr());
    assert_eq!(code_within(&mut d, limit), 1, "{}", d.stderr());
    assert!(d.stderr().contains(own), "{}", d.stderr());
}

/// A tmux server of our own, killed on drop.
struct TmuxServer(String);

impl TmuxServer {
    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for TmuxServer {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

/// The dialer runs from a real shell in a tmux window that is then killed,
/// as closing a terminal window does: the kernel's SIGHUP and the shell's
/// arrive together. Every time, the peer hears the goodbye at once.
#[test]
fn closing_the_window_is_leaving_every_time() {
    if !have("tmux") || !have("bash") {
        return;
    }
    let limit = std::time::Duration::from_secs(20);
    for run in 0..20 {
        let (mut l, port) = listen(&["--name", "alice"], "127.0.0.1", In::Pipe);
        let tmux = TmuxServer(format!("p2pclose{}-{run}", std::process::id()));
        tmux.run(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "env -u P2PCHAT_SECRET bash --norc --noprofile",
        ]);
        tmux.run(&[
            "send-keys",
            "-t",
            "0",
            &format!("'{BIN}' dial 127.0.0.1 {port} --name bob"),
            "Enter",
        ]);
        l.wait_stderr("connected to");
        wait_until_lazy(
            || format!("bob's prompt:\n{}", tmux.run(&["capture-pane", "-p"])),
            DEADLINE,
            || tmux.run(&["capture-pane", "-p"]).contains("bob>"),
        );
        tmux.run(&["kill-session", "-t", "0"]);
        let code = code_within(&mut l, limit);
        assert_eq!(code, 0, "run {run}: {}", l.stderr());
        assert!(
            l.stderr().contains("\"bob\" left the room") && !l.stderr().contains("vanished"),
            "run {run}: {}",
            l.stderr()
        );
    }
}

/// A closing window sends SIGHUP twice (the kernel's and the shell's),
/// or right after a Ctrl-C: neither is a second "exit at once" signal,
/// and the peer always hears the goodbye.
#[test]
fn a_second_hang_up_does_not_skip_the_goodbye() {
    let limit = std::time::Duration::from_secs(20);
    for signals in [[libc::SIGHUP, libc::SIGHUP], [libc::SIGINT, libc::SIGHUP]] {
        let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
        let port = port.to_string();
        let mut bob = Pty::spawn(&["dial", "127.0.0.1", &port, "--name", "bob"], &[], 24, 80);
        l.wait_stderr("connected to");
        bob.wait_cursor_row("bob>");
        for sig in signals {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(bob.child.id() as i32, sig) };
        }
        let code = code_within(&mut l, limit);
        assert!(
            l.stderr().contains("\"bob\" left the room") && !l.stderr().contains("vanished"),
            "{signals:?}: {}",
            l.stderr()
        );
        assert!(code == 0 || code == 1, "{signals:?}: {code} {}", l.stderr());
        let _ = bob.code();
    }
}

/// A dial to a host that drops packets says so after about a second, not
/// a blank screen for the whole handshake timeout, and `--retry 5` gives
/// up after about 5 s.
#[test]
fn a_dial_into_dropped_packets_says_so_and_retry_keeps_its_time() {
    let Some(lab) = crate::netns::Namespaces::create("slow", &["a"], "the slow-dial test") else {
        return;
    };
    lab.exec(
        "a",
        "iptables",
        &["-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"],
    );
    let start = std::time::Instant::now();
    let mut d = lab.p2p(
        "a",
        &["dial", "127.0.0.1", "9", "--retry", "5"],
        In::Null,
        &[],
    );
    d.wait_stderr("connecting to 127.0.0.1:9\u{2026}");
    let said = start.elapsed();
    assert!(
        said >= std::time::Duration::from_millis(900) && said < std::time::Duration::from_secs(4),
        "said after {said:?}"
    );
    assert_eq!(d.code(), 1, "{}", d.stderr());
    let took = start.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(4900) && took < std::time::Duration::from_secs(8),
        "--retry 5 gave up after {took:?}: {}",
        d.stderr()
    );
    assert!(d.stderr().contains("retrying for 5 s"), "{}", d.stderr());
}

/// A forwarder in front of the listener, which can restart: while it is
/// down its port refuses connections.
struct Forwarder {
    port: u16,
    target: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    live: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Forwarder {
    fn start(target: u16) -> Forwarder {
        let port = free_port();
        let f = Forwarder {
            port,
            target,
            up: Default::default(),
            live: Default::default(),
            stop: Default::default(),
        };
        f.bring_up();
        f
    }

    /// Listens on the port again and forwards each connection.
    fn bring_up(&self) {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).expect("rebind");
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, live, stop, target) = (
            self.up.clone(),
            self.live.clone(),
            self.stop.clone(),
            self.target,
        );
        std::thread::spawn(move || {
            // Polls so that going down closes the port at once.
            while up.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                live.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || copy(from, to));
                }
            }
        });
    }

    /// Stops listening (the port refuses) and resets what it carried.
    fn go_down(&self) {
        use std::sync::atomic::Ordering;
        self.up.store(false, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        wait_until("the forwarder's port to refuse", DEADLINE, || {
            port_closed(self.port)
        });
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A forwarder that restarts refuses the dialer's quick redials for a few
/// seconds: that is no proof that the peer has ended. The room resumes
/// once the forwarder is back.
#[test]
fn redials_refused_while_a_forwarder_restarts_do_not_end_the_room() {
    let (mut l, port) = listen(&[], "127.0.0.1", In::Pipe);
    let fwd = Forwarder::start(port);
    let mut d = dial(&[], "127.0.0.1", fwd.port, In::Pipe);
    l.wait_stderr("connected to");
    d.wait_stderr("connected to");
    fwd.go_down();
    d.wait_stderr("connection lost");
    // The restart takes 3 s (the scenario, not a wait for a condition):
    // several redials are refused meanwhile.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the dialer gave up: {}",
        d.stderr()
    );
    fwd.bring_up();
    d.wait_stderr("reconnected after");
    d.write(b"after the restart\n");
    l.wait_stdout(18);
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"after the restart\n");
}
