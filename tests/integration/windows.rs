//! The Windows build under Wine: p2pchat.exe (built by `scripts/wine-setup`,
//! named by `P2PCHAT_WINE_EXE`) in rooms with the Linux binary and with
//! itself, in pipes, encrypted and `--plain`. Wine runs the Windows code
//! paths (the stdio threads, mio's AFD polling, the console-less pipes) on
//! Linux's TCP stack (and Linux's interfaces, which Wine reports through
//! GetAdaptersAddresses): what this proves, and what it does not, is in
//! the README ("Where it runs").

use crate::interop::{exchange, tool, wait_listening};
use crate::util::*;

/// p2pchat.exe and the Wine prefix to run it in, or None (SKIPPED) when
/// the Windows build was not made; CI requires it.
fn wine_exe() -> Option<String> {
    match std::env::var("P2PCHAT_WINE_EXE") {
        Ok(exe) if std::path::Path::new(&exe).is_file() && have("wine") => Some(exe),
        _ => {
            if std::env::var_os("P2PCHAT_REQUIRE_ALL").is_some() {
                panic!("P2PCHAT_WINE_EXE must name p2pchat.exe here (run scripts/wine-setup)");
            }
            eprintln!("SKIPPED: no Windows build (export P2PCHAT_WINE_EXE=$(scripts/wine-setup))");
            None
        }
    }
}

/// Which build plays a side.
#[derive(Clone, Copy, Debug)]
enum Os {
    Linux,
    Windows,
}

/// Runs p2pchat `args` as `os` with `input` and `env`.
fn run(os: Os, exe: &str, args: &[&str], input: In, env: &[(&str, &str)]) -> Proc {
    match os {
        Os::Linux => Proc::p2p_env(args, input, env),
        Os::Windows => {
            let mut all = vec![exe];
            all.extend_from_slice(args);
            let mut env = env.to_vec();
            env.push(("WINEDEBUG", "-all"));
            Proc::spawn("wine", &all, input, &env)
        }
    }
}

/// A listener of `os` on 127.0.0.1, with its port.
fn listen_as(os: Os, exe: &str, flags: &[&str], input: In, env: &[(&str, &str)]) -> (Proc, u16) {
    let mut args = vec!["listen", "0", "--bind", "127.0.0.1"];
    args.extend_from_slice(flags);
    let p = run(os, exe, &args, input, env);
    let port = wait_port(&p);
    (p, port)
}

fn dial_as(os: Os, exe: &str, flags: &[&str], port: u16, input: In, env: &[(&str, &str)]) -> Proc {
    let port = port.to_string();
    let mut args = vec!["dial", "127.0.0.1", &port];
    args.extend_from_slice(flags);
    run(os, exe, &args, input, env)
}

/// A room between `listener` and `dialer`, each sending its own file while
/// receiving: every byte arrives exactly, both ways, and both exit 0.
fn exact_both_ways(exe: &str, listener: Os, dialer: Os, flags: &[&str]) {
    let dir = TempDir::new("wine");
    let a = random_bytes(3 << 20, 19);
    let b = random_bytes((2 << 20) + 77, 20);
    let (fa, fb) = (dir.file("a", &a), dir.file("b", &b));
    let (mut l, port) = listen_as(listener, exe, flags, In::File(fa), &[]);
    let mut d = dial_as(dialer, exe, flags, port, In::File(fb), &[]);
    assert_both_ok(&mut l, &mut d);
    let what = format!("{listener:?} listening, {dialer:?} dialing");
    assert_same_bytes(&d.stdout(), &a, &format!("{what}: listener to dialer"));
    assert_same_bytes(&l.stdout(), &b, &format!("{what}: dialer to listener"));
}

#[test]
fn linux_and_windows_meet_byte_exact_both_ways_each_as_listener() {
    let Some(exe) = wine_exe() else { return };
    exact_both_ways(&exe, Os::Windows, Os::Linux, &[]);
    exact_both_ways(&exe, Os::Linux, Os::Windows, &[]);
}

#[test]
fn two_windows_peers_meet_through_pipes() {
    let Some(exe) = wine_exe() else { return };
    // Pipes on both ends: the reader and writer threads carry stdio, and a
    // half-close (our input ends first) still lets the other side finish.
    let (mut l, port) = listen_as(Os::Windows, &exe, &[], In::Pipe, &[]);
    let mut d = dial_as(Os::Windows, &exe, &[], port, In::Pipe, &[]);
    let early = random_bytes(200_000, 21);
    l.write(&early);
    l.close_stdin();
    d.wait_stdout(early.len());
    let late = random_bytes(300_001, 22);
    d.write(&late);
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&d.stdout(), &early, "listener to dialer");
    assert_same_bytes(
        &l.stdout(),
        &late,
        "dialer to listener, after the half-close",
    );
}

#[test]
fn a_shared_secret_works_and_a_wrong_one_fails_across_systems() {
    let Some(exe) = wine_exe() else { return };
    let right = [("P2PCHAT_SECRET", "tangerine-dream-42")];
    let (mut l, port) = listen_as(Os::Windows, &exe, &[], In::Pipe, &right);
    let mut d = dial_as(Os::Linux, &exe, &[], port, In::Pipe, &right);
    d.write(b"from linux\n");
    l.wait_stdout(11);
    l.write(b"from windows\n");
    d.wait_stdout(13);
    assert!(
        l.stderr().contains("authenticated by shared secret"),
        "{}",
        l.stderr()
    );
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"from linux\n");
    assert_eq!(d.stdout(), b"from windows\n");

    let (mut l, port) = listen_as(Os::Linux, &exe, &["--tries", "1"], In::Null, &right);
    let wrong = [("P2PCHAT_SECRET", "tangerine-dream-43")];
    let mut d = dial_as(Os::Windows, &exe, &[], port, In::Null, &wrong);
    assert_eq!(d.code(), 3, "the Windows dialer: {}", d.stderr());
    assert_eq!(l.code(), 3, "the Linux listener: {}", l.stderr());
}

