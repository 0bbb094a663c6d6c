//! Ctrl-C (and SIGTERM/SIGHUP): counted and turned into a wake-up of the
//! event loop. Installed before anything can block.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use crate::error::{exit, Error};

/// A cleanup to run before an immediate exit (restoring the terminal).
type Cleanup = Box<dyn Fn() + Send>;

/// Counts interrupts; the loop reads the count after each wake-up.
#[derive(Clone)]
pub struct Interrupts {
    count: Arc<AtomicUsize>,
    cleanup: Arc<Mutex<Option<Cleanup>>>,
    /// Set while we raise SIGINT ourselves to stop the line editor.
    muted: Arc<AtomicBool>,
}

impl Interrupts {
    /// Installs the handler. The first interrupt wakes the loop for a polite
    /// goodbye; the second exits at once with 130.
    pub fn install(waker: Arc<Waker>) -> Result<Interrupts, Error> {
        let me = Interrupts {
            count: Arc::new(AtomicUsize::new(0)),
            cleanup: Arc::new(Mutex::new(None)),
            muted: Arc::new(AtomicBool::new(false)),
        };
        let handler = me.clone();
        ctrlc::set_handler(move || {
            if handler.muted.load(Ordering::SeqCst) {
                return;
            }
            if handler.count.fetch_add(1, Ordering::SeqCst) >= 1 {
                handler.run_cleanup();
                std::process::exit(i32::from(exit::INTERRUPTED));
            }
            let _ = waker.wake();
        })
        .map_err(|e| Error::Local(format!("cannot install the Ctrl-C handler: {e}")))?;
        Ok(me)
    }

    /// Counts one interrupt that arrived another way (the line editor).
    pub fn raise(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// From now on interrupts are ignored: we are exiting, and raise SIGINT
    /// ourselves to stop the line editor.
    pub fn mute(&self) {
        self.muted.store(true, Ordering::SeqCst);
    }

    /// Sets what to undo before an immediate exit.
    pub fn on_exit(&self, f: Cleanup) {
        if let Ok(mut slot) = self.cleanup.lock() {
            *slot = Some(f);
        }
    }

    pub fn run_cleanup(&self) {
        if let Ok(slot) = self.cleanup.lock() {
            if let Some(f) = slot.as_ref() {
                f();
            }
        }
    }
}
