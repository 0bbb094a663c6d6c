//! Ctrl-C, SIGTERM and SIGHUP: counted, remembered by kind, and turned
//! into a wake-up of the event loop. Installed before anything can block.
//!
//! SIGINT goes through `ctrlc` (whose handler runs on its own thread and
//! wakes the loop). SIGTERM and SIGHUP, whose exit codes differ (143, 129),
//! are caught by a minimal handler of ours that only does what is allowed
//! in a signal handler: it bumps two atomics and writes the signal's number
//! to a pipe the loop watches.
//!
//! The handlers are process-wide and installed once (`ctrlc` refuses a
//! second handler). `listen --keep` builds a fresh reactor for each room;
//! each `install` only points the handlers at that reactor's waker and
//! hands it its own descriptor of the one signal pipe.

use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mio::Waker;

use crate::error::{exit, Error, Signal};

/// A cleanup to run before an immediate exit (restoring the terminal).
type Cleanup = Box<dyn Fn() + Send>;

/// Signals seen so far, and the last one; shared with the handlers.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicI32 = AtomicI32::new(0);
/// The write end of the pipe the TERM/HUP handler signals through.
static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

/// The waker of the reactor running now, and what to undo before an
/// immediate exit (restoring the terminal).
static CURRENT_WAKER: Mutex<Option<Arc<Waker>>> = Mutex::new(None);
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);
/// Set while we raise SIGINT ourselves to stop the line editor.
static MUTED: AtomicBool = AtomicBool::new(false);
/// The handlers, installed on first use: the read end of the signal pipe,
/// or why they could not be installed.
static INSTALLED: OnceLock<Result<OwnedFd, String>> = OnceLock::new();

/// Counts interrupts; the loop reads the count after each wake-up.
#[derive(Clone)]
pub struct Interrupts {
    _private: (),
}

/// The read end of the signal pipe, for the loop to register.
pub struct SignalPipe(pub OwnedFd);

extern "C" fn on_term_or_hup(sig: libc::c_int) {
    LAST.store(sig, Ordering::SeqCst);
    // A hang-up never exits at once: a closing window brings two (the
    // kernel's and the shell's), and closing it is leaving politely.
    if COUNT.fetch_add(1, Ordering::SeqCst) >= 1 && sig != libc::SIGHUP {
        // A second signal: leave at once (async-signal-safe calls only).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(i32::from(exit::SIGNAL_BASE) + sig) };
    }
    let fd = PIPE_WR.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the pipe is non-blocking,
        // and a full pipe already holds a wake-up.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

fn on_ctrl_c() {
    if MUTED.load(Ordering::SeqCst) {
        return;
    }
    LAST.store(libc::SIGINT, Ordering::SeqCst);
    if COUNT.fetch_add(1, Ordering::SeqCst) >= 1 {
        run_cleanup();
        std::process::exit(i32::from(exit::INTERRUPTED));
    }
    if let Ok(waker) = CURRENT_WAKER.lock() {
        if let Some(w) = waker.as_ref() {
            let _ = w.wake();
        }
    }
}

fn run_cleanup() {
    if let Ok(slot) = CLEANUP.lock() {
        if let Some(f) = slot.as_ref() {
            f();
        }
    }
}

impl Interrupts {
    /// Installs the handlers (once per process) and points them at
    /// `waker`. The first interrupt wakes the loop for a polite goodbye;
    /// the second exits at once with 128 + its number.
    pub fn install(waker: Arc<Waker>) -> Result<(Interrupts, SignalPipe), Error> {
        let installed = INSTALLED.get_or_init(|| {
            ctrlc::set_handler(on_ctrl_c)
                .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
            install_term_and_hup().map_err(|e| format!("cannot install the signal handlers: {e}"))
        });
        let read = match installed {
            Ok(fd) => fd
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::Local(format!("cannot watch for signals: {e}")))?,
            Err(e) => return Err(Error::Local(e.clone())),
        };
        if let Ok(mut slot) = CURRENT_WAKER.lock() {
            *slot = Some(waker);
        }
        if let Ok(mut slot) = CLEANUP.lock() {
            *slot = None;
        }
        // The previous room's editor was stopped (and joined) before this
        // reactor was built, so its self-raised SIGINTs have been handled.
        MUTED.store(false, Ordering::SeqCst);
        Ok((Interrupts { _private: () }, SignalPipe(read)))
    }

    /// Counts one interrupt that arrived another way (the line editor).
    pub fn raise(&self) {
        LAST.store(libc::SIGINT, Ordering::SeqCst);
        COUNT.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        COUNT.load(Ordering::SeqCst)
    }

    /// The kind of the last signal.
    pub fn last(&self) -> Signal {
        match LAST.load(Ordering::SeqCst) {
            libc::SIGTERM => Signal::Term,
            libc::SIGHUP => Signal::Hup,
            _ => Signal::Int,
        }
    }

    /// From now on interrupts are ignored: we are exiting, and raise SIGINT
    /// ourselves to stop the line editor.
    pub fn mute(&self) {
        MUTED.store(true, Ordering::SeqCst);
    }

    /// Sets what to undo before an immediate exit.
    pub fn on_exit(&self, f: Cleanup) {
        if let Ok(mut slot) = CLEANUP.lock() {
            *slot = Some(f);
        }
    }
}

impl SignalPipe {
    /// Empties the pipe after a wake-up.
    pub fn drain(&self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 64];
        // SAFETY: reading into our own buffer from our non-blocking pipe.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

fn install_term_and_hup() -> std::io::Result<OwnedFd> {
    let mut fds: [RawFd; 2] = [-1, -1];
    // SAFETY: pipe2 fills two fds or fails.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are ours alone.
    let (read, _write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), fds[1]) };
    PIPE_WR.store(fds[1], Ordering::SeqCst);
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with our handler and an empty mask.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_term_or_hup as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(read)
}
