//! UPnP-IGD for `listen --map`, when NAT-PMP gets no mapping: SSDP finds
//! the router's Internet Gateway Device, then its control URL is asked
//! (SOAP) for the external address and a TCP port mapping. The SSDP, SOAP
//! and XML come from the `igd-next` crate.
//!
//! igd-next blocks (a search waits for answers, each SOAP call is an HTTP
//! request with no deadline of ours), so it runs on one helper thread: the
//! room's loop must keep accepting and chatting meanwhile, and the mapping
//! is wanted only after NAT-PMP has failed, which is after the loop has
//! started, so running it before the loop is no option. The thread tells
//! the loop what happened through a channel and the loop's
//! [`mio::Waker`], and takes its orders through another channel.
//!
//! The search starts together with NAT-PMP, so that a router that answers
//! SSDP late (devices may wait up to the 3 s of the search's `MX`) is still
//! found, and "no router answered" still comes within 5 s; nothing is
//! mapped through UPnP unless the loop says [`Upnp::map`], which it does
//! only once NAT-PMP got no mapping. The thread renews the lease at half
//! its length, and deletes the mapping on [`Upnp::stop`].

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use igd_next::{PortMappingProtocol, SearchOptions};
use mio::Waker;

/// How long SSDP discovery waits for a gateway's answer (it runs beside
/// NAT-PMP's 1.75 s): "no router answered" comes within 5 s.
const SEARCH: Duration = Duration::from_millis(3500);
/// What the router's mapping table shows for ours.
const DESCRIPTION: &str = "p2pchat";

/// What the helper thread reports.
#[derive(Debug)]
pub enum Report {
    Mapped {
        ip: IpAddr,
        port: u16,
    },
    /// No gateway answered the search.
    NoAnswer,
    /// A gateway answered and would not map (its words).
    Refused(String),
    /// A renewal failed: the mapping lapses at the end of its lease.
    Lapsing,
    /// The mapping is deleted (or there was none): the thread is done.
    Done,
}

/// What the loop tells the helper thread.
enum Order {
    /// Map the port (NAT-PMP got no mapping).
    Map,
    /// Delete the mapping, if any, and finish.
    Stop,
}

/// The loop's side of the helper thread.
pub struct Upnp {
    orders: Sender<Order>,
    reports: Receiver<Report>,
    done: bool,
}

impl Upnp {
    /// Starts the helper thread searching for the router, to map TCP
    /// `local` (our LAN address and listening port) for `lease` once told
    /// to. None if no thread can be started (then UPnP is not asked).
    pub fn start(local: SocketAddrV4, lease: Duration, waker: Arc<Waker>) -> Option<Upnp> {
        let (orders, orders_rx) = mpsc::channel();
        let (tx, reports) = mpsc::channel();
        let report = move |r: Report| {
            let _ = tx.send(r);
            let _ = waker.wake();
        };
        std::thread::Builder::new()
            .name("upnp".into())
            .spawn(move || helper(local, lease, &orders_rx, report))
            .ok()?;
        Some(Upnp {
            orders,
            reports,
            done: false,
        })
    }

    /// The reports that came in since the last call.
    pub fn reports(&mut self) -> Vec<Report> {
        let mut out = Vec::new();
        while let Ok(r) = self.reports.try_recv() {
            if matches!(r, Report::Done) {
                self.done = true;
            }
            out.push(r);
        }
        out
    }

    /// Tells the thread to map the port once it has found the router.
    pub fn map(&self) {
        let _ = self.orders.send(Order::Map);
    }

    /// Tells the thread to delete the mapping (if any) and finish.
    pub fn stop(&self) {
        let _ = self.orders.send(Order::Stop);
    }

    pub fn done(&self) -> bool {
        self.done
    }
}

fn helper(local: SocketAddrV4, lease: Duration, orders: &Receiver<Order>, report: impl Fn(Report)) {
    let mut options = SearchOptions::default();
    options.bind_addr = SocketAddr::from((*local.ip(), 0));
    options.timeout = Some(SEARCH);
    options.single_search_timeout = Some(SEARCH);
    let Ok(gateway) = igd_next::search_gateway(options) else {
        report(Report::NoAnswer);
        report(Report::Done);
        return;
    };
    // Map only when told to; a room that ends first maps nothing.
    if !matches!(orders.recv(), Ok(Order::Map)) {
        report(Report::Done);
        return;
    }
    let secs = u32::try_from(lease.as_secs()).unwrap_or(u32::MAX).max(1);
    let ip = match gateway.get_external_ip() {
        Ok(ip) => ip,
        Err(e) => {
            report(Report::Refused(e.to_string()));
            report(Report::Done);
            return;
        }
    };
    let tcp = PortMappingProtocol::TCP;
    let local_sa = SocketAddr::V4(local);
    // The same port outside as inside when it is free, else any.
    let port = match gateway.add_port(tcp, local.port(), local_sa, secs, DESCRIPTION) {
        Ok(()) => local.port(),
        Err(_) => match gateway.add_any_port(tcp, local_sa, secs, DESCRIPTION) {
            Ok(port) => port,
            Err(e) => {
                report(Report::Refused(e.to_string()));
                report(Report::Done);
                return;
            }
        },
    };
    report(Report::Mapped { ip, port });
    let renew_every = Duration::from_secs(u64::from(secs)) / 2;
    // Until stopped, or the loop is gone: then delete.
    loop {
        match orders.recv_timeout(renew_every) {
            Ok(Order::Map) => continue,
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Order::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
        if gateway
            .add_port(tcp, port, local_sa, secs, DESCRIPTION)
            .is_err()
        {
            report(Report::Lapsing);
        }
    }
    let _ = gateway.remove_port(tcp, port);
    report(Report::Done);
}
