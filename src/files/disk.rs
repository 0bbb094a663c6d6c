//! The file system side of files in the room, std only: receiving a file
//! into a directory whole or not at all ([`Incoming`]), checking that a
//! directory can take files ([`check_dir`]), reading a file to send
//! ([`Outgoing`]), and one line for the user about what went wrong
//! ([`describe`]).
//!
//! What a peer sends never picks a path: the saved name is
//! [`safe_name`] of the offer, every entry we make is made with
//! `create_new` (which never follows or reuses an existing entry, a
//! symlink included), and the only rename replaces an empty file we have
//! just made ourselves.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

use super::name::{numbered, safe_name, MAX_NAME_BYTES};
use crate::error::describe_io;

/// How many numbered names (`x (1)` … `x (1000)`) [`Incoming::finish`]
/// tries after the plain one before it gives up.
const MAX_NUMBER: u32 = 1000;

/// How many random temporary names are tried before giving up: each is
/// fresh with near certainty, so a clash many times over means something
/// else is wrong.
const TEMP_ATTEMPTS: u32 = 100;

/// What a temporary name adds around the saved name:
/// `.` NAME `.p2pchat-` 8 hex digits `.part`.
const TEMP_PREFIX: &str = ".";
const TEMP_TAG: &str = ".p2pchat-";
const TEMP_SUFFIX: &str = ".part";
const TEMP_HEX: usize = 8;

/// A file being received into a directory.
///
/// The bytes go to a temporary file in the target directory itself, named
/// `.NAME.p2pchat-XXXXXXXX.part` (random hex), so the final rename never
/// crosses file systems. [`finish`](Incoming::finish) gives the file its
/// final name; [`abort`](Incoming::abort), an error in `finish`, or
/// dropping an unfinished `Incoming` removes the temporary file. The final
/// name is chosen only in `finish`: `NAME`, or `NAME (1)`, `NAME (2)` …
/// if that is taken, so an existing file is never overwritten.
///
/// Temporary names start with a dot and saved names never do, so the two
/// never collide.
#[derive(Debug)]
pub struct Incoming {
    /// The directory the file is saved in.
    dir: PathBuf,
    /// The safe name the file is saved under if it is free.
    name: String,
    /// The temporary file's path, in `dir`.
    temp: PathBuf,
    /// The temporary file, open for writing; `None` once finished or
    /// aborted.
    file: Option<File>,
    /// Bytes written so far.
    written: u64,
    /// Set when the temporary file is gone (renamed or removed), so that
    /// drop leaves the directory alone.
    done: bool,
}

impl Incoming {
    /// Starts receiving a file a peer offered as `offered` into `dir`: it
    /// creates a fresh temporary file there. Nothing outside `dir` is
    /// touched and no existing entry is opened.
    pub fn create(dir: &Path, offered: &[u8]) -> io::Result<Incoming> {
        let name = safe_name(offered);
        let rng = SystemRandom::new();
        for _ in 0..TEMP_ATTEMPTS {
            let temp = dir.join(temp_name(&name, &random_hex(&rng)?));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(file) => {
                    return Ok(Incoming {
                        dir: dir.to_path_buf(),
                        name,
                        temp,
                        file: Some(file),
                        written: 0,
                        done: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "no free temporary name for {:?} in {} after {TEMP_ATTEMPTS} tries",
                name,
                dir.display()
            ),
        ))
    }

    /// Appends all of `buf` to the file and returns its length. Writes
    /// are sequential: each one follows the last. After an error,
    /// [`written`](Incoming::written) still counts exactly the bytes that
    /// reached the file.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().ok_or_else(gone)?;
        let mut rest = buf;
        while !rest.is_empty() {
            match file.write(rest) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    self.written += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.len())
    }

