//! Ctrl-C, SIGTERM and SIGHUP: counted, remembered by kind, and turned
//! into a wake-up of the event loop. Installed before anything can block.
//!
//! SIGINT goes through `ctrlc` (whose handler runs on its own thread and
//! wakes the loop). SIGTERM and SIGHUP, whose exit codes differ (143, 129),
//! are caught by a minimal handler of ours that only does what is allowed
//! in a signal handler: it bumps two atomics and writes the signal's number
//! to a pipe the loop watches (`sys::process`). On Windows the console
//! closing (or logoff, or shutdown) is SIGHUP's equivalent, handled on a
//! thread of Windows' own that wakes the loop directly.
//!
//! The handlers are process-wide and installed once (`ctrlc` refuses a
//! second handler). `listen --keep` builds a fresh reactor for each room;
//! each `install` only points the handlers at that reactor's waker and
//! hands it its own descriptor of the one signal pipe.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mio::Waker;

use crate::error::{exit, Error, Signal};
use crate::sys::process::{self, SignalPipe, Then};

/// A cleanup to run before an immediate exit (restoring the terminal).
type Cleanup = Box<dyn Fn() + Send>;

/// Signals seen so far, and the last one's number; shared with the
/// handlers.
static COUNT: AtomicUsize = AtomicUsize::new(0);
static LAST: AtomicU8 = AtomicU8::new(0);

/// The waker of the reactor running now, and what to undo before an
/// immediate exit (restoring the terminal).
static CURRENT_WAKER: Mutex<Option<Arc<Waker>>> = Mutex::new(None);
static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);
/// Set while we raise SIGINT ourselves to stop the line editor.
static MUTED: AtomicBool = AtomicBool::new(false);
/// The handlers, installed on first use: the signal pipe, or why they
/// could not be installed.
static INSTALLED: OnceLock<Result<SignalPipe, String>> = OnceLock::new();

/// Counts interrupts; the loop reads the count after each wake-up.
#[derive(Clone)]
pub struct Interrupts {
    _private: (),
}

/// Counts `signal` and says what to do: the first asks the loop for a
/// polite goodbye, a second Ctrl-C or SIGTERM means "now". A hang-up never
/// skips the goodbye: when a window closes, the kernel's SIGHUP and the
/// shell's arrive together, and the second is no sign of impatience.
/// Runs inside a signal handler: atomics only.
fn policy(signal: Signal) -> Then {
    LAST.store(signal.number(), Ordering::SeqCst);
    let earlier = COUNT.fetch_add(1, Ordering::SeqCst);
    if earlier >= 1 && signal != Signal::Hup {
        Then::Exit(i32::from(exit::SIGNAL_BASE + signal.number()))
    } else {
        Then::Wake
    }
}

/// Wakes the loop (from a thread, never from a signal handler).
fn wake() {
    if let Ok(waker) = CURRENT_WAKER.lock() {
        if let Some(w) = waker.as_ref() {
            let _ = w.wake();
        }
    }
}

fn on_ctrl_c() {
    if MUTED.load(Ordering::SeqCst) {
        return;
    }
    if let Then::Exit(code) = policy(Signal::Int) {
        run_cleanup();
        std::process::exit(code);
    }
    wake();
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
    /// a second Ctrl-C or SIGTERM exits at once with 128 + its number.
    pub fn install(waker: Arc<Waker>) -> Result<(Interrupts, SignalPipe), Error> {
        let installed = INSTALLED.get_or_init(|| {
            ctrlc::set_handler(on_ctrl_c)
                .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
            process::install_term_and_hup(policy, wake)
                .map_err(|e| format!("cannot install the signal handlers: {e}"))
        });
        let pipe = match installed {
            Ok(pipe) => pipe
                .try_clone()
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
        Ok((Interrupts { _private: () }, pipe))
    }

    /// Counts one interrupt that arrived another way (the line editor).
    pub fn raise(&self) {
        LAST.store(Signal::Int.number(), Ordering::SeqCst);
        COUNT.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        COUNT.load(Ordering::SeqCst)
    }

    /// The kind of the last signal.
    pub fn last(&self) -> Signal {
        let last = LAST.load(Ordering::SeqCst);
        if last == Signal::Term.number() {
            Signal::Term
        } else if last == Signal::Hup.number() {
            Signal::Hup
        } else {
            Signal::Int
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hang_up_never_skips_the_goodbye_but_a_second_interrupt_does() {
        COUNT.store(0, Ordering::SeqCst);
        assert_eq!(policy(Signal::Hup), Then::Wake);
        assert_eq!(
            policy(Signal::Hup),
            Then::Wake,
            "the shell's SIGHUP after the kernel's"
        );
        COUNT.store(0, Ordering::SeqCst);
        assert_eq!(policy(Signal::Int), Then::Wake);
        assert_eq!(
            policy(Signal::Hup),
            Then::Wake,
            "the window closed after Ctrl-C"
        );
        assert_eq!(policy(Signal::Int), Then::Exit(130), "Ctrl-C again: now");
        COUNT.store(0, Ordering::SeqCst);
        assert_eq!(policy(Signal::Term), Then::Wake);
        assert_eq!(policy(Signal::Term), Then::Exit(143));
        COUNT.store(0, Ordering::SeqCst);
    }
}
