//! `--progress`: occasional lines in a log, one line redrawn in place at a
//! terminal, percent when stdin is a file, and a summary at the end.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::pty::Pty;
use crate::util::*;

/// The last line of `text`.
fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or("")
}

#[test]
fn a_long_transfer_reports_now_and_then_and_sums_up() {
    let (mut l, port) = listen(&["--progress"], "127.0.0.1", In::Null);
    let port = port.to_string();
    let mut d = Proc::p2p(&["dial", "--progress", "127.0.0.1", &port], In::Pipe);
    let data = random_bytes(2 << 20, 7);
    d.write(&data[..1 << 20]);
    // The first report comes once data has flowed for a while (5 s in a log).
    d.wait_stderr("\nsent 1.0 MiB at ");
    l.wait_stderr("\nreceived 1.0 MiB at ");
    d.write(&data[1 << 20..]);
    d.close_stdin();
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &data, "the data");
    let (ds, ls) = (d.stderr(), l.stderr());
    assert!(
        last_line(&ds).starts_with("in ") && last_line(&ds).contains(": sent 2.0 MiB at "),
        "{ds}"
    );
    assert!(
        last_line(&ls).starts_with("in ") && last_line(&ls).contains(": received 2.0 MiB at "),
        "{ls}"
    );
}

#[test]
fn a_file_on_stdin_gives_the_percent() {
    let dir = TempDir::new("progress");
    let data = random_bytes(3 << 20, 8);
    let file = dir.file("data", &data);
    let (mut l, port) = listen(&["--progress"], "127.0.0.1", In::Null);
    let mut d = dial(&["--progress"], "127.0.0.1", port, In::File(file));
    assert_both_ok(&mut l, &mut d);
    assert_same_bytes(&l.stdout(), &data, "the data");
    let ds = d.stderr();
    assert!(
        last_line(&ds).contains("sent 3.0 MiB of 3.0 MiB (100%) at "),
        "{ds}"
    );
}

/// stderr at a terminal: the line is redrawn in place while the peer's
/// reader holds the transfer back, and the summary replaces it.
#[test]
fn at_a_terminal_one_line_is_redrawn_in_place() {
    let dir = TempDir::new("progress-tty");
    let data = random_bytes(48 << 20, 9);
    let file = dir.file("data", &data);
    let port = free_port().to_string();
    // A listener whose stdout nobody reads yet: the transfer stalls.
    let mut l = Command::new(BIN)
        .args(["listen", "-q", &port, "--bind", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("listener");
    let stdin = std::fs::File::open(&file).expect("open data");
    let mut d = Pty::spawn_with(
        &["dial", "--progress", "127.0.0.1", &port, "--retry", "30"],
        &[],
        24,
        100,
        Some(Stdio::from(stdin)),
    );
    let redraws = |p: &Pty| {
        let raw = p.raw();
        raw.windows(4).filter(|w| w == b"\r\x1b[K").count()
    };
    wait_until("three redraws of the progress line", DEADLINE, || {
        redraws(&d) >= 3
    });
    assert!(
        d.text().contains("of 48.0 MiB ("),
        "a percent while stalled:\n{}",
        d.text()
    );
    // Now read: the transfer finishes.
    let mut out = l.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        out.read_to_end(&mut got).map(|_| got)
    });
    assert_eq!(d.code(), 0, "{}", d.text());
    let got = reader.join().expect("reader").expect("read");
    assert_eq!(l.wait().expect("listener").code(), Some(0));
    assert_same_bytes(&got, &data, "the data");
    let rows = d.rows();
    let progress: Vec<&String> = rows.iter().filter(|r| r.contains("sent ")).collect();
    assert_eq!(progress.len(), 1, "one line, redrawn:\n{}", d.text());
    assert!(
        progress[0].starts_with("in ") && progress[0].contains("sent 48.0 MiB of 48.0 MiB (100%)"),
        "{}",
        d.text()
    );
}

#[test]
fn progress_is_for_pipes() {
    let mut r = Proc::p2p(&["relay", "--progress", "4001"], In::Null);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("--progress"), "{}", r.stderr());
    let mut chat = Pty::spawn(&["dial", "--progress", "127.0.0.1", "9"], &[], 24, 80);
    assert_eq!(chat.code(), 2, "{}", chat.text());
    assert!(
        chat.text()
            .contains("--progress is for transfers in a pipe"),
        "{}",
        chat.text()
    );
}
