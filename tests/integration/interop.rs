//! `--plain` speaks raw TCP: real OpenBSD nc and socat interoperate in both
//! directions and both roles.

use std::process::Command;

use crate::util::*;

/// Runs `tool` with args (stdin from a pipe) and returns it.
pub fn tool(program: &str, args: &[&str]) -> Proc {
    Proc::spawn(program, args, In::Pipe, &[])
}

/// Waits until something listens on 127.0.0.1:port (ss), so the dialer
/// does not race the tool's bind.
pub fn wait_listening(port: u16) {
    wait_until(&format!("a listener on port {port}"), DEADLINE, || {
        Command::new("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    });
}

pub fn exchange(mut ours: Proc, mut theirs: Proc, who: &str) {
    ours.write(b"from p2pchat\n");
    theirs.write(b"from the other tool\n");
    theirs.wait_stdout(13);
    ours.wait_stdout(20);
    ours.close_stdin();
    theirs.close_stdin();
    assert_eq!(ours.code(), 0, "{who}: {}", ours.stderr());
    let _ = theirs.wait();
    assert_eq!(theirs.stdout(), b"from p2pchat\n", "{who}");
    assert_eq!(ours.stdout(), b"from the other tool\n", "{who}");
}

#[test]
fn nc_dials_a_plain_listener() {
    if !have("nc") {
        return;
    }
    let (l, port) = listen(&["--plain"], "127.0.0.1", In::Pipe);
    let nc = tool("nc", &["-N", "127.0.0.1", &port.to_string()]);
    exchange(l, nc, "nc dialer");
}

#[test]
fn a_plain_dialer_reaches_nc_listening() {
    if !have("nc") || !have("ss") {
        return;
    }
    let port = free_port();
    let nc = tool("nc", &["-N", "-l", "127.0.0.1", &port.to_string()]);
    wait_listening(port);
    let d = dial(&["--plain"], "127.0.0.1", port, In::Pipe);
    exchange(d, nc, "nc listener");
}

#[test]
fn socat_dials_a_plain_listener() {
    if !have("socat") {
        return;
    }
    let (l, port) = listen(&["--plain"], "127.0.0.1", In::Pipe);
    let s = tool("socat", &["-t", "5", "-", &format!("TCP:127.0.0.1:{port}")]);
    exchange(l, s, "socat dialer");
}

#[test]
fn a_plain_dialer_reaches_socat_listening() {
    if !have("socat") || !have("ss") {
        return;
    }
    let port = free_port();
    let s = tool(
        "socat",
        &[
            "-t",
            "5",
            "-",
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr"),
        ],
    );
    wait_listening(port);
    let d = dial(&["--plain"], "127.0.0.1", port, In::Pipe);
    exchange(d, s, "socat listener");
}

#[test]
fn a_plain_peer_that_closed_for_good_is_reported_at_once() {
    use std::io::Write as _;
    // Like nc at a terminal after Ctrl-D: it cannot half-close, it closes.
    let (mut l, port) = listen(&["--plain"], "127.0.0.1", In::Pipe);
    let mut peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    peer.write_all(b"bye from nc\n").unwrap();
    drop(peer);
    l.wait_stderr("stopped sending");
    l.write(b"this cannot arrive\n");
    // No second line is needed for the user to learn it.
    assert_eq!(l.code(), 1, "{}", l.stderr());
    assert!(
        l.stderr().contains("nothing more can be delivered"),
        "{}",
        l.stderr()
    );
    assert_eq!(l.stdout(), b"bye from nc\n");
}
