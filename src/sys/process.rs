//! The process: the signals that end a room, keeping a secret out of dumps
//! and out of the environment, the descriptor limit, the login name.

use std::io;

use crate::error::Signal;

/// What the signal policy wants done once a termination signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Wake the loop, which says goodbye.
    Wake,
    /// Leave at once with this exit code.
    Exit(i32),
}

/// The policy the termination handler asks. It runs inside a signal
/// handler on Unix, so it may only touch atomics.
pub type Policy = fn(Signal) -> Then;

/// Unix: the read end of the pipe the SIGTERM/SIGHUP handler writes a byte
/// to (a handler may not take the lock a `mio::Waker` lives behind), for
/// the loop to watch. Windows has no such pipe: its handler runs on a
/// thread of its own and wakes the loop directly.
#[cfg(unix)]
pub struct SignalPipe(std::fs::File);

#[cfg(unix)]
impl SignalPipe {
    /// Another descriptor of the same pipe, for the next reactor.
    pub fn try_clone(&self) -> io::Result<SignalPipe> {
        Ok(SignalPipe(self.0.try_clone()?))
    }

    /// Registers the pipe with the loop's poll.
    pub fn register(&self, registry: &mio::Registry, token: mio::Token) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = self.0.as_raw_fd();
        registry.register(
            &mut mio::unix::SourceFd(&fd),
            token,
            mio::Interest::READABLE,
        )
    }

    /// Empties the pipe after a wake-up.
    pub fn drain(&self) {
        use std::io::Read;
        let mut buf = [0u8; 64];
        while matches!((&self.0).read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Windows: nothing to watch; the console handler wakes the loop itself.
#[cfg(windows)]
pub struct SignalPipe;

#[cfg(windows)]
impl SignalPipe {
    pub fn try_clone(&self) -> io::Result<SignalPipe> {
        Ok(SignalPipe)
    }
    pub fn register(&self, _registry: &mio::Registry, _token: mio::Token) -> io::Result<()> {
        Ok(())
    }
    pub fn drain(&self) {}
}

/// The policy and the waker-poke of the installed handlers.
static POLICY: std::sync::OnceLock<(Policy, fn())> = std::sync::OnceLock::new();

/// Installs the handler for the signals that are not Ctrl-C (which goes
/// through `ctrlc`): SIGTERM and SIGHUP on Unix; on Windows the console
/// closing, logoff and shutdown, which are SIGHUP's equivalent. `policy`
/// decides between a polite goodbye and an immediate exit; `wake` wakes
/// the loop (Windows only: on Unix the returned pipe does that).
/// Once per process.
pub fn install_term_and_hup(policy: Policy, wake: fn()) -> io::Result<SignalPipe> {
    if POLICY.set((policy, wake)).is_err() {
        return Err(io::Error::other(
            "the signal handlers are installed already",
        ));
    }
    imp::install()
}

#[cfg(unix)]
mod imp {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::sync::atomic::{AtomicI32, Ordering};

    use super::{SignalPipe, Then, POLICY};
    use crate::error::Signal;

    /// The write end of the signal pipe.
    static PIPE_WR: AtomicI32 = AtomicI32::new(-1);

    extern "C" fn on_term_or_hup(sig: libc::c_int) {
        let signal = if sig == libc::SIGHUP {
            Signal::Hup
        } else {
            Signal::Term
        };
        // OnceLock::get is a load and a check: no lock, no allocation.
        let Some((policy, _)) = POLICY.get() else {
            return;
        };
        match policy(signal) {
            // SAFETY: _exit is async-signal-safe.
            Then::Exit(code) => unsafe { libc::_exit(code) },
            Then::Wake => {
                let fd = PIPE_WR.load(Ordering::SeqCst);
                if fd >= 0 {
                    let byte = sig as u8;
                    // SAFETY: write(2) is async-signal-safe; the pipe is
                    // non-blocking, and a full pipe already holds a wake-up.
                    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
                }
            }
        }
    }

    pub fn install() -> io::Result<SignalPipe> {
        let (read, write) = nonblocking_pipe()?;
        PIPE_WR.store(write, Ordering::SeqCst);
        for sig in [libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: sigaction is plain data, for which zeroes are a value.
            let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
            sa.sa_sigaction = on_term_or_hup as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            // SAFETY: sigemptyset initialises the mask we own.
            unsafe { libc::sigemptyset(&mut sa.sa_mask) };
            // SAFETY: installs our handler, which only makes
            // async-signal-safe calls; the old action is not asked for.
            if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(SignalPipe(std::fs::File::from(read)))
    }

    /// A non-blocking, close-on-exec pipe: its read end, and the write
    /// end's number (kept for the life of the process).
    fn nonblocking_pipe() -> io::Result<(OwnedFd, RawFd)> {
        let mut fds: [RawFd; 2] = [-1, -1];
        // macOS has no pipe2: pipe, then the flags one by one (nothing
        // else runs yet, so no fork can inherit the fds in between).
        #[cfg(target_os = "macos")]
        {
            // SAFETY: pipe fills two fds or fails.
            if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
                return Err(io::Error::last_os_error());
            }
            for fd in fds {
                // SAFETY: fcntl on the fds just created.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                    let fl = libc::fcntl(fd, libc::F_GETFL);
                    libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
                }
            }
        }
        #[cfg(not(target_os = "macos"))]
        {
            // SAFETY: pipe2 fills two fds or fails.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: fds[0] was just created and nothing else owns it.
        let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
        Ok((read, fds[1]))
    }
}

#[cfg(windows)]
mod imp {
    use std::io;

    use windows_sys::core::BOOL;
    use windows_sys::Win32::System::Console::{
        SetConsoleCtrlHandler, CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT, CTRL_SHUTDOWN_EVENT,
    };

    use super::{SignalPipe, Then, POLICY};
    use crate::error::Signal;

    /// Windows ends the process when this returns for a close event, or
    /// about 5 s after it was sent: wait here while the loop says goodbye
    /// and exits.
    unsafe extern "system" fn on_close(event: u32) -> BOOL {
        if !matches!(
            event,
            CTRL_CLOSE_EVENT | CTRL_LOGOFF_EVENT | CTRL_SHUTDOWN_EVENT
        ) {
            // Ctrl-C and Ctrl-Break: the next handler (ctrlc's) takes them.
            return 0;
        }
        let Some((policy, wake)) = POLICY.get() else {
            return 0;
        };
        match policy(Signal::Hup) {
            Then::Exit(code) => std::process::exit(code),
            Then::Wake => {
                wake();
                std::thread::sleep(std::time::Duration::from_secs(10));
            }
        }
        1
    }

    pub fn install() -> io::Result<SignalPipe> {
        // SAFETY: registers a handler that lives for the whole program;
        // handlers registered later run first, so ours sees close events
        // before ctrlc's (installed earlier), which would swallow them.
        if unsafe { SetConsoleCtrlHandler(Some(on_close), 1) } == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SignalPipe)
    }
}

/// Asks the line editor's blocking read to return: rustyline handles
/// SIGINT during `readline` and restores the terminal (Unix). Windows has
/// no such signal to raise; the editor there is left to the exit.
pub fn interrupt_self() {
    #[cfg(unix)]
    // SAFETY: raising a signal in our own process.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGINT);
    }
}