    /// How many bytes have been written.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The name the file is saved under if no file of that name exists by
    /// [`finish`](Incoming::finish) ([`safe_name`] of the offer).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The directory the file is saved in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the bytes are written until [`finish`](Incoming::finish).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Makes the file durable and gives it its final name, which it
    /// returns as a path in the directory. The name is the offer's safe
    /// name, or the first free of `NAME (1)` … `NAME (1000)`: each is
    /// reserved by creating it empty with `create_new` (so an existing
    /// file, or a symlink planted there, is never overwritten or
    /// followed), and the temporary file is then renamed over that empty
    /// entry. On an error the temporary file is removed.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        let file = self.file.take().ok_or_else(gone)?;
        file.sync_all()?;
        drop(file);
        let reserved = self.reserve()?;
        if let Err(e) = fs::rename(&self.temp, &reserved) {
            let _ = fs::remove_file(&reserved);
            return Err(e);
        }
        self.done = true;
        // The new directory entry made durable too; a directory cannot be
        // opened or synced everywhere (Windows), so this is best effort.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(reserved)
    }

    /// Creates the first free final name, empty, and returns its path.
    fn reserve(&self) -> io::Result<PathBuf> {
        for n in 0..=MAX_NUMBER {
            let candidate = match n {
                0 => self.name.clone(),
                n => numbered(&self.name, n),
            };
            let path = self.dir.join(&candidate);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(path),
                // Taken; some systems say so in other words (a directory
                // of that name on Windows reads as access denied), so
                // anything there counts as taken.
                Err(_) if fs::symlink_metadata(&path).is_ok() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{:?} and {:?} … {:?} all exist in {}",
                self.name,
                numbered(&self.name, 1),
                numbered(&self.name, MAX_NUMBER),
                self.dir.display()
            ),
        ))
    }

    /// Stops receiving: the temporary file is closed and removed (best
    /// effort; nothing else in the directory is touched).
    pub fn abort(mut self) {
        self.remove_temp();
    }

    fn remove_temp(&mut self) {
        if !self.done {
            self.file = None;
            let _ = fs::remove_file(&self.temp);
            self.done = true;
        }
    }
}

impl Drop for Incoming {
    /// An unfinished file leaves nothing behind.
    fn drop(&mut self) {
        self.remove_temp();
    }
}

/// The error for a file used after it was finished or aborted, which the
/// methods that consume `self` make unreachable.
fn gone() -> io::Error {
    io::Error::other("the file was already finished or aborted")
}

/// `.NAME.p2pchat-HEX.part`, with NAME cut so that the whole stays within
/// [`MAX_NAME_BYTES`].
fn temp_name(name: &str, hex: &str) -> String {
    let room = MAX_NAME_BYTES - TEMP_PREFIX.len() - TEMP_TAG.len() - hex.len() - TEMP_SUFFIX.len();
    let mut end = room.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{TEMP_PREFIX}{}{TEMP_TAG}{hex}{TEMP_SUFFIX}", &name[..end])
}

