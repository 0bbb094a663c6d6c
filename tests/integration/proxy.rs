//! A man-in-the-middle TCP proxy for the tests: forwards one connection,
//! records every byte each way, and can flip one byte in flight.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the proxy does to the bytes going up, from the dialer (who
/// connects to the proxy) to the listener.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// XOR the byte at this offset with 0x01.
    Flip(usize),
    /// Forward bytes before this offset, then close both ways.
    Cut(usize),
}

pub struct Proxy {
    pub port: u16,
    /// Everything the dialer sent, then everything the listener sent.
    pub up: Arc<Mutex<Vec<u8>>>,
    pub down: Arc<Mutex<Vec<u8>>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on loopback and forwards the first connection to `target`,
    /// applying `fault` to the upward bytes.
    pub fn start(target: u16, fault: Option<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(Mutex::new(Vec::new()));
        let (u, d) = (up.clone(), down.clone());
        let thread = std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let a = pump(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                u,
                fault,
            );
            let b = pump(server, client, d, None);
            let _ = a.join();
            let _ = b.join();
        });
        Proxy {
            port,
            up,
            down,
            thread: Some(thread),
        }
    }

    pub fn captured(&self) -> Vec<u8> {
        let mut all = self.up.lock().unwrap().clone();
        all.extend_from_slice(&self.down.lock().unwrap());
        all
    }

    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    log: Arc<Mutex<Vec<u8>>>,
    fault: Option<Fault>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        let mut offset = 0usize;
        loop {
            let mut n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut cut = false;
            match fault {
                Some(Fault::Flip(at)) if (offset..offset + n).contains(&at) => {
                    buf[at - offset] ^= 0x01
                }
                Some(Fault::Cut(at)) if offset + n >= at => {
                    n = at - offset;
                    cut = true;
                }
                _ => {}
            }
            offset += n;
            log.lock().unwrap().extend_from_slice(&buf[..n]);
            if to.write_all(&buf[..n]).is_err() || cut {
                let _ = from.shutdown(Shutdown::Both);
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    })
}