/// While a secret is in memory: no core file, and no debugger or memory
/// reading by other processes of the same user, as far as the system
/// allows. Linux: no core, not dumpable (no ptrace, no /proc/PID/mem).
/// macOS: no core, `PT_DENY_ATTACH`. FreeBSD: no core, tracing disabled
/// with `procctl`. Windows: no error-reporting dialog or dump on a crash
/// (`SetErrorMode`); another process of the same user can still read our
/// memory there, which Windows gives no way to refuse.
pub fn protect_memory() {
    #[cfg(unix)]
    {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct given.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl on our own process with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: PT_DENY_ATTACH takes no address or data; it only marks us.
    unsafe {
        libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0);
    }
    #[cfg(target_os = "freebsd")]
    {
        let mut disable: libc::c_int = libc::PROC_TRACE_CTL_DISABLE;
        // SAFETY: procctl on our own pid reads one c_int.
        unsafe {
            libc::procctl(
                libc::P_PID,
                0,
                libc::PROC_TRACE_CTL,
                (&mut disable as *mut libc::c_int).cast(),
            )
        };
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::Diagnostics::Debug::{
            SetErrorMode, SEM_FAILCRITICALERRORS, SEM_NOGPFAULTERRORBOX,
        };
        // SAFETY: only sets this process's error mode.
        unsafe { SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX) };
    }
}

