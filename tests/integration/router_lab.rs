//! A home router in the NAT lab (issue 23): `listen --map` asks a real
//! miniupnpd for a port, and a host on the public side dials the command
//! the listener printed. Three namespaces, every address private or
//! TEST-NET-3, no route out (../shared/notes/router-lab.md):
//!
//! ```text
//!  home 192.168.77.2 ─ lan0 192.168.77.1 [router] wan0 203.0.113.1 ─ 203.0.113.2 inet
//! ```
//!
//! The router masquerades and drops unsolicited inbound connections; only
//! what miniupnpd maps gets through. miniupnpd-iptables drives the legacy
//! x_tables, so the router's own rules are made with `iptables-legacy`.
//! miniupnpd refuses to forward with a reserved external address unless a
//! STUN server says it is public: a tiny one runs in `inet`.
//!
//! Needs root and Debian's `miniupnpd-iptables` (and `iptables` for
//! `iptables-legacy`); without them each test says SKIPPED, except under
//! `P2PCHAT_REQUIRE_ALL=1`, where a missing package fails.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netns::Namespaces;
use crate::util::*;

const PUBLIC: &str = "203.0.113.1";
const HOME: &str = "192.168.77.2";

/// What the router runs: NAT-PMP (and PCP), UPnP, both or nothing.
#[derive(Clone, Copy)]
struct Router {
    natpmp: bool,
    upnp: bool,
    /// Run miniupnpd at all (false: a router that answers nothing).
    daemon: bool,
}

struct Lab {
    ns: Namespaces,
    dir: TempDir,
    stun_stop: Arc<AtomicBool>,
    daemon: Option<Proc>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stun_stop.store(true, Ordering::SeqCst);
        if let Some(d) = self.daemon.as_mut() {
            d.signal(libc::SIGTERM);
            d.wait();
        }
    }
}

/// Whether `tool` is there; when it is not, a SKIPPED line, or a failure
/// under `P2PCHAT_REQUIRE_ALL`.
fn need(tool: &str, package: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var_os("P2PCHAT_REQUIRE_ALL").is_some() {
        panic!("{tool} is required here: apt-get install {package}");
    }
    eprintln!("SKIPPED: the router lab needs {tool} (apt-get install {package})");
    false
}

/// Runs `f` on a thread inside the network namespace `name`: setns(2)
/// moves only the calling thread.
fn in_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{name}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).expect("the namespace's file");
        // SAFETY: a valid namespace fd; this thread alone changes namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {path}");
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// A STUN server (RFC 5389 Binding) at 203.0.113.2:3478 in `inet`: it
/// answers each request with the address it came from, which is the
/// router's WAN address, until `stop`.
fn stun_server(name: &str, stop: Arc<AtomicBool>) {
    let sock = in_netns(name, || {
        UdpSocket::bind("203.0.113.2:3478").expect("bind STUN")
    });
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("a read timeout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if n < 20 || buf[0..2] != [0, 1] {
                continue;
            }
            let std::net::SocketAddr::V4(from) = from else {
                continue;
            };
            let cookie = [0x21, 0x12, 0xa4, 0x42];
            let mut r = vec![0x01, 0x01, 0, 24];
            r.extend_from_slice(&buf[4..20]); // the cookie and transaction id
                                              // MAPPED-ADDRESS
            r.extend_from_slice(&[0, 1, 0, 8, 0, 1]);
            r.extend_from_slice(&from.port().to_be_bytes());
            r.extend_from_slice(&from.ip().octets());
            // XOR-MAPPED-ADDRESS
            r.extend_from_slice(&[0, 0x20, 0, 8, 0, 1]);
            let port = from.port() ^ 0x2112;
            r.extend_from_slice(&port.to_be_bytes());
            let ip = from.ip().octets();
            r.extend((0..4).map(|i| ip[i] ^ cookie[i]));
            let _ = sock.send_to(&r, from);
        }
    });
}

