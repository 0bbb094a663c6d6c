//! Files in the room, from scripts (issue 22): `dial ... --send FILE...`
//! against `listen ... --receive DIR`, with the chat stream carrying its
//! own bytes at the same time. Files arrive whole or not at all, under a
//! name that can never hurt, never over an existing file or through a
//! planted link; a full disk fails that file and not the room, and a
//! stalled one holds back neither the chat nor the other files; a
//! half-sent file survives cut connections; the exit status says whether
//! every file arrived.

use std::path::{Path, PathBuf};

use crate::resume::HoldProxy;
use crate::util::*;

/// `p2pchat dial 127.0.0.1 PORT [flags] --send FILES...` (`--send` last:
/// it takes several values).
fn send(port: u16, flags: &[&str], files: &[&Path], input: In) -> Proc {
    let port = port.to_string();
    let mut args = vec!["dial", "127.0.0.1", &port];
    args.extend(flags);
    args.push("--send");
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(files.iter().map(String::as_str));
    Proc::p2p(&args, input)
}

fn receive(dir: &Path, flags: &[&str], input: In) -> (Proc, u16) {
    let dir = dir.display().to_string();
    let mut all = vec!["--receive", dir.as_str()];
    all.extend(flags);
    listen(&all, "127.0.0.1", input)
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn no_part_files(dir: &Path) {
    let left: Vec<String> = names_in(dir)
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

/// Asserts each of `files` arrived in `dir` under its own name, byte-exact.
fn assert_arrived(dir: &Path, files: &[PathBuf], what: &str) {
    for f in files {
        let name = f.file_name().expect("a name");
        let got = std::fs::read(dir.join(name)).expect("saved");
        assert_same_bytes(&got, &std::fs::read(f).expect("source"), what);
    }
}

#[test]
fn files_and_the_chat_stream_cross_together_byte_exact() {
    let src = TempDir::new("files-src");
    let out = TempDir::new("files-out");
    let big = random_bytes(24 << 20, 221);
    let files = [
        src.file("big.bin", &big),
        src.file("empty", b""),
        src.file("notes.txt", b"a few words\n"),
    ];
    let (a, b) = (random_bytes(3 << 20, 222), random_bytes(2 << 20, 223));
    let (mut l, port) = receive(&out.0, &[], In::Pipe);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut d = send(port, &[], &refs, In::Pipe);
    d.write(&a);
    l.write(&b);
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &a, "dialer's stream 0");
    assert_same_bytes(&d.stdout(), &b, "listener's stream 0");
    assert_eq!(names_in(&out.0), ["big.bin", "empty", "notes.txt"]);
    assert_arrived(&out.0, &files, "a file");
    let (le, de) = (l.stderr(), d.stderr());
    assert_eq!(le.matches("SHA-256 verified) in").count(), 3, "{le}");
    assert_eq!(
        de.matches("SHA-256 verified by the peer").count(),
        3,
        "{de}"
    );
    assert!(le.contains("receiving #1 \"big.bin\" (24.0 MiB)"), "{le}");
}

/// Built at test time: a `read(2)` and `write(2)` that, the first time
/// they touch a file whose path holds `$STALL_MATCH`, mark `started` in
/// `$STALL_DIR`, take 3 s, then mark `done`: a disk that stalls once.
const STALL_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static int stalled;
static void mark(const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", getenv("STALL_DIR"), name);
    close(open(path, O_CREAT | O_WRONLY, 0600));
}
static void maybe_stall(int fd) {
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0) return;
    path[len] = 0;
    if (strstr(path, getenv("STALL_MATCH")) && !__atomic_exchange_n(&stalled, 1, __ATOMIC_SEQ_CST)) {
        mark("started");
        struct timespec t = {3, 0};
        nanosleep(&t, NULL);
        mark("done");
    }
}
ssize_t write(int fd, const void *buf, size_t n) {
    static ssize_t (*real)(int, const void *, size_t);
    if (!real) real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    maybe_stall(fd);
    return real(fd, buf, n);
}
ssize_t read(int fd, void *buf, size_t n) {
    static ssize_t (*real)(int, void *, size_t);
    if (!real) real = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    maybe_stall(fd);
    return real(fd, buf, n);
}
"#;

