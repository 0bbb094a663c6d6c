//! At home in a shell: completions and the man page cover every command and
//! flag, the listener says how to reach it, and the habits of shell users
//! (`HOST:PORT`, a flag given to the wrong command, low ports, same names,
//! `--retry` while the peer or its name is not there yet) are met.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use crate::netns::Namespaces;
use crate::pty::Pty;
use crate::relay::p2p_relay;
use crate::util::*;

/// Runs p2pchat to completion: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("P2PCHAT_SECRET")
        .output()
        .expect("run p2pchat");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The commands `--help` lists, read from the help itself (not from the
/// code that generates completions), and each command's long flags.
fn commands_and_flags() -> Vec<(String, BTreeSet<String>)> {
    let (code, top, _) = run(&["--help"]);
    assert_eq!(code, 0);
    let commands: Vec<String> = top
        .split("Commands:")
        .nth(1)
        .expect("a Commands section")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    for c in ["listen", "dial", "relay", "completions", "manpage"] {
        assert!(commands.iter().any(|x| x == c), "{c} in {commands:?}");
    }
    let mut all = vec![(String::new(), long_flags(&top))];
    for c in commands {
        let (code, help, _) = run(&[&c, "--help"]);
        assert_eq!(code, 0, "{c} --help");
        all.push((c, long_flags(&help)));
    }
    all
}

fn long_flags(help: &str) -> BTreeSet<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        // The flag column ends at the first two spaces; the help follows.
        .filter_map(|l| l.split("  ").next())
        .flat_map(|l| l.split([' ', ',', '=', '<', '[']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect()
}

#[test]
fn completion_scripts_cover_every_command_and_flag() {
    let all = commands_and_flags();
    for shell in ["bash", "zsh", "fish"] {
        let (code, script, err) = run(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        for (command, flags) in &all {
            assert!(script.contains(command.as_str()), "{shell}: {command}");
            for flag in flags {
                let bare = flag.trim_start_matches('-');
                let found = match shell {
                    // fish writes `-l retry`; the others write `--retry`.
                    "fish" => script.contains(&format!("-l {bare}")),
                    _ => script.contains(flag.as_str()),
                };
                assert!(found, "{shell} completion lacks {command} {flag}");
            }
        }
    }
    let (code, _, err) = run(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error: {err}");
}

/// The bash script really completes: the flags of the command typed so far,
/// and the commands after `p2pchat`.
#[test]
fn bash_completes_flags_of_the_command_being_typed() {
    if !have("bash") {
        return;
    }
    let complete = |words: &[&str]| -> Vec<String> {
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let cword = words.len() - 1;
        let script = format!(
            "source <('{BIN}' completions bash) && COMP_WORDS=({}) && COMP_CWORD={cword} && \
             _p2pchat p2pchat '{}' '{}' && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            words[cword],
            words[cword - 1]
        );
        let out = Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let got = complete(&["p2pchat", "dial", "--re"]);
    assert!(
        got.contains(&"--retry".into()) && got.contains(&"--relay".into()),
        "{got:?}"
    );
    assert!(!got.contains(&"--keep".into()), "{got:?}");
    let got = complete(&["p2pchat", "listen", "--k"]);
    assert_eq!(got, ["--keep"]);
    // A relay has no room: it is offered only its own flags.
    let mut got = complete(&["p2pchat", "relay", "--"]);
    got.sort();
    assert_eq!(got, ["--bind", "--help", "--quiet"]);
    let got = complete(&["p2pchat", "completions", "--"]);
    assert_eq!(got, ["--help"]);
    let got = complete(&["p2pchat", ""]);
    for c in ["listen", "dial", "relay", "completions", "manpage"] {
        assert!(got.contains(&c.to_string()), "{c} in {got:?}");
    }
}

/// zsh and fish parse their scripts (where installed; CI installs both).
#[test]
fn zsh_and_fish_accept_their_scripts() {
    let dir = TempDir::new("completions");
    for (shell, check) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        if !have(shell) {
            continue;
        }
        let (_, script, _) = run(&["completions", shell]);
        let path = dir.file(shell, script.as_bytes());
        let path = path.to_str().expect("utf-8 path");
        let out = Command::new(shell)
            .args(check)
            .arg(path)
            .output()
            .expect("shell");
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Room options belong to `listen` and `dial`: `relay --help`, the top
/// help and the man page's relay section do not offer them.
#[test]
fn each_command_lists_only_its_own_flags() {
    let room = [
        "--name",
        "--plain",
        "--idle-timeout",
        "--handshake-timeout",
        "--secret-file",
        "--ask-secret",
        "--progress",
        "--resume",
        "--resume-buffer",
    ];
    let all = commands_and_flags();
    for (command, flags) in &all {
        let takes_room = command == "listen" || command == "dial";
        for flag in room {
            assert_eq!(
                flags.contains(flag),
                takes_room,
                "'{command}' --help and {flag}"
            );
        }
    }
    let (_, page, _) = run(&["manpage"]);
    let relay = page
        .split(".SH \"P2PCHAT RELAY\"")
        .nth(1)
        .and_then(|r| r.split(".SH \"P2PCHAT COMPLETIONS\"").next())
        .expect("a relay section");
    for flag in room {
        assert!(
            !relay.contains(&flag.replace('-', "\\-")),
            "the man page offers relay {flag}"
        );
    }
}

#[test]
fn the_man_page_is_current_and_lists_everything() {
    let (code, page, err) = run(&["manpage"]);
    assert_eq!(code, 0, "{err}");
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/doc/p2pchat.1"))
        .expect("doc/p2pchat.1");
    assert!(
        page == checked_in,
        "doc/p2pchat.1 is stale: run scripts/manpage and commit it"
    );
    for (command, flags) in commands_and_flags() {
        if !command.is_empty() {
            let heading = format!(".SH \"P2PCHAT {}\"", command.to_uppercase());
            assert!(page.contains(&heading), "{heading}");
        }
        for flag in flags {
            let roff = flag.replace('-', "\\-");
            assert!(page.contains(&roff), "the man page lacks {command} {flag}");
        }
    }
    for section in [
        "SYNOPSIS",
        "DESCRIPTION",
        "OPTIONS",
        "CHAT",
        "EXIT STATUS",
        "ENVIRONMENT",
        "EXAMPLES",
    ] {
        assert!(
            page.contains(&format!(".SH {section}"))
                || page.contains(&format!(".SH \"{section}\"")),
            "{section}"
        );
    }
    // The chat room: its commands, its keys, what leaving does.
    let chat = page
        .split(".SH CHAT")
        .nth(1)
        .and_then(|c| c.split(".SH ").next())
        .expect("a CHAT section");
    for needle in [
        "/quit",
        "/help",
        "/code",
        "/status",
        "/save FILE",
        "Ctrl\\-D",
        "Ctrl\\-U",
        "window",
        "\\-\\-no\\-bell",
    ] {
        assert!(chat.contains(needle), "{needle} in CHAT:\n{chat}");
    }
    let exit_status = page.split("EXIT STATUS").nth(1).expect("exit status");
    for code in ["0", "1", "2", "3", "4", "101", "129", "130", "143"] {
        assert!(
            exit_status.contains(&format!("\\fB{code}\\fR")),
            "exit code {code} in the man page"
        );
    }
    let environment = page.split(".SH ENVIRONMENT").nth(1).expect("environment");
    for var in ["P2PCHAT_SECRET", "P2PCHAT_CODE", "NO_COLOR"] {
        assert!(environment.contains(var), "{var} in ENVIRONMENT");
    }
    // And man itself renders it without a warning (where installed).
    if have("groff") {
        let out = Command::new("sh")
            .args(["-c", &format!("'{BIN}' manpage | groff -man -Tutf8 -ww -z")])
            .output()
            .expect("groff");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.is_empty(),
            "groff: {warnings}"
        );
    }
}

#[test]
fn help_shows_each_way_of_meeting_and_points_at_the_manual() {
    let (code, help, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(help.contains("p2pchat listen 51423 "), "direct:\n{help}");
    assert!(
        help.contains("p2pchat dial 192.0.2.7 51423"),
        "direct:\n{help}"
    );
    assert!(help.contains("--code"), "code:\n{help}");
    assert!(help.contains("p2pchat listen --relay "), "relay:\n{help}");
    assert!(help.contains("p2pchat dial --relay "), "relay:\n{help}");
    assert!(
        help.contains("man p2pchat") && help.contains("p2pchat manpage"),
        "{help}"
    );
    assert!(help.contains("143"), "exit codes:\n{help}");
}

// ----- how to be reached ---------------------------------------------------

/// The addresses of this machine that `ip` reports, loopback and link-local
/// excluded, or None without iproute2.
fn interface_addrs() -> Option<BTreeSet<IpAddr>> {
    let out = Command::new("ip")
        .args(["-o", "addr", "show", "up"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
            .filter(|ip| !ip.is_loopback() && !is_link_local(*ip))
            .collect(),
    )
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// The addresses in a listener's "on the other machine" and "also
/// reachable at" lines, and the command.
fn reach_lines(stderr: &str) -> (Option<Vec<String>>, Vec<IpAddr>) {
    let command = stderr
        .lines()
        .find_map(|l| l.strip_prefix("on the other machine: "))
        .map(|c| c.split_whitespace().map(str::to_string).collect::<Vec<_>>());
    let mut addrs: Vec<IpAddr> = Vec::new();
    if let Some(c) = &command {
        addrs.push(c[2].parse().expect("an IP address in the command"));
    }
    if let Some(also) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("also reachable at "))
    {
        let list = also.split(" and ").next().unwrap_or(also);
        addrs.extend(
            list.split(", ")
                .map(|a| a.parse::<IpAddr>().expect("an address")),
        );
    }
    (command, addrs)
}

/// `listen` on `[::]` prints the exact command for the other machine with
/// a real, non-loopback address of this machine, and that command works.
#[test]
fn a_listener_says_how_to_reach_it_and_the_command_works() {
    let Some(expected) = interface_addrs() else {
        return;
    };
    let mut l = Proc::p2p(&["listen", "--plain", "0"], In::Pipe);
    let port = wait_port(&l);
    if expected.is_empty() {
        l.wait_stderr("no network address");
        return;
    }
    // The lines come one by one: wait for as many addresses as it shows.
    let want = expected.len().min(5);
    wait_until("the reach lines", DEADLINE, || {
        let err = l.stderr();
        err.ends_with('\n') && reach_lines(&err).1.len() >= want
    });
    let stderr = l.stderr();
    let (command, shown) = reach_lines(&stderr);
    let command = command.unwrap_or_else(|| panic!("no dial command in:\n{stderr}"));
    assert_eq!(command[..2], ["p2pchat", "dial"], "{stderr}");
    assert_eq!(command[3], port.to_string(), "the port in {command:?}");
    assert_eq!(command.len(), 4, "{command:?}");
    for ip in &shown {
        assert!(
            !ip.is_loopback() && !is_link_local(*ip),
            "{ip} in:\n{stderr}"
        );
        assert!(
            expected.contains(ip),
            "{ip} is not an address of this machine: {expected:?}"
        );
    }
    if expected.len() <= 5 {
        let shown: BTreeSet<IpAddr> = shown.into_iter().collect();
        assert_eq!(shown, expected, "every address of this machine:\n{stderr}");
    }
    // The command, run as printed (with --plain, as the listener was).
    let mut d = Proc::p2p(&["dial", "--plain", &command[2], &command[3]], In::Pipe);
    d.write(b"hello over the printed address\n");
    d.close_stdin();
    l.close_stdin();
    l.wait_stdout(31);
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"hello over the printed address\n");
}

/// A code listener only this machine can reach says so, and the command
/// it prints, run as printed with the code, joins it.
#[test]
fn a_loopback_code_listener_prints_a_command_for_this_machine() {
    let mut l = Proc::p2p(&["listen", "0", "--bind", "127.0.0.1", "--code"], In::Pipe);
    let code = stderr_after(&l, "code: ");
    let line = stderr_after(&l, "only this machine can dial it: run ");
    let command: Vec<&str> = line.split_whitespace().collect();
    assert!(
        !l.stderr().contains("on the other machine"),
        "{}",
        l.stderr()
    );
    assert_eq!(command.len(), 5, "{line}");
    assert_eq!(command[..3], ["p2pchat", "dial", "127.0.0.1"], "{line}");
    assert_eq!(command[4], "--code", "{line}");
    let mut d = Proc::p2p_env(&command[1..], In::Pipe, &[("P2PCHAT_CODE", code.trim())]);
    d.write(b"typed the code\n");
    d.close_stdin();
    l.close_stdin();
    l.wait_stdout(15);
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"typed the code\n");
}

/// In namespaces with chosen addresses: public before private, IPv4 first;
/// a machine with private addresses only is told to use a relay.
#[test]
fn public_addresses_come_first_and_private_only_points_at_the_relay() {
    let Some(ns) = Namespaces::create("reach", &["pub", "priv"], "the reach test") else {
        return;
    };
    let (p, q) = (ns.name("pub"), ns.name("priv"));
    ns.veth(("pub", "v0"), ("priv", "v1"));
    for (n, dev, addr) in [
        (&p, "v0", "10.77.0.1/24"),
        (&p, "v0", "198.51.100.7/24"),
        (&p, "v0", "2001:db8::7/64"),
        (&q, "v1", "10.77.0.2/24"),
        (&q, "v1", "192.168.77.2/24"),
    ] {
        if addr.contains(':') {
            // IPv6 may be switched off here; then the list has no IPv6.
            crate::netns::ip(&["-n", n, "-6", "addr", "add", addr, "dev", dev, "nodad"]);
        } else {
            ns.ip(&["-n", n, "addr", "add", addr, "dev", dev]);
        }
    }
    let v6 = Command::new("ip")
        .args(["-n", &p, "-6", "addr", "show", "dev", "v0"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("2001:db8::7"));
    let mut public = ns.p2p("pub", &["listen", "--plain", "0"], In::Null, &[]);
    let mut private = ns.p2p("priv", &["listen", "--plain", "0"], In::Null, &[]);
    let want: Vec<IpAddr> = ["198.51.100.7", "2001:db8::7", "10.77.0.1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .filter(|a: &IpAddr| v6 || a.is_ipv4())
        .collect();
    wait_until("the public reach lines", DEADLINE, || {
        let err = public.stderr();
        err.ends_with('\n') && reach_lines(&err).1.len() >= want.len()
    });
    private.wait_stderr("meet through a relay");
    let (command, shown) = reach_lines(&public.stderr());
    let command = command.expect("a command");
    assert_eq!(command[2], "198.51.100.7", "{}", public.stderr());
    assert_eq!(shown, want, "{}", public.stderr());
    assert!(!public.stderr().contains("private"), "{}", public.stderr());

    let stderr = private.stderr();
    let (command, shown) = reach_lines(&stderr);
    let best = &command.expect("a command")[2];
    assert!(best == "10.77.0.2" || best == "192.168.77.2", "{stderr}");
    assert_eq!(shown.len(), 2, "{stderr}");
    let note: Vec<&str> = stderr.lines().filter(|l| l.contains("private")).collect();
    assert_eq!(note.len(), 1, "one line says so:\n{stderr}");
    assert!(note[0].contains("--relay"), "{stderr}");
    public.signal(libc::SIGTERM);
    private.signal(libc::SIGTERM);
    public.wait();
    private.wait();
}

/// `-q listen 0` still says which port it chose: one stderr line, and a
/// peer can dial it.
#[test]
fn a_quiet_listener_on_port_zero_still_reports_its_port() {
    let mut l = Proc::p2p(&["listen", "-q", "--plain", "0"], In::Null);
    let port = wait_port(&l);
    let mut d = dial(&["-q", "--plain"], "127.0.0.1", port, In::Pipe);
    d.write(b"found you\n");
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"found you\n");
    let lines: Vec<String> = l.stderr().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("listening on ") && lines[0].ends_with(&format!(":{port}")));
    // A port the user chose is no news: -q says nothing.
    let port = free_port();
    let mut l = Proc::p2p(
        &[
            "listen",
            "-q",
            "--plain",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ],
        In::Null,
    );
    let port = port.to_string();
    let args = ["dial", "-q", "--plain", "127.0.0.1", &port, "--retry", "10"];
    let mut d = Proc::p2p(&args, In::Null);
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stderr(), "");
}

// ----- habits ---------------------------------------------------------------

#[test]
fn dial_takes_host_colon_port_and_bracketed_ipv6() {
    for (bind, target) in [("127.0.0.1", "127.0.0.1:{}"), ("::1", "[::1]:{}")] {
        let (mut l, port) = listen(&["--plain"], bind, In::Null);
        let target = target.replace("{}", &port.to_string());
        let mut d = Proc::p2p(&["dial", "--plain", &target], In::Pipe);
        d.write(b"colon\n");
        d.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert_eq!(l.stdout(), b"colon\n", "{target}");
    }
    // A bare IPv6 address keeps its colons; the port comes after it.
    let (mut l, port) = listen(&["--plain"], "::1", In::Null);
    let mut d = Proc::p2p(&["dial", "--plain", "::1", &port.to_string()], In::Null);
    assert_both_ok(&mut l, &mut d);
    for (args, why) in [
        (&["dial", "127.0.0.1:5", "6"][..], "the port is given twice"),
        (&["dial", "127.0.0.1"][..], "dial needs a port"),
        (&["dial", "::1"][..], "dial needs a port"),
        (&["dial", "[::1]:x"][..], "is not a port"),
        (&["dial", "host:0"][..], "is not a port"),
        (&["dial", ":5"][..], "has no host name"),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(why) && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_flag_given_to_the_wrong_command_says_where_it_belongs() {
    for (args, says) in [
        (
            &["listen", "5", "--retry", "3"][..],
            "--retry is for dial, not listen",
        ),
        (
            &["dial", "h", "5", "--tries", "2"][..],
            "--tries is for listen, not dial",
        ),
        (
            &["dial", "h", "5", "--keep"][..],
            "--keep is for listen, not dial",
        ),
        (
            &["relay", "4001", "--code"][..],
            "--code is for listen and dial, not relay",
        ),
        (
            &["--retry", "3", "dial", "h", "5"][..],
            "--retry belongs to dial: put it after 'dial'",
        ),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.starts_with(&format!("p2pchat: {says}\n")),
            "{args:?}:\n{err}"
        );
    }
    // A flag no command has is still clap's own message.
    let (code, _, err) = run(&["dial", "h", "5", "--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
}

/// `listen 80` as a user without the privilege hints at the rule. Run in a
/// network namespace of its own with the unprivileged-port floor at 1024
/// and CAP_NET_BIND_SERVICE dropped, as root; or directly as a normal user.
#[test]
fn a_low_port_without_privileges_gets_a_hint() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = if root {
        if !have("unshare") || !have("setpriv") {
            return;
        }
        let can = Command::new("unshare")
            .args(["--net", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !can {
            eprintln!("SKIPPED: unshare --net is not allowed here");
            return;
        }
        Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                &format!(
                    "echo 1024 > /proc/sys/net/ipv4/ip_unprivileged_port_start && \
                     exec setpriv --bounding-set=-net_bind_service \
                     --inh-caps=-net_bind_service '{BIN}' listen 80 </dev/null"
                ),
            ])
            .output()
            .expect("unshare")
    } else {
        let floor = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
        if floor <= 80 {
            eprintln!("SKIPPED: this machine lets anyone bind port 80");
            return;
        }
        Command::new(BIN)
            .args(["listen", "80"])
            .output()
            .expect("p2pchat")
    };
    let err = String::from_utf8_lossy(&out.stderr);
    if root && err.contains("ip_unprivileged_port_start") {
        eprintln!("SKIPPED: cannot set the port floor in a new namespace here: {err}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot listen on port 80: permission denied")
            && err.contains("ports below 1024 need root or CAP_NET_BIND_SERVICE"),
        "{err}"
    );
}

/// Two sides that are both "sam": the peer's messages at the terminal and
/// the join line carry its address, so they cannot pass for ours.
#[test]
fn two_sides_with_the_same_name_are_told_apart() {
    let mut alice = Pty::spawn(
        &["listen", "--name", "sam", "0", "--bind", "127.0.0.1"],
        &[],
        24,
        80,
    );
    let port = alice.listening_port();
    let mut bob = dial(&["--name", "sam"], "127.0.0.1", port, In::Pipe);
    alice.wait_for("\"sam@127.0.0.1\" joined from 127.0.0.1:");
    bob.write(b"it is me\n");
    alice.wait_for("sam@127.0.0.1: it is me");
    bob.wait_stderr("connected to \"sam@127.0.0.1\"");
    alice.type_text("/quit\r");
    assert_eq!(alice.code(), 0, "{}", alice.text());
    assert_eq!(bob.code(), 0, "{}", bob.stderr());

    // Through a relay the address is the relay's: the peer is "(peer)".
    let (_relay, relay_port) = p2p_relay();
    let relay = format!("127.0.0.1:{relay_port}");
    let mut host = Proc::p2p(&["listen", "--name", "sam", "--relay", &relay], In::Pipe);
    let code = stderr_after(&host, "code: ");
    let mut guest = Proc::p2p_env(
        &["dial", "--name", "sam", "--relay", &relay],
        In::Pipe,
        &[("P2PCHAT_CODE", code.trim())],
    );
    guest.wait_stderr("connected to \"sam (peer)\" through relay");
    host.wait_stderr("connected to \"sam (peer)\" through relay");
    guest.close_stdin();
    host.close_stdin();
    assert_both_ok(&mut host, &mut guest);
}

/// `--retry` says once that it is waiting, then joins when the peer comes.
#[test]
fn retry_says_it_is_waiting_and_joins_when_the_peer_comes() {
    let port = free_port();
    let args = [
        "dial",
        "--plain",
        "127.0.0.1",
        &port.to_string(),
        "--retry",
        "30",
    ]
    .map(String::from);
    let mut d = Proc::p2p(&args.each_ref().map(String::as_str), In::Pipe);
    d.wait_stderr(&format!(
        "waiting for 127.0.0.1:{port}\u{2026} (connection refused; retrying for 30 s)\n"
    ));
    let mut l = Proc::p2p(
        &[
            "listen",
            "--plain",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ],
        In::Null,
    );
    d.write(b"late but here\n");
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"late but here\n");
    assert_eq!(
        d.stderr().matches("waiting for").count(),
        1,
        "{}",
        d.stderr()
    );

    // Giving up says how long it tried.
    let (code, _, err) = run(&[
        "dial",
        "--plain",
        "127.0.0.1",
        &free_port().to_string(),
        "--retry",
        "0.3",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("connection refused (gave up after retrying for 0.3 s)"),
        "{err}"
    );
}

/// `--retry` also waits for a name that does not resolve yet: in a
/// namespace whose /etc/hosts (bind-mounted by `ip netns exec`) learns the
/// name while the dialer waits.
#[test]
fn retry_waits_for_a_name_that_does_not_resolve_yet() {
    let Some(ns) = Namespaces::create("dns", &["h"], "the late-name test") else {
        return;
    };
    let etc = format!("/etc/netns/{}", ns.name("h"));
    std::fs::create_dir_all(&etc).expect("/etc/netns");
    let _cleanup = RemoveDir(etc.clone());
    let hosts = format!("{etc}/hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
    // No DNS server in the namespace: only the hosts file answers.
    std::fs::write(
        format!("{etc}/resolv.conf"),
        "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    )
    .expect("resolv.conf");
    let port = free_port().to_string();
    let mut l = ns.p2p(
        "h",
        &["listen", "--plain", &port, "--bind", "127.0.0.1"],
        In::Null,
        &[],
    );
    l.wait_stderr("listening on");
    let mut d = ns.p2p(
        "h",
        &["dial", "--plain", "late-peer.test", &port, "--retry", "60"],
        In::Pipe,
        &[],
    );
    d.wait_stderr(&format!(
        "waiting for late-peer.test:{port}\u{2026} (the name does not resolve yet; retrying for 60 s)"
    ));
    // Appended in place: the bind mount is of this very file.
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&hosts)
        .expect("open hosts");
    f.write_all(b"127.0.0.1 late-peer.test\n").expect("append");
    drop(f);
    d.write(b"resolved at last\n");
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(l.stdout(), b"resolved at last\n");
}

/// Removes a directory tree on drop.
struct RemoveDir(String);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