/// Builds the lab and starts miniupnpd as `router` says. None (SKIPPED)
/// where this machine cannot.
fn lab(router: Router) -> Option<Lab> {
    if !need("miniupnpd", "miniupnpd-iptables") || !need("iptables-legacy", "iptables") {
        return None;
    }
    let ns = Namespaces::create("u", &["home", "router", "inet"], "the router lab")?;
    ns.veth(("home", "eth0"), ("router", "lan0"));
    ns.veth(("router", "wan0"), ("inet", "eth0"));
    let (home, rt, inet) = (ns.name("home"), ns.name("router"), ns.name("inet"));
    ns.ip(&["-n", &home, "addr", "add", "192.168.77.2/24", "dev", "eth0"]);
    ns.ip(&["-n", &rt, "addr", "add", "192.168.77.1/24", "dev", "lan0"]);
    ns.ip(&["-n", &rt, "addr", "add", "203.0.113.1/24", "dev", "wan0"]);
    ns.ip(&["-n", &inet, "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
    ns.ip(&[
        "-n",
        &home,
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
    ]);
    ns.exec("router", "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    // -w: the xtables lock is one file for every namespace, and the tests
    // run in parallel.
    let ipt = |args: &[&str]| {
        let mut full = vec!["-w"];
        full.extend_from_slice(args);
        ns.exec("router", "iptables-legacy", &full);
    };
    // The chains miniupnpd fills, and the jumps into them.
    for (table, chain, hook, dir) in [
        ("nat", "MINIUPNPD", "PREROUTING", "-i"),
        ("nat", "MINIUPNPD-POSTROUTING", "POSTROUTING", "-o"),
        ("filter", "MINIUPNPD", "FORWARD", "-i"),
        ("mangle", "MINIUPNPD", "PREROUTING", "-i"),
    ] {
        ipt(&["-t", table, "-N", chain]);
        ipt(&["-t", table, "-A", hook, dir, "wan0", "-j", chain]);
    }
    ipt(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "wan0",
        "-j",
        "MASQUERADE",
    ]);
    ipt(&[
        "-A",
        "FORWARD",
        "-i",
        "wan0",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ]);
    ipt(&["-A", "FORWARD", "-i", "wan0", "-j", "DROP"]);

    let stun_stop = Arc::new(AtomicBool::new(false));
    stun_server(&inet, stun_stop.clone());

    let dir = TempDir::new("router-lab");
    let mut lab = Lab {
        ns,
        dir,
        stun_stop,
        daemon: None,
    };
    if router.daemon {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let conf = format!(
            "ext_ifname=wan0\nlistening_ip=lan0\nport=0\n\
             enable_natpmp={}\nenable_upnp={}\nsecure_mode=yes\nsystem_uptime=yes\n\
             ext_perform_stun=yes\next_stun_host=203.0.113.2\next_stun_port=3478\n\
             lease_file={}\nmin_lifetime=2\nmax_lifetime=86400\n\
             uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
             allow 1024-65535 192.168.77.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
            yes(router.natpmp),
            yes(router.upnp),
            lab.leases().display()
        );
        let conf = lab.dir.file("miniupnpd.conf", conf.as_bytes());
        let pid = lab.dir.0.join("miniupnpd.pid");
        let name = lab.ns.name("router");
        let args = [
            "netns",
            "exec",
            &name,
            "miniupnpd",
            "-d",
            "-f",
            conf.to_str().expect("a UTF-8 path"),
            "-P",
            pid.to_str().expect("a UTF-8 path"),
        ];
        let d = Proc::spawn("ip", &args, In::Null, &[]);
        // Ready once STUN has told it the external address is public and
        // its sockets are open.
        wait_until_lazy(
            || format!("miniupnpd to start: {}", d.stderr()),
            DEADLINE,
            || {
                d.stderr().contains("Listening for NAT-PMP")
                    || d.stderr().contains("HTTP listening")
            },
        );
        lab.daemon = Some(d);
    }
    Some(lab)
}

impl Lab {
    fn leases(&self) -> PathBuf {
        self.dir.0.join("leases")
    }

    /// The rules miniupnpd holds in its NAT chain (the port forwards).
    fn forwards(&self) -> Vec<String> {
        let name = self.ns.name("router");
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &name,
                "iptables-legacy",
                "-w",
                "-t",
                "nat",
                "-S",
                "MINIUPNPD",
            ])
            .stderr(Stdio::null())
            .output()
            .expect("iptables-legacy");
        assert!(out.status.success(), "iptables-legacy -S failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("-A"))
            .map(str::to_string)
            .collect()
    }

    fn daemon_log(&self) -> String {
        self.daemon.as_ref().map(Proc::stderr).unwrap_or_default()
    }
}

/// The `p2pchat dial HOST PORT` of the last `on the other machine:` line.
fn last_dial_command(stderr: &str) -> (String, u16) {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("p2pchat dial"))
        .unwrap_or_else(|| panic!("no dial command in {stderr}"));
    let words: Vec<&str> = line
        .split("p2pchat dial ")
        .nth(1)
        .unwrap()
        .split(' ')
        .collect();
    (words[0].to_string(), words[1].trim().parse().unwrap())
}

