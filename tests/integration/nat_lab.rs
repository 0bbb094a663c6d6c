//! A NAT lab in network namespaces (issue 11): two hosts, each behind its
//! own MASQUERADE NAT that drops unsolicited inbound packets, and a public
//! network with a relay on it. The topology of ../shared/notes/relay-nat.md:
//!
//! ```text
//!  ha 10.0.1.2 ─ lan [nata] wan 203.0.113.11 ─┐
//!                                             br0 203.0.113.1 [pub: relay]
//!  hb 10.0.2.2 ─ lan [natb] wan 203.0.113.12 ─┘
//! ```
//!
//! A direct dial must fail (that guards the rig's realism: if it worked,
//! the relay test would prove nothing) and a room through the relay must
//! work, byte-exact both ways. The addresses are documentation ranges that
//! exist only inside the namespaces.

use crate::netns::Namespaces;
use crate::util::*;

const RELAY: &str = "203.0.113.1";

/// Builds the lab; None (SKIPPED) where the test has no root.
fn lab() -> Option<Namespaces> {
    let lab = Namespaces::create("n", &["pub", "nata", "natb", "ha", "hb"], "the NAT lab")?;
    let (public, ha, hb) = (lab.name("pub"), lab.name("ha"), lab.name("hb"));
    lab.ip(&["-n", &public, "link", "add", "br0", "type", "bridge"]);
    lab.ip(&["-n", &public, "link", "set", "br0", "up"]);
    lab.ip(&["-n", &public, "addr", "add", "203.0.113.1/24", "dev", "br0"]);
    for (x, wan, lan, host) in [
        ("a", "203.0.113.11/24", "10.0.1.1/24", "10.0.1.2/24"),
        ("b", "203.0.113.12/24", "10.0.2.1/24", "10.0.2.2/24"),
    ] {
        let nat = lab.name(&format!("nat{x}"));
        let h = if x == "a" { &ha } else { &hb };
        let (wan_if, pub_if, lan_if) = (format!("wan-{x}"), format!("pub-{x}"), format!("lan-{x}"));
        lab.ip(&[
            "link", "add", &wan_if, "netns", &nat, "type", "veth", "peer", "name", &pub_if,
            "netns", &public,
        ]);
        lab.ip(&["-n", &public, "link", "set", &pub_if, "master", "br0"]);
        lab.ip(&["-n", &public, "link", "set", &pub_if, "up"]);
        lab.ip(&[
            "link", "add", &lan_if, "netns", &nat, "type", "veth", "peer", "name", "eth0", "netns",
            h,
        ]);
        lab.ip(&["-n", &nat, "addr", "add", wan, "dev", &wan_if]);
        lab.ip(&["-n", &nat, "addr", "add", lan, "dev", &lan_if]);
        lab.ip(&["-n", h, "addr", "add", host, "dev", "eth0"]);
        lab.ip(&["-n", &nat, "link", "set", &wan_if, "up"]);
        lab.ip(&["-n", &nat, "link", "set", &lan_if, "up"]);
        lab.ip(&["-n", h, "link", "set", "eth0", "up"]);
        let gw = lan.trim_end_matches("/24");
        lab.ip(&["-n", h, "route", "add", "default", "via", gw]);
        let natx = format!("nat{x}");
        lab.exec(&natx, "sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        let ipt = |args: &[&str]| lab.exec(&natx, "iptables", args);
        ipt(&[
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-o",
            &wan_if,
            "-j",
            "MASQUERADE",
        ]);
        ipt(&[
            "-A",
            "FORWARD",
            "-i",
            &wan_if,
            "-m",
            "conntrack",
            "--ctstate",
            "ESTABLISHED,RELATED",
            "-j",
            "ACCEPT",
        ]);
        ipt(&["-A", "FORWARD", "-i", &wan_if, "-j", "DROP"]);
        ipt(&[
            "-A",
            "INPUT",
            "-i",
            &wan_if,
            "-m",
            "conntrack",
            "--ctstate",
            "NEW",
            "-j",
            "DROP",
        ]);
    }
    Some(lab)
}

#[test]
fn behind_two_nats_a_direct_dial_fails_and_a_relay_room_works() {
    let Some(lab) = lab() else { return };

    // The rig is real: a listener behind NAT A cannot be dialled, neither
    // at its NAT's public address nor at its private one.
    let mut l = lab.p2p("ha", &["listen", "51423"], In::Null, &[]);
    l.wait_stderr("listening on");
    // The NAT drops the SYN silently; the private address has no route.
    for (target, why) in [("203.0.113.11", "timed out"), ("10.0.1.2", "unreachable")] {
        let mut d = lab.p2p(
            "hb",
            &["dial", target, "51423", "--handshake-timeout", "2"],
            In::Null,
            &[],
        );
        assert_eq!(d.code(), 1, "a direct dial to {target}: {}", d.stderr());
        assert!(d.stderr().contains(why), "{target}: {}", d.stderr());
    }
    assert!(
        !l.stderr().contains("connected"),
        "nothing reached the listener: {}",
        l.stderr()
    );
    l.signal(libc::SIGTERM);
    l.wait();

    // Through the relay on the public network: byte-exact both ways.
    let relay = lab.p2p("pub", &["relay", "4001", "--bind", RELAY], In::Null, &[]);
    relay.wait_stderr("relaying on");
    let dir = TempDir::new("nat-lab");
    let (a, b) = (random_bytes(6 << 20, 11), random_bytes(3 << 20, 12));
    let (fa, fb) = (dir.file("a", &a), dir.file("b", &b));
    let mut l = lab.p2p("ha", &["listen", "--relay", RELAY], In::File(fa), &[]);
    let code = stderr_after(&l, "code: ").trim().to_string();
    let mut d = lab.p2p(
        "hb",
        &["dial", "--relay", RELAY],
        In::File(fb),
        &[("P2PCHAT_CODE", &code)],
    );
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&d.stdout(), &a, "listener to dialer");
    assert_same_bytes(&l.stdout(), &b, "dialer to listener");
    assert!(
        d.stderr().contains("through relay 203.0.113.1:4001"),
        "{}",
        d.stderr()
    );
}