/// A disk that stalls holds back its own file only: a chat line typed
/// while the receiver's disk takes 3 s for a write, or the sender's for a
/// read, arrives before that write or read ends (an order, not a time: it
/// failed when files were read and written on the loop's thread).
#[test]
fn a_stalled_disk_never_holds_the_chat() {
    if !have("cc") {
        return;
    }
    let work = TempDir::new("stall-shim");
    let shim_c = work.file("shim.c", STALL_SHIM.as_bytes());
    let shim = work.0.join("shim.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(&shim_c)
        .arg("-ldl")
        .status()
        .expect("cc runs");
    assert!(built.success(), "the shim builds");
    let shim = shim.display().to_string();
    for stalls in ["receiver", "sender"] {
        let marks = TempDir::new("stall-marks");
        let out = TempDir::new("stall-out");
        let src = TempDir::new("stall-src");
        let file = src.file("stalls.bin", &random_bytes(3 << 20, 251));
        let (dir, marks_dir) = (out.0.display().to_string(), marks.0.display().to_string());
        let stall = |what| {
            [
                ("LD_PRELOAD", shim.as_str()),
                ("STALL_DIR", marks_dir.as_str()),
                ("STALL_MATCH", what),
            ]
        };
        let (l_env, d_env) = if stalls == "receiver" {
            (stall(".part").to_vec(), Vec::new())
        } else {
            (Vec::new(), stall("stalls.bin").to_vec())
        };
        let (mut l, port) = listen_env(&["--receive", &dir], "127.0.0.1", In::Pipe, &l_env);
        let port = port.to_string();
        let path = file.display().to_string();
        let args = ["dial", "127.0.0.1", &port, "--send", &path];
        let mut d = Proc::p2p_env(&args, In::Pipe, &d_env);
        wait_until(&format!("the {stalls}'s disk to stall"), DEADLINE, || {
            marks.0.join("started").exists()
        });
        d.write(b"still here\n");
        l.wait_stdout(b"still here\n".len());
        assert!(
            !marks.0.join("done").exists(),
            "the chat line waited for the {stalls}'s stalled disk"
        );
        d.close_stdin();
        l.close_stdin();
        assert_both_ok(&mut l, &mut d);
        assert_eq!(l.stdout(), b"still here\n");
        assert_arrived(&out.0, &[file], "a file moved through a stall");
    }
}

/// More files than are read at once (four): the rest wait their turn and
/// all arrive whole. The heartbeat is set 5 minutes apart, so a file left
/// waiting with nothing to wake the loop for it fails the test's deadline.
#[test]
fn many_files_at_once_take_turns_and_all_arrive() {
    let src = TempDir::new("many-src");
    let out = TempDir::new("many-out");
    let files: Vec<PathBuf> = (0..9u8)
        .map(|i| {
            let size = match i % 3 {
                0 => (3 << 20) + usize::from(i) * 4099,
                1 => 700_001,
                _ => usize::from(i),
            };
            src.file(
                &format!("f{i}.bin"),
                &random_bytes(size, 240 + u64::from(i)),
            )
        })
        .collect();
    let quiet = ["--idle-timeout", "900"];
    let (mut l, port) = receive(&out.0, &quiet, In::Null);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut d = send(port, &quiet, &refs, In::Null);
    assert_both_ok(&mut l, &mut d);
    assert_arrived(&out.0, &files, "one of many");
    no_part_files(&out.0);
}

/// The pacing that leaves room in TCP's window for the chat (on links of
/// 5 ms and more) works on loopback too when told to: every chunk is cut
/// to the room the socket reports, and a file held for room is looked at
/// again, never left waiting. The heartbeat, which wakes the loop too, is
/// set far apart (every 5 minutes), so that only the pacing's own look
/// again keeps a held file moving within the test's deadline.
#[test]
fn files_paced_to_tcps_window_still_arrive_whole() {
    let pace = [("P2PCHAT_PACE_MIN_RTT_US", "0")];
    let src = TempDir::new("paced-src");
    let out = TempDir::new("paced-out");
    let files = [
        src.file("one.bin", &random_bytes(16 << 20, 231)),
        src.file("two.bin", &random_bytes(1 << 20, 232)),
    ];
    let chat = random_bytes(1 << 20, 233);
    let dir = out.0.display().to_string();
    let quiet = ["--idle-timeout", "900"];
    let (mut l, port) = listen_env(
        &["--receive", &dir, quiet[0], quiet[1]],
        "127.0.0.1",
        In::Pipe,
        &pace,
    );
    let port = port.to_string();
    let mut args = vec!["dial", "127.0.0.1", &port, quiet[0], quiet[1], "--send"];
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let mut d = Proc::p2p_env(&args, In::Pipe, &pace);
    d.write(&chat);
    d.close_stdin();
    l.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &chat, "stream 0 beside the files");
    assert_arrived(&out.0, &files, "a paced file");
    no_part_files(&out.0);
}