/// Waits for the mapped line (made `how`) and the dial command after it,
/// and returns the command's host and port: the router's public side.
fn wait_mapped(l: &Proc, how: &str) -> (String, u16) {
    let want = format!("on the router ({how}); removed when p2pchat ends");
    wait_until_lazy(
        || format!("the mapped line and its dial command: {}", l.stderr()),
        DEADLINE,
        || {
            let command = format!("on the other machine: p2pchat dial {PUBLIC} ");
            l.stderr()
                .split(&want)
                .nth(1)
                .and_then(|rest| rest.split(&command).nth(1).map(|tail| tail.contains('\n')))
                .unwrap_or(false)
        },
    );
    let (host, port) = last_dial_command(&l.stderr());
    assert_eq!(host, PUBLIC, "{}", l.stderr());
    (host, port)
}

/// A listener at home maps its port, and a host on the public side dials
/// the printed command: bytes exact both ways. Then nothing is left in
/// the router's chain.
fn dial_through_the_router(router: Router, how: &str) {
    let Some(lab) = lab(router) else { return };
    let dir = TempDir::new("router-lab-data");
    let (a, b) = (random_bytes(3 << 20, 31), random_bytes(2 << 20, 32));
    let (fa, fb) = (dir.file("a", &a), dir.file("b", &b));
    let mut l = lab
        .ns
        .p2p("home", &["listen", "0", "--map"], In::File(fa), &[]);
    let (host, port) = wait_mapped(&l, how);
    assert!(
        l.stderr().contains(&format!(
            "mapped {PUBLIC}:{port} on the router ({how}); removed when p2pchat ends\n"
        )),
        "{}\n{}",
        l.stderr(),
        lab.daemon_log()
    );
    assert_eq!(lab.forwards().len(), 1, "one forward: {:?}", lab.forwards());
    let mut d = lab.ns.p2p(
        "inet",
        &["dial", &host, &port.to_string()],
        In::File(fb),
        &[],
    );
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&d.stdout(), &a, "listener to dialer");
    assert_same_bytes(&l.stdout(), &b, "dialer to listener");
    // The dialer reached the router's public address, and the listener
    // saw the public host: nothing went around the router.
    assert!(
        d.stderr().contains(&format!("({PUBLIC}:{port})")),
        "{}",
        d.stderr()
    );
    assert!(l.stderr().contains("(203.0.113.2:"), "{}", l.stderr());
    assert_eq!(
        lab.forwards(),
        Vec::<String>::new(),
        "the mapping outlived the listener"
    );
}

#[test]
fn natpmp_only_a_public_host_dials_the_printed_command() {
    dial_through_the_router(NATPMP, "NAT-PMP");
}

#[test]
fn upnp_only_a_public_host_dials_the_printed_command() {
    dial_through_the_router(UPNP, "UPnP");
}