/// A NAT that forgets its mappings in the middle of a relay room (its
/// conntrack table flushed, and mid-stream packets not picked up again):
/// the room stalls, both sides go back to the relay, and it carries on,
/// byte-exact both ways (issue 12).
#[test]
fn a_nat_that_forgets_its_mapping_costs_the_room_nothing() {
    let Some(lab) = lab() else { return };
    if !have("conntrack") {
        return;
    }
    lab.exec(
        "nata",
        "sysctl",
        &["-qw", "net.netfilter.nf_conntrack_tcp_loose=0"],
    );
    let relay = lab.p2p("pub", &["relay", "4001", "--bind", RELAY], In::Null, &[]);
    relay.wait_stderr("relaying on");
    let (a, b) = (random_bytes(60 << 20, 21), random_bytes(40 << 20, 22));
    let flags = ["--idle-timeout", "3"];
    let mut largs = vec!["listen"];
    largs.extend(flags);
    largs.extend(["--relay", RELAY]);
    let mut l = lab.p2p("ha", &largs, In::Pipe, &[]);
    let code = stderr_after(&l, "code: ").trim().to_string();
    let mut dargs = vec!["dial"];
    dargs.extend(flags);
    dargs.extend(["--relay", RELAY]);
    let mut d = lab.p2p("hb", &dargs, In::Pipe, &[("P2PCHAT_CODE", &code)]);
    // Half of each stream before the NAT forgets, the rest after it, so
    // the room has data to move across the broken mapping however fast.
    let (ha, hb) = (a.len() / 2, b.len() / 2);
    l.write(&a[..ha]);
    d.write(&b[..hb]);
    wait_until("half through the relay", DEADLINE, || {
        d.stdout_len() >= ha && l.stdout_len() >= hb
    });
    lab.exec("nata", "conntrack", &["-F"]);
    l.write(&a[ha..]);
    d.write(&b[hb..]);
    l.close_stdin();
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&d.stdout(), &a, "listener to dialer");
    assert_same_bytes(&l.stdout(), &b, "dialer to listener");
    for p in [&l, &d] {
        assert!(p.stderr().contains("reconnected after"), "{}", p.stderr());
    }
}