#[test]
fn a_taken_name_or_a_planted_link_is_never_overwritten_or_followed() {
    let src = TempDir::new("files-names-src");
    let out = TempDir::new("files-names-out");
    let outside = TempDir::new("files-names-outside");
    std::fs::write(out.0.join("report.pdf"), b"mine").expect("existing");
    // A link named like the next free name, pointing out of the directory.
    let target = outside.0.join("stolen");
    std::os::unix::fs::symlink(&target, out.0.join("report (1).pdf")).expect("symlink");
    // A name with a newline, a bidi override and a Windows device name.
    let evil = src.file("a\nb\u{202e}fdp.exe", b"evil");
    let report = src.file("report.pdf", b"the report");
    let con = src.file("CON.txt", b"console");
    let (mut l, port) = receive(&out.0, &[], In::Null);
    let mut d = send(port, &[], &[&report, &evil, &con], In::Null);
    assert_both_ok(&mut l, &mut d);
    assert_eq!(std::fs::read(out.0.join("report.pdf")).unwrap(), b"mine");
    assert!(!target.exists(), "the link was followed");
    assert!(
        out.0.join("report (1).pdf").is_symlink(),
        "the link was replaced"
    );
    assert_eq!(
        std::fs::read(out.0.join("report (2).pdf")).unwrap(),
        b"the report"
    );
    let names = names_in(&out.0);
    assert_eq!(names.len(), 5, "{names:?}");
    for n in &names {
        assert!(
            !n.chars()
                .any(|c| c.is_control() || c == '\u{202e}' || c == '/'),
            "{n:?}"
        );
        assert!(!n.eq_ignore_ascii_case("con.txt"), "{n:?}");
    }
    // What the screen showed has no raw control or bidi character either.
    let shown = l.stderr();
    assert!(!shown.contains('\u{202e}'), "{shown}");
    // The name as offered is shown safely, with the name it is saved under.
    assert!(
        shown.contains("receiving #2 \"a<U+000A>b<U+202E>fdp.exe\" (4 B)")
            && shown.contains("as \"a_bfdp.exe\""),
        "{shown}"
    );
    assert!(
        shown.contains("\"CON.txt\" (7 B)") && shown.contains("as \"_CON.txt\""),
        "{shown}"
    );
}

#[test]
fn a_pipe_without_receive_turns_offers_down_and_the_sender_exits_1() {
    let src = TempDir::new("files-nobody");
    let f = src.file("x.bin", &random_bytes(1000, 5));
    let (mut l, port) = listen(&[], "127.0.0.1", In::Null);
    let mut d = send(port, &[], &[&f], In::Null);
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert_eq!(l.code(), 0, "{}", l.stderr());
    let (le, de) = (l.stderr(), d.stderr());
    assert!(le.contains("run with --receive DIR to take files"), "{le}");
    assert!(de.contains("the peer turned down #1 \"x.bin\""), "{de}");
    assert!(
        de.contains("1 of the 1 file we offered did not arrive"),
        "{de}"
    );
}