/// The rig is real: without `--map` the public host cannot get in.
#[test]
fn without_map_nothing_is_asked_and_the_public_side_cannot_dial() {
    let Some(lab) = lab(NATPMP) else {
        return;
    };
    let mut l = lab.ns.p2p("home", &["listen", "51423"], In::Null, &[]);
    // The hint is the last of the listener's lines: wait for it, not
    // only for the first.
    l.wait_stderr("(--map) or meet through a relay (--relay)");
    let mut d = lab.ns.p2p(
        "inet",
        &["dial", PUBLIC, "51423", "--handshake-timeout", "2"],
        In::Null,
        &[],
    );
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert!(lab.forwards().is_empty(), "{:?}", lab.forwards());
    assert!(
        !lab.daemon_log().contains("NAT-PMP request received"),
        "asked without --map"
    );
    l.signal(libc::SIGTERM);
    l.wait();
}

/// Every way of ending removes the mapping: the peer leaving (above),
/// Ctrl-C, SIGTERM, SIGHUP, an error (the terminal is not needed for
/// those), and `--keep` ending.
#[test]
fn no_mapping_outlives_the_listener_however_it_ends_natpmp() {
    no_mapping_outlives_the_listener(NATPMP, "NAT-PMP");
}

#[test]
fn no_mapping_outlives_the_listener_however_it_ends_upnp() {
    no_mapping_outlives_the_listener(UPNP, "UPnP");
}

const NATPMP: Router = Router {
    natpmp: true,
    upnp: false,
    daemon: true,
};
const UPNP: Router = Router {
    natpmp: false,
    upnp: true,
    daemon: true,
};

fn no_mapping_outlives_the_listener(router: Router, how: &str) {
    let Some(lab) = lab(router) else {
        return;
    };
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // Once with -q: the mapped lines are still said (a script needs
        // them), the hint is not.
        let quiet = sig == libc::SIGINT;
        let args: &[&str] = if quiet {
            &["listen", "0", "--map", "-q"]
        } else {
            &["listen", "0", "--map"]
        };
        let mut l = lab.ns.p2p("home", args, In::Pipe, &[]);
        wait_mapped(&l, how);
        assert_eq!(
            l.stderr().contains("every address here is private"),
            !quiet,
            "{}",
            l.stderr()
        );
        assert_eq!(lab.forwards().len(), 1, "{:?}", lab.forwards());
        l.signal(sig);
        l.wait();
        assert_eq!(
            lab.forwards(),
            Vec::<String>::new(),
            "signal {sig}: {}",
            l.stderr()
        );
    }
    // An error: a dialer with the wrong secret burns the only try.
    let mut l = lab.ns.p2p(
        "home",
        &["listen", "0", "--map", "--tries", "1"],
        In::Pipe,
        &[("P2PCHAT_SECRET", "right horse battery staple")],
    );
    let (host, port) = wait_mapped(&l, how);
    let mut d = lab.ns.p2p(
        "inet",
        &["dial", &host, &port.to_string()],
        In::Null,
        &[("P2PCHAT_SECRET", "wrong horse battery staple")],
    );
    d.wait();
    assert_ne!(l.code(), 0, "{}", l.stderr());
    assert_eq!(
        lab.forwards(),
        Vec::<String>::new(),
        "after an error: {}",
        l.stderr()
    );
}

/// No router answers: one line within 5 s, and a local dial still works.
/// The gateway's closed port says "unreachable" at once.
#[test]
fn no_router_one_line_within_five_seconds_and_the_listener_still_listens() {
    no_router(false);
}

/// The same with a gateway that drops what it does not serve: the line
/// still comes within 5 s (NAT-PMP's retransmissions, then SSDP's wait).
#[test]
fn a_silent_gateway_one_line_within_five_seconds() {
    no_router(true);
}

