//! The terminal: its modes, its width, the controlling terminal to prompt
//! on, and the local clock the transcript shows. Unix speaks termios and
//! ioctl; Windows its console API.

use std::fs::File;
use std::io;

/// The controlling terminal, opened for reading and writing apart from
/// stdin and stdout (which may carry data): `/dev/tty` on Unix, the
/// console (`CONIN$`, `CONOUT$`) on Windows.
pub struct Tty {
    pub input: File,
    pub output: File,
}

impl Tty {
    pub fn open() -> io::Result<Tty> {
        #[cfg(unix)]
        {
            let tty = File::options().read(true).write(true).open("/dev/tty")?;
            Ok(Tty {
                output: tty.try_clone()?,
                input: tty,
            })
        }
        #[cfg(windows)]
        {
            let input = File::options().read(true).write(true).open("CONIN$")?;
            let output = File::options().read(true).write(true).open("CONOUT$")?;
            Ok(Tty { input, output })
        }
    }

    /// Keys one at a time, not echoed, and Ctrl-C read as a key (not a
    /// signal), until the guard is dropped; None if this is no terminal.
    pub fn quiet_keys(&self) -> Option<ModeGuard<'_>> {
        let saved = Mode::get(&self.input)?;
        saved.quiet().set(&self.input, true);
        Some(ModeGuard {
            file: &self.input,
            saved,
        })
    }
}

/// Puts the terminal mode back when dropped.
pub struct ModeGuard<'a> {
    file: &'a File,
    saved: Mode,
}

impl Drop for ModeGuard<'_> {
    fn drop(&mut self) {
        self.saved.set(self.file, true);
    }
}

/// A terminal's mode (termios; the console mode on Windows), to put back
/// as the user had it.
#[derive(Clone, Copy)]
pub struct Mode {
    #[cfg(unix)]
    termios: libc::termios,
    #[cfg(windows)]
    console: u32,
}

impl Mode {
    /// The mode of standard input, if it is a terminal.
    pub fn of_stdin() -> Option<Mode> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let stdin = io::stdin();
            let fd = stdin.as_fd().try_clone_to_owned().ok()?;
            Mode::get(&File::from(fd))
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsHandle;
            let stdin = io::stdin();
            let handle = stdin.as_handle().try_clone_to_owned().ok()?;
            Mode::get(&File::from(handle))
        }
    }

    /// Puts standard input back in this mode.
    pub fn restore_stdin(&self) {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            if let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() {
                self.set(&File::from(fd), false);
            }
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsHandle;
            if let Ok(h) = io::stdin().as_handle().try_clone_to_owned() {
                self.set(&File::from(h), false);
            }
        }
    }

    fn get(file: &File) -> Option<Mode> {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: termios is plain data, for which zeroes are a value.
            let mut termios: libc::termios = unsafe { std::mem::zeroed() };
            // SAFETY: tcgetattr fills the struct or fails.
            (unsafe { libc::tcgetattr(file.as_raw_fd(), &mut termios) } == 0)
                .then_some(Mode { termios })
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsRawHandle;
            use windows_sys::Win32::System::Console::GetConsoleMode;
            let mut console = 0u32;
            // SAFETY: GetConsoleMode writes one u32; it fails on a
            // handle that is not a console.
            (unsafe { GetConsoleMode(file.as_raw_handle(), &mut console) } != 0)
                .then_some(Mode { console })
        }
    }

    /// Sets the mode; `flush` first discards keys typed but not read
    /// (so none typed under the old mode is read under the new one).
    fn set(&self, file: &File, flush: bool) {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let when = if flush {
                libc::TCSAFLUSH
            } else {
                libc::TCSANOW
            };
            // SAFETY: the termios came from tcgetattr on a terminal.
            unsafe { libc::tcsetattr(file.as_raw_fd(), when, &self.termios) };
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsRawHandle;
            use windows_sys::Win32::System::Console::SetConsoleMode;
            let _ = flush;
            // SAFETY: sets the mode of a console handle we hold.
            unsafe { SetConsoleMode(file.as_raw_handle(), self.console) };
        }
    }

    /// This mode without echo, line editing or signal keys.
    fn quiet(&self) -> Mode {
        let mut quiet = *self;
        #[cfg(unix)]
        {
            quiet.termios.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG);
            quiet.termios.c_cc[libc::VMIN] = 1;
            quiet.termios.c_cc[libc::VTIME] = 0;
        }
        #[cfg(windows)]
        {
            use windows_sys::Win32::System::Console::{
                ENABLE_ECHO_INPUT, ENABLE_LINE_INPUT, ENABLE_PROCESSED_INPUT,
            };
            quiet.console &= !(ENABLE_ECHO_INPUT | ENABLE_LINE_INPUT | ENABLE_PROCESSED_INPUT);
        }
        quiet
    }
}