#[test]
fn files_need_the_encrypted_room_and_bad_paths_are_usage_errors() {
    let src = TempDir::new("files-usage");
    let f = src.file("f", b"x");
    let port = free_port();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--plain".into(), "--send".into(), f.display().to_string()],
            "need the encrypted room",
        ),
        (
            vec!["--send".into(), src.0.join("missing").display().to_string()],
            "missing",
        ),
        (
            vec!["--send".into(), src.0.display().to_string()],
            "directory",
        ),
        (
            vec![
                "--receive".into(),
                src.0.join("nodir").display().to_string(),
            ],
            "nodir",
        ),
    ];
    for (flags, says) in cases {
        let port = port.to_string();
        let mut args = vec!["dial", "127.0.0.1", &port];
        args.extend(flags.iter().map(String::as_str));
        let mut p = Proc::p2p(&args, In::Null);
        assert_eq!(p.code(), 2, "{flags:?}: {}", p.stderr());
        let err = p.stderr();
        assert!(err.contains(says), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

/// A receiver whose directory is a 2 MiB file system of its own (a mount
/// namespace, so nothing of the machine's is touched).
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_fails_that_file_clearly_and_the_room_goes_on() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !have("unshare") {
        eprintln!(
            "SKIPPED: a full disk needs root and unshare for a tmpfs of its own (CI has them)"
        );
        return;
    }
    let src = TempDir::new("files-full-src");
    let small_dir = TempDir::new("files-full-out");
    let big = src.file("big.bin", &random_bytes(6 << 20, 9));
    let small = src.file("small.txt", b"fits\n");
    let script = format!(
        "mount -t tmpfs -o size=2m p2pchat-test {dir} && exec {BIN} listen 0 --bind 127.0.0.1 --receive {dir}",
        dir = small_dir.0.display()
    );
    let mut l = Proc::spawn("unshare", &["--mount", "sh", "-c", &script], In::Null, &[]);
    let port = wait_port(&l);
    let mut d = send(port, &[], &[&big, &small], In::Null);
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert_eq!(l.code(), 1, "{}", l.stderr());
    let (le, de) = (l.stderr(), d.stderr());
    assert!(
        le.contains("#1 \"big.bin\" failed: no space left on device"),
        "{le}"
    );
    assert!(
        de.contains("#1 \"big.bin\" failed on the peer's side: no space left on device"),
        "{de}"
    );
    assert!(
        le.contains("saved #2 \"small.txt\""),
        "the room went on: {le}"
    );
    assert!(de.contains("sent #2 \"small.txt\""), "{de}");
    assert!(
        le.contains("1 of the 2 files the peer offered did not arrive whole"),
        "{le}"
    );
}

/// Through a slow proxy that cuts the connection three times while a file
/// moves: each time the receiver says where it stopped and the sender
/// reads the file again from there. The file arrives whole, once.
#[test]
fn a_half_sent_file_survives_cuts_and_arrives_whole() {
    let src = TempDir::new("files-resume-src");
    let out = TempDir::new("files-resume-out");
    let data = random_bytes(12 << 20, 77);
    let f = src.file("movie.mkv", &data);
    let (mut l, port) = receive(&out.0, &[], In::Null);
    // 8 MiB/s: the cuts fall well inside the transfer.
    let proxy = HoldProxy::paced(port, Some(8 << 20));
    let mut d = send(proxy.port, &[], &[&f], In::Null);
    let part_len = || {
        std::fs::read_dir(&out.0)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    };
    for k in 1..=3u64 {
        wait_until("a quarter more of the file", DEADLINE, || {
            part_len() >= k * data.len() as u64 / 4
        });
        proxy.cut_noticed([&l, &d], k as usize);
    }
    assert_both_ok(&mut l, &mut d);
    let got = std::fs::read(out.0.join("movie.mkv")).expect("saved");
    assert_same_bytes(&got, &data, "the file across three cuts");
    no_part_files(&out.0);
    for p in [&l, &d] {
        assert_eq!(
            p.stderr().matches("reconnected after").count(),
            3,
            "{}",
            p.stderr()
        );
    }
}

#[test]
fn a_cancelled_or_failed_transfer_leaves_no_temporary_file() {
    // The sender's file shrinks under it: the transfer fails on its side,
    // the receiver removes what it had, and both say so.
    let src = TempDir::new("files-shrink-src");
    let out = TempDir::new("files-shrink-out");
    let data = random_bytes(8 << 20, 3);
    let f = src.file("grows-smaller.bin", &data);
    let (mut l, port) = receive(&out.0, &[], In::Null);
    let proxy = HoldProxy::paced(port, Some(4 << 20));
    let mut d = send(proxy.port, &[], &[&f], In::Null);
    wait_until("the transfer started", DEADLINE, || {
        names_in(&out.0).iter().any(|n| n.ends_with(".part"))
    });
    std::fs::write(&f, b"short now").expect("shrink");
    assert_eq!(d.code(), 1, "{}", d.stderr());
    assert_eq!(l.code(), 1, "{}", l.stderr());
    assert!(d.stderr().contains("failed"), "{}", d.stderr());
    assert!(
        l.stderr().contains("failed on the peer's side"),
        "{}",
        l.stderr()
    );
    assert!(names_in(&out.0).is_empty(), "{:?}", names_in(&out.0));
}