fn no_router(silent: bool) {
    let Some(lab) = lab(Router {
        natpmp: false,
        upnp: false,
        daemon: false,
    }) else {
        return;
    };
    if silent {
        lab.ns.exec(
            "router",
            "iptables-legacy",
            &["-w", "-A", "INPUT", "-p", "udp", "-j", "DROP"],
        );
    }
    let start = Instant::now();
    let mut l = lab
        .ns
        .p2p("home", &["listen", "51424", "--map"], In::Pipe, &[]);
    wait_until_lazy(
        || format!("the not-mapped line: {}", l.stderr()),
        Duration::from_secs(5),
        || l.stderr().contains("not mapped"),
    );
    assert!(start.elapsed() <= Duration::from_secs(5));
    let line = l
        .stderr()
        .lines()
        .find(|x| x.contains("not mapped"))
        .unwrap_or_default()
        .to_string();
    assert_eq!(line, "no router answered NAT-PMP, PCP or UPnP; not mapped");
    assert!(l.stderr().contains("(--relay)"), "{}", l.stderr());
    // A dial from the home network itself still gets in.
    let mut d = lab.ns.p2p("home", &["dial", HOME, "51424"], In::Pipe, &[]);
    l.write(b"hello from the listener\n");
    d.write(b"hello from the dialer\n");
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(d.stdout(), b"hello from the listener\n");
    assert_eq!(l.stdout(), b"hello from the dialer\n");
}

/// A short lease is renewed before it ends: the lease file's expiry moves
/// on, the mapping is still there after the first lease would have run
/// out, and a public host still gets in.
#[test]
fn a_short_lease_is_renewed_natpmp() {
    a_short_lease_is_renewed(NATPMP, "NAT-PMP");
}

#[test]
fn a_short_lease_is_renewed_upnp() {
    a_short_lease_is_renewed(UPNP, "UPnP");
}

fn a_short_lease_is_renewed(router: Router, how: &str) {
    let Some(lab) = lab(router) else {
        return;
    };
    let mut l = lab.ns.p2p(
        "home",
        &["listen", "0", "--map"],
        In::Pipe,
        &[("P2PCHAT_MAP_LEASE", "4")],
    );
    let (host, port) = wait_mapped(&l, how);
    let expiry = || {
        std::fs::read_to_string(lab.leases())
            .unwrap_or_default()
            .lines()
            .filter_map(|x| x.split(':').nth(4).and_then(|t| t.parse::<u64>().ok()))
            .next()
    };
    let first = expiry().expect("a lease in the lease file");
    // Two renewals: each pushes the expiry on.
    let mut seen = first;
    for round in 0..2 {
        wait_until_lazy(
            || format!("renewal {round}: {:?} {}", expiry(), lab.daemon_log()),
            DEADLINE,
            || expiry().is_some_and(|t| t > seen),
        );
        seen = expiry().unwrap_or(seen);
    }
    assert!(seen >= first + 2, "{first} -> {seen}");
    assert_eq!(lab.forwards().len(), 1, "{:?}", lab.forwards());
    let mut d = lab
        .ns
        .p2p("inet", &["dial", &host, &port.to_string()], In::Pipe, &[]);
    l.write(b"still mapped\n");
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_eq!(d.stdout(), b"still mapped\n");
    assert_eq!(lab.forwards(), Vec::<String>::new());
}

/// `--keep` hosting at a terminal, ended at its prompt: the mapping goes
/// with it. (The program is started from a thread inside the home
/// namespace, which its process inherits.)
#[test]
fn keep_hosting_ended_at_the_prompt_leaves_no_mapping() {
    let Some(lab) = lab(NATPMP) else {
        return;
    };
    let mut host = in_netns(&lab.ns.name("home"), || {
        crate::pty::Pty::spawn(&["listen", "0", "--map", "--keep"], &[], 30, 120)
    });
    host.wait_for("on the router (NAT-PMP)");
    assert_eq!(lab.forwards().len(), 1, "{:?}", lab.forwards());
    host.type_text("/quit\r");
    assert_eq!(host.code(), 0, "{}", host.text());
    assert_eq!(lab.forwards(), Vec::<String>::new(), "{}", host.text());
}