/// Returns true if and only if standard input is a terminal that hung up
/// (its window closed): Unix then fails every request on it with EIO.
/// Windows tells of a closed console through its handler instead.
pub fn stdin_hung_up() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: termios is plain data, for which zeroes are a value.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr fills the struct or fails.
        let failed = unsafe { libc::tcgetattr(0, &mut t) } != 0;
        failed && io::Error::last_os_error().raw_os_error() == Some(libc::EIO)
    }
    #[cfg(windows)]
    {
        false
    }
}

/// The width of the terminal on standard output, in columns, if it says.
pub fn columns() -> Option<usize> {
    #[cfg(unix)]
    {
        // SAFETY: winsize is plain data, for which zeroes are a value.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills a winsize struct or fails.
        let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
        (ok && ws.ws_col > 0).then_some(usize::from(ws.ws_col))
    }
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::System::Console::{
            GetConsoleScreenBufferInfo, CONSOLE_SCREEN_BUFFER_INFO,
        };
        // SAFETY: the info struct is plain data, for which zeroes are a value.
        let mut info: CONSOLE_SCREEN_BUFFER_INFO = unsafe { std::mem::zeroed() };
        let out = io::stdout();
        // SAFETY: fills the struct for a console handle, or fails.
        let ok = unsafe { GetConsoleScreenBufferInfo(out.as_raw_handle(), &mut info) } != 0;
        let width = i32::from(info.srWindow.Right) - i32::from(info.srWindow.Left) + 1;
        (ok && width > 0)
            .then(|| usize::try_from(width).ok())
            .flatten()
    }
}

/// Whether a terminal may leave TERM unset: the Windows console does;
/// on Unix an unset TERM means a terminal of unknown (so dumb) kind.
pub const TERM_OPTIONAL: bool = cfg!(windows);

/// Lets the console on standard output and standard error act on ANSI
/// escape sequences (Windows 10 and later); a terminal on Unix always does.
pub fn enable_escapes() {
    #[cfg(windows)]
    {
        use std::os::windows::io::AsRawHandle;
        use windows_sys::Win32::System::Console::{
            GetConsoleMode, SetConsoleMode, ENABLE_VIRTUAL_TERMINAL_PROCESSING,
        };
        for handle in [io::stdout().as_raw_handle(), io::stderr().as_raw_handle()] {
            let mut mode = 0u32;
            // SAFETY: reads and sets the mode of a console handle of ours;
            // both calls fail harmlessly on a handle that is no console.
            unsafe {
                if GetConsoleMode(handle, &mut mode) != 0 {
                    SetConsoleMode(handle, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING);
                }
            }
        }
    }
}

/// The local time of day as hours and minutes.
pub fn local_time() -> Option<(u8, u8)> {
    #[cfg(unix)]
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let now = libc::time_t::try_from(now.as_secs()).ok()?;
        // SAFETY: tm is plain data, for which zeroes are a value.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: localtime_r fills the struct from a valid time_t.
        if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
            return None;
        }
        Some((
            u8::try_from(tm.tm_hour).ok()?,
            u8::try_from(tm.tm_min).ok()?,
        ))
    }
    #[cfg(windows)]
    {
        use windows_sys::Win32::System::SystemInformation::GetLocalTime;
        // SAFETY: SYSTEMTIME is plain data; GetLocalTime fills it.
        let t = unsafe {
            let mut t = std::mem::zeroed();
            GetLocalTime(&mut t);
            t
        };
        Some((u8::try_from(t.wHour).ok()?, u8::try_from(t.wMinute).ok()?))
    }
}