/// [`TEMP_HEX`] random hex digits from the system's generator.
fn random_hex(rng: &SystemRandom) -> io::Result<String> {
    let mut bytes = [0u8; TEMP_HEX / 2];
    rng.fill(&mut bytes)
        .map_err(|_| io::Error::other("the system's random number generator failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks that files can be saved in `dir`: it exists, is a directory,
/// and a file can be created and removed there (a probe file made with
/// `create_new`). The error says which check failed and names `dir`.
pub fn check_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::metadata(dir).map_err(|e| {
        let words = match e.kind() {
            io::ErrorKind::NotFound => format!("no such directory: {}", dir.display()),
            _ => describe(&e, dir),
        };
        with_message(&e, words)
    })?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("not a directory: {}", dir.display()),
        ));
    }
    let rng = SystemRandom::new();
    for _ in 0..TEMP_ATTEMPTS {
        let probe = dir.join(format!(".p2pchat-probe-{}", random_hex(&rng)?));
        match OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(file) => {
                drop(file);
                return fs::remove_file(&probe).map_err(|e| {
                    with_message(
                        &e,
                        format!(
                            "cannot remove files in {}: {}",
                            dir.display(),
                            describe_io(&e)
                        ),
                    )
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                let words = format!(
                    "cannot save files in {}: {}",
                    dir.display(),
                    describe_io(&e)
                );
                return Err(with_message(&e, words));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free probe name in {}", dir.display()),
    ))
}

/// An error of `e`'s kind that reads as `words`.
fn with_message(e: &io::Error, words: String) -> io::Error {
    io::Error::new(e.kind(), words)
}

/// A file being sent: its length is fixed when it is opened, and reading
/// past a point where it has since become shorter is an error.
#[derive(Debug)]
pub struct Outgoing {
    file: File,
    path: PathBuf,
    name: String,
    len: u64,
    /// Where the next read starts without a seek.
    position: u64,
}

impl Outgoing {
    /// Opens `path` to send it. A directory or anything that is not a
    /// regular file (a FIFO, socket or device) is refused before it is
    /// opened, so it cannot block or stream forever.
    pub fn open(path: &Path) -> io::Result<Outgoing> {
        let meta = fs::metadata(path).map_err(|e| with_message(&e, describe(&e, path)))?;
        refuse_unless_file(&meta, path)?;
        let file = File::open(path).map_err(|e| with_message(&e, describe(&e, path)))?;
        // The path may have been replaced between the two calls.
        let meta = file.metadata()?;
        refuse_unless_file(&meta, path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "file".to_string());
        Ok(Outgoing {
            file,
            path: path.to_path_buf(),
            name,
            len: meta.len(),
            position: 0,
        })
    }

    /// The file's size when it was opened: what is offered and sent.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The base name to offer (the path's last part; invalid UTF-8 as
    /// U+FFFD).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The path the file was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads from `offset` into `buf`, never past [`len`](Outgoing::len):
    /// 0 means `offset` is at or past the end. A file that has become
    /// shorter than `len` since it was opened is an error (kind
    /// `UnexpectedEof`): "PATH changed while it was sent (it is shorter
    /// now)".
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if offset != self.position {
            self.file.seek(SeekFrom::Start(offset))?;
            self.position = offset;
        }
        let wanted =
            usize::try_from(self.len - offset).map_or(buf.len(), |left| left.min(buf.len()));
        loop {
            match self.file.read(&mut buf[..wanted]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} changed while it was sent (it is shorter now)",
                            self.path.display()
                        ),
                    ))
                }
                Ok(n) => {
                    self.position += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Where the file stands now is unknown: seek next time.
                    self.position = u64::MAX;
                    return Err(e);
                }
            }
        }
    }
}

/// Refuses what is not a regular file, saying what it is.
fn refuse_unless_file(meta: &fs::Metadata, path: &Path) -> io::Result<()> {
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("{} is a directory: only files can be sent", path.display()),
        ));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not a regular file (a FIFO, socket or device): only files can be sent",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// One line for the user about `e`, which happened on `path`: "no space