/// Removes `name` from the environment, and first overwrites its value
/// where other processes can read it: `/proc/PID/environ` on Linux, and
/// `ps -E` or `procstat -e` elsewhere, read the original environment
/// block, which `remove_var` alone leaves intact. Called while the program
/// is still single-threaded.
pub fn scrub_env(name: &str) {
    #[cfg(unix)]
    {
        #[cfg(not(target_os = "macos"))]
        extern "C" {
            static mut environ: *mut *mut libc::c_char;
        }
        // SAFETY: reads the pointer to the environment block.
        #[cfg(not(target_os = "macos"))]
        let block = unsafe { environ };
        // SAFETY: _NSGetEnviron returns a valid pointer to `environ`.
        #[cfg(target_os = "macos")]
        let block = unsafe { *libc::_NSGetEnviron() };
        let prefix = format!("{name}=");
        // SAFETY: single-threaded at this point; each entry is a
        // NUL-terminated string we only overwrite in place, within its
        // own length.
        unsafe {
            let mut p = block;
            while !p.is_null() && !(*p).is_null() {
                let entry = *p;
                let bytes = std::ffi::CStr::from_ptr(entry).to_bytes();
                if bytes.starts_with(prefix.as_bytes()) {
                    let value = entry.add(prefix.len());
                    std::ptr::write_bytes(value, 0, bytes.len() - prefix.len());
                }
                p = p.add(1);
            }
        }
    }
    std::env::remove_var(name);
}

/// A file created with `options` can be read and written by its owner
/// only (mode 0600 on Unix; Windows gives a new file the folder's access
/// list, which in a user's own folders is the user's).
pub fn owner_only(options: &mut std::fs::OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(windows)]
    let _ = options;
}

/// The permission bits of a file, where the system has them (Unix).
pub fn file_mode(path: &std::path::Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::metadata(path).ok()?.permissions().mode())
    }
    #[cfg(windows)]
    {
        let _ = path;
        None
    }
}

/// Lifts the soft descriptor limit toward `want`, as far as the hard
/// limit allows (and on macOS `OPEN_MAX`, above which setrlimit fails).
/// Windows has no such limit on sockets.
pub fn raise_fd_limit(want: u64) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return;
        }
        #[allow(clippy::useless_conversion)]
        let want = libc::rlim_t::try_from(want).unwrap_or(libc::rlim_t::MAX);
        // <sys/syslimits.h>: setrlimit refuses more than this.
        #[cfg(target_os = "macos")]
        const OPEN_MAX: libc::rlim_t = 10240;
        #[cfg(target_os = "macos")]
        let ceiling = lim.rlim_max.min(OPEN_MAX);
        #[cfg(not(target_os = "macos"))]
        let ceiling = lim.rlim_max;
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(ceiling);
            // SAFETY: setrlimit reads the struct given.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        }
    }
    #[cfg(windows)]
    let _ = want;
}

/// The login name the system has for us (the password database on Unix,
/// `USERNAME` on Windows), unsanitised.
pub fn login_name() -> Option<Vec<u8>> {
    #[cfg(unix)]
    // SAFETY: getpwuid returns a pointer into static storage or null; we
    // copy the name out at once, and only the main thread calls this.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(std::ffi::CStr::from_ptr((*pw).pw_name).to_bytes().to_vec())
    }
    #[cfg(windows)]
    {
        std::env::var_os("USERNAME").map(|v| v.as_encoded_bytes().to_vec())
    }
}

/// An `ErrorKind` that says the terminal went away (EIO on Unix).
pub fn is_hangup(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::EIO)
    }
    #[cfg(windows)]
    {
        e.kind() == io::ErrorKind::BrokenPipe
    }
}
