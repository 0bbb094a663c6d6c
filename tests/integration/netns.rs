//! Network namespaces that a test creates itself and removes on drop, so
//! that traffic between "hosts" never leaves this machine. Needs root and
//! iproute2 (and iptables for the rigs that filter); without them a test
//! says SKIPPED and returns.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::*;

/// Runs `ip ARGS`, quietly; true if it succeeded.
pub fn ip(args: &[&str]) -> bool {
    run_quiet("ip", args)
}

fn run_quiet(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A set of namespaces named `p2p<tag><unique>-<host>`, deleted on drop.
pub struct Namespaces {
    prefix: String,
    hosts: Vec<String>,
}

impl Namespaces {
    /// Creates one namespace per name in `hosts`, each with its loopback
    /// up. None (after a SKIPPED line naming `what`) if this machine cannot.
    pub fn create(tag: &str, hosts: &[&str], what: &str) -> Option<Namespaces> {
        if !cfg!(target_os = "linux") {
            eprintln!("SKIPPED: {what} needs Linux network namespaces");
            return None;
        }
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: {what} needs root for network namespaces (CI has it)");
            return None;
        }
        if !have("ip") || !have("iptables") {
            eprintln!("SKIPPED: {what} needs ip (iproute2) and iptables");
            return None;
        }
        // Unique per call: tests run in parallel in one process.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "p2p{tag}{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut ns = Namespaces {
            prefix,
            hosts: Vec::new(),
        };
        for h in hosts {
            let name = ns.name(h);
            if !ip(&["netns", "add", &name]) {
                eprintln!("SKIPPED: {what}: could not create network namespaces here");
                return None;
            }
            ns.hosts.push(name.clone());
            ns.ip(&["-n", &name, "link", "set", "lo", "up"]);
        }
        Some(ns)
    }

    /// The full namespace name of `host`.
    pub fn name(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// `ip ARGS`, which must succeed: the rig is broken otherwise.
    pub fn ip(&self, args: &[&str]) {
        assert!(ip(args), "ip {args:?} failed");
    }

    /// Joins two hosts with a veth pair, `(host, interface)` at each end,
    /// both ends up (addresses are the caller's).
    pub fn veth(&self, (a, if_a): (&str, &str), (b, if_b): (&str, &str)) {
        let (na, nb) = (self.name(a), self.name(b));
        self.ip(&[
            "link", "add", if_a, "netns", &na, "type", "veth", "peer", "name", if_b, "netns", &nb,
        ]);
        self.ip(&["-n", &na, "link", "set", if_a, "up"]);
        self.ip(&["-n", &nb, "link", "set", if_b, "up"]);
    }

    /// `PROGRAM ARGS` inside `host`'s namespace, which must succeed.
    pub fn exec(&self, host: &str, program: &str, args: &[&str]) {
        let name = self.name(host);
        let mut full = vec!["netns", "exec", &name, program];
        full.extend_from_slice(args);
        let ok = Command::new("ip")
            .args(&full)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "{program} {args:?} in {name} failed");
    }

    /// Starts p2pchat in `host`'s namespace.
    pub fn p2p(&self, host: &str, args: &[&str], input: In, env: &[(&str, &str)]) -> Proc {
        let name = self.name(host);
        let mut full = vec!["netns", "exec", &name, BIN];
        full.extend_from_slice(args);
        Proc::spawn("ip", &full, input, env)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.hosts {
            ip(&["netns", "del", name]);
        }
    }
}