/// left on device while writing PATH", "permission denied: PATH", "not a
/// directory: PATH" … An error this module made already says everything
/// and is shown as it is.
pub fn describe(e: &io::Error, path: &Path) -> String {
    use io::ErrorKind::*;
    if e.get_ref().is_some() {
        return e.to_string();
    }
    let p = path.display();
    match e.kind() {
        StorageFull => format!("no space left on device while writing {p}"),
        QuotaExceeded => format!("disk quota exceeded while writing {p}"),
        FileTooLarge => format!("file too large for the file system: {p}"),
        PermissionDenied => format!("permission denied: {p}"),
        ReadOnlyFilesystem => format!("read-only file system: {p}"),
        NotFound => format!("no such file or directory: {p}"),
        NotADirectory => format!("not a directory: {p}"),
        IsADirectory => format!("is a directory: {p}"),
        AlreadyExists => format!("already exists: {p}"),
        InvalidFilename => format!("invalid file name: {p}"),
        _ => format!("{}: {p}", describe_io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temporary directory, removed
    /// (with everything in it) when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(what: &str) -> TempDir {
            static COUNT: AtomicU32 = AtomicU32::new(0);
            let n = COUNT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("p2pchat-files-{}-{n}-{what}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir(&path).expect("create the test directory");
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }

        /// The names in the directory, sorted.
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(&self.0)
                .expect("read the test directory")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn receive(dir: &Path, offered: &[u8], bytes: &[u8]) -> PathBuf {
        let mut file = Incoming::create(dir, offered).expect("create");
        assert_eq!(file.write(bytes).expect("write"), bytes.len());
        assert_eq!(file.written(), bytes.len() as u64);
        file.finish().expect("finish")
    }

    #[test]
    fn finish_renames_the_temporary_file() {
        let dir = TempDir::new("finish");
        let mut file = Incoming::create(dir.path(), b"../../report.pdf").expect("create");
        let temp = file.temp_path().to_path_buf();
        let temp_name = temp
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(temp_name.starts_with(".report.pdf.p2pchat-") && temp_name.ends_with(".part"));
        assert_eq!(
            temp.parent(),
            Some(dir.path()),
            "the temporary file is in the directory"
        );
        assert_eq!(file.name(), "report.pdf");
        file.write(b"hello ").expect("write");
        file.write(b"world").expect("write");
        assert_eq!(file.written(), 11);
        assert_eq!(
            dir.names(),
            vec![temp_name],
            "nothing but the temporary file yet"
        );
        let saved = file.finish().expect("finish");
        assert_eq!(saved, dir.path().join("report.pdf"));
        assert_eq!(fs::read(&saved).expect("read"), b"hello world");
        assert_eq!(
            dir.names(),
            vec!["report.pdf"],
            "the temporary file is gone"
        );
    }

    #[test]
    fn abort_and_drop_remove_the_temporary_file() {
        let dir = TempDir::new("abort");
        let mut file = Incoming::create(dir.path(), b"x").expect("create");
        file.write(b"partial").expect("write");
        assert_eq!(dir.names().len(), 1);
        file.abort();
        assert!(dir.names().is_empty(), "abort left {:?}", dir.names());
        {
            let mut file = Incoming::create(dir.path(), b"x").expect("create");
            file.write(b"partial").expect("write");
            assert_eq!(dir.names().len(), 1);
        }
        assert!(dir.names().is_empty(), "drop left {:?}", dir.names());
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = TempDir::new("existing");
        fs::write(dir.path().join("x.txt"), b"mine").expect("write");
        fs::write(dir.path().join("x (1).txt"), b"mine too").expect("write");
        fs::create_dir(dir.path().join("x (2).txt")).expect("mkdir");
        let saved = receive(dir.path(), b"x.txt", b"theirs");
        assert_eq!(saved, dir.path().join("x (3).txt"));
        assert_eq!(fs::read(dir.path().join("x.txt")).expect("read"), b"mine");
        assert_eq!(
            fs::read(dir.path().join("x (1).txt")).expect("read"),
            b"mine too"
        );
        assert_eq!(fs::read(&saved).expect("read"), b"theirs");
        // Two transfers of one name, finished in either order.
        let a = Incoming::create(dir.path(), b"same.tar.gz").expect("create");
        let b = Incoming::create(dir.path(), b"same.tar.gz").expect("create");
        assert_ne!(a.temp_path(), b.temp_path());
        assert_eq!(b.finish().expect("finish"), dir.path().join("same.tar.gz"));
        assert_eq!(
            a.finish().expect("finish"),
            dir.path().join("same (1).tar.gz")
        );
    }

    #[test]
    fn it_gives_up_after_a_thousand_numbers() {
        let dir = TempDir::new("thousand");
        fs::write(dir.path().join("n"), b"").expect("write");
        for n in 1..=MAX_NUMBER {
            fs::write(dir.path().join(numbered("n", n)), b"").expect("write");
        }
        let mut file = Incoming::create(dir.path(), b"n").expect("create");
        file.write(b"x").expect("write");
        let e = file.finish().expect_err("every name is taken");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(e.to_string().contains("\"n (1000)\" all exist in"), "{e}");
        assert_eq!(dir.names().len(), 1001, "the temporary file is removed");
        assert_eq!(describe(&e, dir.path()), e.to_string());
    }

    #[test]
    fn hidden_and_temporary_names_never_collide() {
        let dir = TempDir::new("hidden");
        let a = Incoming::create(dir.path(), b".bashrc").expect("create");
        assert_eq!(a.name(), "_.bashrc");
        // A peer offering the other transfer's temporary name gets a
        // name of its own, never that file.
        let a_temp = a
            .temp_path()
            .file_name()
            .expect("name")
            .as_encoded_bytes()
            .to_vec();
        let mut b = Incoming::create(dir.path(), &a_temp).expect("create");
        assert!(!b.name().starts_with('.'));
        b.write(b"b").expect("write");
        let b_saved = b.finish().expect("finish");
        assert_ne!(b_saved.as_path(), a.temp_path());
        assert!(
            a.temp_path().exists(),
            "the other transfer's file is untouched"
        );
        assert_eq!(a.finish().expect("finish"), dir.path().join("_.bashrc"));
        // The longest name still gives a temporary name the system takes.
        let long = "é".repeat(200);
        let c = Incoming::create(dir.path(), long.as_bytes()).expect("a long name");
        let c_temp = c.temp_path().file_name().expect("name").len();
        assert!(c_temp <= MAX_NAME_BYTES, "{c_temp}");
        assert!(c
            .finish()
            .expect("finish")
            .ends_with(safe_name(long.as_bytes())));
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_is_neither_followed_nor_replaced() {
        let dir = TempDir::new("symlink");
        let outside = TempDir::new("outside");
        let target = outside.path().join("target");
        fs::write(&target, b"precious").expect("write");
        let link = dir.path().join("report.pdf");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        // A dangling link too: following it would create a file outside.
        let dangling = outside.path().join("created");
        std::os::unix::fs::symlink(&dangling, dir.path().join("report (1).pdf")).expect("symlink");
        let saved = receive(dir.path(), b"report.pdf", b"hostile");
        assert_eq!(saved, dir.path().join("report (2).pdf"));
        assert_eq!(fs::read(&saved).expect("read"), b"hostile");
        assert_eq!(fs::read(&target).expect("read"), b"precious");
        assert!(!dangling.exists(), "the dangling link was followed");
        for name in ["report.pdf", "report (1).pdf"] {
            let meta = fs::symlink_metadata(dir.path().join(name)).expect("stat");
            assert!(meta.file_type().is_symlink(), "{name} was replaced");
        }
        assert_eq!(fs::read_link(&link).expect("readlink"), target);
    }

    #[test]
    fn check_dir_says_what_is_wrong() {
        let dir = TempDir::new("check");
        check_dir(dir.path()).expect("a writable directory");
        assert!(dir.names().is_empty(), "the probe is removed");
        let missing = dir.path().join("missing");
        let e = check_dir(&missing).expect_err("missing");
        assert_eq!(
            e.to_string(),
            format!("no such directory: {}", missing.display())
        );
        let file = dir.path().join("file");
        fs::write(&file, b"").expect("write");
        let e = check_dir(&file).expect_err("a file");
        assert_eq!(
            e.to_string(),
            format!("not a directory: {}", file.display())
        );
        assert_eq!(describe(&e, &file), e.to_string());
    }

    #[cfg(unix)]
    #[test]
    fn check_dir_refuses_a_read_only_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("readonly");
        let locked = dir.path().join("locked");
        fs::create_dir(&locked).expect("mkdir");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).expect("chmod");
        // As root, permissions are not enforced: then there is nothing to
        // refuse, and only that assertion is skipped.
        let enforced = File::create(locked.join("as-root")).is_err();
        let result = check_dir(&locked);
        let incoming = Incoming::create(&locked, b"x");
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod");
        if enforced {
            let e = result.expect_err("read-only");
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
            assert_eq!(
                e.to_string(),
                format!(
                    "cannot save files in {}: permission denied",
                    locked.display()
                )
            );
            let e = incoming.expect_err("read-only");
            assert_eq!(
                describe(&e, &locked),
                format!("permission denied: {}", locked.display())
            );
        } else {
            eprintln!("permissions are not enforced (root?): read-only check skipped");
        }
    }

    #[test]
    fn outgoing_reads_a_file_at_any_offset() {
        let dir = TempDir::new("outgoing");
        let path = dir.path().join("data.bin");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &data).expect("write");
        let mut out = Outgoing::open(&path).expect("open");
        assert_eq!(out.len(), 10_000);
        assert!(!out.is_empty());
        assert_eq!(out.name(), "data.bin");
        let mut buf = [0u8; 4096];
        let n = out.read_at(9_000, &mut buf).expect("read");
        assert_eq!(&buf[..n], &data[9_000..9_000 + n]);
        let mut all = Vec::new();
        while let n @ 1.. = out.read_at(all.len() as u64, &mut buf).expect("read") {
            all.extend_from_slice(&buf[..n]);
        }
        assert_eq!(all, data);
        assert_eq!(out.read_at(20_000, &mut buf).expect("past the end"), 0);
        // A file that grows is sent at the size it was offered at.
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"more"))
            .expect("append");
        let n = out.read_at(9_998, &mut buf).expect("read");
        assert_eq!(n, 2);
    }

    #[test]
    fn a_file_that_shrank_is_an_error() {
        let dir = TempDir::new("shrunk");
        let path = dir.path().join("log");
        fs::write(&path, vec![7u8; 1000]).expect("write");
        let mut out = Outgoing::open(&path).expect("open");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(500))
            .expect("truncate");
        let mut buf = [0u8; 300];
        let mut offset = 0u64;
        let e = loop {
            match out.read_at(offset, &mut buf) {
                Ok(0) => panic!("the end came early without an error"),
                Ok(n) => offset += n as u64,
                Err(e) => break e,
            }
        };
        assert_eq!(offset, 500);
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            e.to_string(),
            format!(
                "{} changed while it was sent (it is shorter now)",
                path.display()
            )
        );
    }

    #[test]
    fn outgoing_refuses_a_directory_and_a_missing_file() {
        let dir = TempDir::new("refuse");
        let e = Outgoing::open(dir.path()).expect_err("a directory");
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a directory: only files can be sent",
                dir.path().display()
            )
        );
        let missing = dir.path().join("missing");
        let e = Outgoing::open(&missing).expect_err("missing");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            format!("no such file or directory: {}", missing.display())
        );
    }

    #[cfg(unix)]
    #[test]
    fn outgoing_refuses_a_fifo_without_hanging() {
        let dir = TempDir::new("fifo");
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(status.success());
        // Opening a FIFO for reading blocks until a writer comes: if the
        // check failed, the thread would hang and the deadline tells.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Outgoing::open(&path).map(|_| ()).map_err(|e| e.to_string()));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("Outgoing::open hung on a FIFO");
        assert_eq!(
            result,
            Err(format!(
                "{} is not a regular file (a FIFO, socket or device): only files can be sent",
                fifo.display()
            ))
        );
        let e = Outgoing::open(Path::new("/dev/null")).expect_err("a device");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_reads_as_one_line() {
        // /dev/full fails every write with ENOSPC.
        let e = OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .and_then(|mut f| f.write_all(b"x"))
            .expect_err("/dev/full is full");
        assert_eq!(
            describe(&e, Path::new("/save/x")),
            "no space left on device while writing /save/x"
        );
    }

    #[test]
    fn describe_names_the_path() {
        let p = Path::new("/save/x");
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(describe(&e, p), "permission denied: /save/x");
        let e = io::Error::from(io::ErrorKind::NotADirectory);
        assert_eq!(describe(&e, p), "not a directory: /save/x");
        let e = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(describe(&e, p), "connection reset by peer: /save/x");
    }
}