#[test]
fn plain_mode_speaks_with_nc_both_ways() {
    let Some(exe) = wine_exe() else { return };
    if !have("nc") || !have("ss") {
        return;
    }
    let (l, port) = listen_as(Os::Windows, &exe, &["--plain"], In::Pipe, &[]);
    let nc = tool("nc", &["-N", "127.0.0.1", &port.to_string()]);
    exchange(l, nc, "nc dialing the Windows listener");

    let port = free_port();
    let nc = tool("nc", &["-N", "-l", "127.0.0.1", &port.to_string()]);
    wait_listening(port);
    let d = dial_as(Os::Windows, &exe, &["--plain"], port, In::Pipe, &[]);
    exchange(d, nc, "the Windows dialer reaching nc");
}

#[test]
fn windows_errors_keep_their_exit_codes() {
    let Some(exe) = wine_exe() else { return };
    // Usage: exit 2, one line.
    let mut p = run(Os::Windows, &exe, &["dial", "127.0.0.1"], In::Null, &[]);
    assert_eq!(p.code(), 2, "{}", p.stderr());
    // Nobody listening: exit 1, and it says so.
    let port = free_port().to_string();
    let mut p = run(
        Os::Windows,
        &exe,
        &["dial", "127.0.0.1", &port],
        In::Null,
        &[],
    );
    assert_eq!(p.code(), 1, "{}", p.stderr());
    assert!(p.stderr().contains("refused"), "{}", p.stderr());
    // The peer leaves before its input ended (killed): the Windows receiver
    // says the data is incomplete and exits 1, never 0.
    let no_resume = ["--resume", "0"];
    let (mut l, port) = listen_as(Os::Windows, &exe, &no_resume, In::Null, &[]);
    let mut d = dial_as(Os::Linux, &exe, &no_resume, port, In::Pipe, &[]);
    d.write(b"partial");
    l.wait_stdout(7);
    d.signal(libc::SIGKILL);
    let _ = d.wait();
    assert_eq!(l.code(), 1, "{}", l.stderr());
}

#[test]
fn windows_names_the_same_addresses_to_dial_as_linux() {
    let Some(exe) = wine_exe() else { return };
    // The reach lines a listener on all interfaces prints, without its port.
    let reach = |os: Os| {
        let mut p = run(os, &exe, &["listen", "0"], In::Null, &[]);
        let port = wait_port(&p);
        wait_until("the reach lines", DEADLINE, || {
            let e = p.stderr();
            e.lines().count() >= 2 && e.ends_with('\n')
        });
        let lines: Vec<String> = p
            .stderr()
            .lines()
            .skip(1)
            .map(|l| l.replace(&port.to_string(), "PORT"))
            .collect();
        let _ = p.child.kill();
        let _ = p.wait();
        lines
    };
    let (linux, windows) = (reach(Os::Linux), reach(Os::Windows));
    assert!(!linux.is_empty());
    assert_eq!(windows, linux, "GetAdaptersAddresses against getifaddrs");
}

/// A path as the side of `os` takes it: Wine maps the Linux root to Z:.
fn path_for(os: Os, p: &std::path::Path) -> String {
    match os {
        Os::Linux => p.display().to_string(),
        Os::Windows => format!("Z:{}", p.display()),
    }
}

#[test]
fn files_cross_between_linux_and_windows_whole_and_safely_named() {
    let Some(exe) = wine_exe() else { return };
    for (listener, dialer) in [(Os::Windows, Os::Linux), (Os::Linux, Os::Windows)] {
        let src = TempDir::new("wine-files-src");
        let out = TempDir::new("wine-files-out");
        let big = random_bytes((5 << 20) + 3, 31);
        let mut files = vec![src.file("big.bin", &big)];
        if let Os::Linux = dialer {
            // Legal on Linux, a device and forbidden characters on
            // Windows (where such a file cannot exist to be sent).
            files.push(src.file("CON.txt", b"device"));
            files.push(src.file("a:b?.txt", b"colon"));
        }
        let dir = path_for(listener, &out.0);
        let (mut l, port) = listen_as(listener, &exe, &["--receive", &dir], In::Null, &[]);
        let paths: Vec<String> = files.iter().map(|f| path_for(dialer, f)).collect();
        let mut flags = vec!["--send"];
        flags.extend(paths.iter().map(String::as_str));
        let mut d = dial_as(dialer, &exe, &flags, port, In::Null, &[]);
        assert_both_ok(&mut l, &mut d);
        let what = format!("{dialer:?} sending to {listener:?}");
        let got = std::fs::read(out.0.join("big.bin")).expect("big.bin saved");
        assert_same_bytes(&got, &big, &what);
        if let Os::Linux = dialer {
            assert_eq!(
                std::fs::read(out.0.join("_CON.txt")).ok().as_deref(),
                Some(&b"device"[..]),
                "{what}"
            );
            assert_eq!(
                std::fs::read(out.0.join("a_b_.txt")).ok().as_deref(),
                Some(&b"colon"[..]),
                "{what}"
            );
        }
    }
}
