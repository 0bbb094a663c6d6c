//! The line editor thread: rustyline blocks in `readline`, so it runs on
//! the one extra thread allowed, and hands each line to the event loop over
//! a channel, waking it with the loop's `mio::Waker`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;
use rustyline::completion::Pair;
use rustyline::error::ReadlineError;
use rustyline::history::MemHistory;
use rustyline::{Behavior, CompletionType, Config, Editor, ExternalPrinter};

/// What the user did at the prompt.
#[derive(Debug)]
pub enum Typed {
    Line(String),
    /// Ctrl-C at the prompt.
    Interrupt,
    /// Ctrl-D on an empty line.
    Eof,
    Failed(String),
}

type LineEditor = Editor<DraftWatcher, MemHistory>;

/// Sees the line being edited on every change (rustyline asks its hinter),
/// so a draft never submitted can still be reported as not delivered.
#[derive(Default, Clone)]
pub struct DraftWatcher {
    draft: Arc<Mutex<String>>,
    /// Bumped on every change: a key was pressed.
    edits: Arc<AtomicUsize>,
    /// When a key last changed the line.
    last_key: Arc<Mutex<Option<Instant>>>,
    /// Bumped each time `readline` returns (Enter, Ctrl-C, Ctrl-D).
    returns: Arc<AtomicUsize>,
    /// Bumped before this thread draws rows of its own above the prompt
    /// (our message, a list of completions): whatever was printed last is
    /// then no longer the last row.
    drawn: Arc<AtomicUsize>,
}

impl rustyline::hint::Hinter for DraftWatcher {
    type Hint = String;
    fn hint(&self, line: &str, _pos: usize, _ctx: &rustyline::Context<'_>) -> Option<String> {
        if let Ok(mut d) = self.draft.lock() {
            line.clone_into(&mut d);
        }
        self.edits.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut t) = self.last_key.lock() {
            *t = Some(Instant::now());
        }
        None
    }
}
impl rustyline::completion::Completer for DraftWatcher {
    type Candidate = Pair;

    /// Tab after `/send ` completes a path; elsewhere there is nothing to
    /// complete (rustyline beeps, as before).
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, candidates) = complete_send(line, pos);
        if candidates.len() > 1 {
            // A second Tab lists them below the prompt.
            self.drawn.fetch_add(1, Ordering::SeqCst);
        }
        Ok((start, candidates))
    }
}

/// The path completions for the line `line` with the cursor at byte
/// `pos`: where the replaced text starts, and the candidates. Only the
/// argument of `/send` is completed, written as `/send` takes it: the rest
/// of the line, perhaps in quotes, perhaps starting with `~/`; names need
/// no escapes.
fn complete_send(line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let none = (pos, Vec::new());
    let Some(before) = line.get(..pos) else {
        return none;
    };
    let Some(rest) = before.trim_start().strip_prefix("/send") else {
        return none;
    };
    if !rest.starts_with(char::is_whitespace) {
        return none;
    }
    let mut arg = rest.trim_start();
    let mut start = pos - arg.len();
    let mut quote = None;
    if let Some(q) = arg.chars().next().filter(|c| matches!(c, '"' | '\'')) {
        arg = &arg[1..];
        start += 1;
        if arg.contains(q) {
            // The quotes are closed: the path is complete.
            return none;
        }
        quote = Some(q);
    }
    let is_sep = |c: char| c == '/' || (cfg!(windows) && c == '\\');
    let (dir, prefix) = match arg.rfind(is_sep) {
        Some(i) => arg.split_at(i + 1),
        None => ("", arg),
    };
    let listed = if dir.is_empty() {
        std::path::PathBuf::from(".")
    } else {
        std::path::PathBuf::from(super::command::expand_home(dir))
    };
    let Ok(entries) = std::fs::read_dir(&listed) else {
        return none;
    };
    let wanted = normalize(prefix);
    let mut candidates: Vec<Pair> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            // Hidden files only when asked for, as shells do.
            if name.starts_with('.') && !prefix.starts_with('.') {
                return None;
            }
            if !normalize(&name).starts_with(&wanted) {
                return None;
            }
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
            let display = if is_dir {
                format!("{name}{}", std::path::MAIN_SEPARATOR)
            } else {
                name
            };
            Some(Pair {
                replacement: format!("{dir}{display}"),
                display,
            })
        })
        .collect();
    candidates.sort_by(|a, b| a.display.cmp(&b.display));
    if let ([only], Some(q)) = (candidates.as_mut_slice(), quote) {
        // One file: close the quotes, as a shell would.
        if !only.display.ends_with(std::path::MAIN_SEPARATOR) {
            only.replacement.push(q);
        }
    }
    (start, candidates)
}

/// A name as completion compares it: as it is, or in lower case where
/// file names ignore case (Windows, macOS).
fn normalize(name: &str) -> String {
    if cfg!(any(windows, target_os = "macos")) {
        name.to_lowercase()
    } else {
        name.to_string()
    }
}
impl rustyline::highlight::Highlighter for DraftWatcher {}
impl rustyline::validate::Validator for DraftWatcher {}
impl rustyline::Helper for DraftWatcher {}

/// An editor not yet running, and the printer that draws above its prompt.
pub struct Prepared {
    editor: LineEditor,
    watcher: DraftWatcher,
    pub printer: Box<dyn ExternalPrinter + Send>,
}

/// Builds the editor. Fails where there is no usable terminal (TERM=dumb,
/// no printer), and the caller falls back to a simple line reader.
pub fn prepare() -> Option<Prepared> {
    let config = Config::builder()
        .behavior(Behavior::PreferTerm)
        // A pasted block lands in the draft whole, newlines and all: one
        // message, one timestamp, continuation lines; the peer gets its
        // lines exactly as pasted. Alt-Enter adds a newline by hand (the
        // vendored rustyline binds it).
        .bracketed_paste(true)
        .auto_add_history(false)
        // Tab completes what is common, a second Tab lists the choices,
        // as shells do.
        .completion_type(CompletionType::List)
        .max_history_size(1000)
        .ok()?
        .build();
    // In-memory history only: nothing is ever written to disk.
    let mut editor = LineEditor::with_history(config, MemHistory::new()).ok()?;
    let watcher = DraftWatcher::default();
    editor.set_helper(Some(watcher.clone()));
    let printer = editor.create_external_printer().ok()?;
    Some(Prepared {
        editor,
        watcher,
        printer: Box::new(printer),
    })
}

/// The running editor thread.
pub struct Running {
    pub rx: Receiver<Typed>,
    watcher: DraftWatcher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Prepared {
    /// Starts prompting with `prompt` on the editor thread. Each accepted
    /// line replaces its prompt echo with `transcript(line)`, drawn by this
    /// thread before the next prompt, so it can never race the printer.
    pub fn start(
        self,
        prompt: String,
        transcript: impl Fn(&str) -> String + Send + 'static,
        waker: Arc<Waker>,
    ) -> (Running, Box<dyn ExternalPrinter + Send>) {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let mut editor = self.editor;
        let watcher = self.watcher.clone();
        let draft = self.watcher.draft.clone();
        let returns = self.watcher.returns.clone();
        let drawn = self.watcher.drawn.clone();
        let thread = std::thread::spawn(move || loop {
            let read = editor.readline(&prompt);
            returns.fetch_add(1, Ordering::SeqCst);
            let typed = match read {
                Ok(line) => {
                    if let Ok(mut d) = draft.lock() {
                        d.clear();
                    }
                    let _ = editor.add_history_entry(line.as_str());
                    // Our transcript shows what the peer gets: a message as
                    // sent, and nothing for a command or an empty line.
                    let shown = match super::command::Typed::of(&line) {
                        super::command::Typed::Message(text) => {
                            drawn.fetch_add(1, Ordering::SeqCst);
                            Some(transcript(&text))
                        }
                        _ => None,
                    };
                    replace_echo(&prompt, &line, shown.as_deref());
                    Typed::Line(line)
                }
                Err(ReadlineError::Interrupted) => Typed::Interrupt,
                Err(ReadlineError::Eof) => Typed::Eof,
                // The terminal hung up (its window closed): leaving.
                Err(ReadlineError::Io(e)) if crate::sys::process::is_hangup(&e) => Typed::Eof,
                Err(e) => Typed::Failed(e.to_string()),
            };
            if matches!(typed, Typed::Interrupt | Typed::Eof) {
                // The prompt is not asked again: take it off the screen, so
                // the last lines read as the transcript ends and a key
                // pressed to leave does not look typed into the room. A
                // draft is reported as not delivered.
                let left = draft.lock().map(|d| d.clone()).unwrap_or_default();
                replace_echo(&prompt, &left, None);
            }
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            let last = !matches!(typed, Typed::Line(_));
            if tx.send(typed).is_err() {
                return;
            }
            let _ = waker.wake();
            if last {
                return;
            }
        });
        (
            Running {
                rx,
                watcher,
                stop,
                thread: Some(thread),
            },
            self.printer,
        )
    }
}

/// Replaces the prompt line the editor leaves behind when `readline`
/// returns with the transcript line (or with nothing), so the screen reads
/// as a transcript without doubles.
fn replace_echo(prompt: &str, line: &str, shown: Option<&str>) {
    use std::io::Write;
    let cols = super::transcript::columns().max(1);
    // The rows the echo took, and the one the accepting newline moved to.
    let rows = rows_below(&format!("{prompt}{line}"), cols) + 1;
    let mut out = std::io::stdout().lock();
    match shown {
        Some(shown) => {
            let shown = shown.replace('\n', "\r\n");
            let _ = write!(out, "\x1b[{rows}A\r\x1b[J{shown}\r\n");
        }
        None => {
            let _ = write!(out, "\x1b[{rows}A\r\x1b[J");
        }
    }
    let _ = out.flush();
}

/// How many rows below its first the end of `text` sits on a terminal
/// `cols` wide, the way the terminal (and rustyline) wraps it: a wide
/// character that does not fit in the last column moves whole to the next
/// row, leaving that column empty, and text that fills a row exactly puts
/// the cursor on the next one.
fn rows_below(text: &str, cols: usize) -> usize {
    use unicode_width::UnicodeWidthChar;
    let (mut row, mut col) = (0, 0);
    for c in text.chars() {
        if c == '\n' {
            // A draft of several lines: the next starts a row.
            row += 1;
            col = 0;
            continue;
        }
        let w = c.width().unwrap_or(0);
        col += w;
        if col > cols {
            row += 1;
            col = w;
        }
    }
    if col == cols {
        row += 1;
    }
    row
}

impl Running {
    pub fn try_recv(&self) -> Result<Typed, TryRecvError> {
        self.rx.try_recv()
    }

    /// The line being edited and not yet submitted.
    pub fn draft(&self) -> String {
        self.watcher
            .draft
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// A count of the rows this thread drew above the prompt itself: when
    /// it changed, the last row printed is no longer what we printed.
    pub fn drawn(&self) -> usize {
        self.watcher.drawn.load(Ordering::SeqCst)
    }

    /// When a key last changed the line at the prompt.
    pub fn last_key(&self) -> Option<Instant> {
        self.watcher.last_key.lock().ok().and_then(|t| *t)
    }

    /// A count that changes whenever a key is pressed at the prompt.
    pub fn keys(&self) -> usize {
        self.watcher.edits.load(Ordering::SeqCst) + self.watcher.returns.load(Ordering::SeqCst)
    }

    /// Ends `readline` and joins the thread, leaving the terminal as it was.
    /// rustyline has no abort call, but during `readline` it handles SIGINT
    /// itself and restores the terminal, so we raise SIGINT until it returns
    /// (kkawakam/rustyline#780).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let give_up = Instant::now() + Duration::from_millis(1000);
        while !thread.is_finished() && Instant::now() < give_up {
            crate::sys::process::interrupt_self();
            std::thread::sleep(Duration::from_millis(20));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{complete_send, rows_below};

    /// A fresh directory of its own for one test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("p2pchat-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// The replacements offered for `line` with the cursor at its end,
    /// and where they start.
    fn offered(line: &str) -> (usize, Vec<String>) {
        let (start, c) = complete_send(line, line.len());
        (start, c.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn tab_completes_a_path_after_send_only() {
        let dir = scratch("complete");
        for f in ["report 2024.pdf", "readme.txt", ".hidden", "solo.bin"] {
            std::fs::write(dir.join(f), b"x").expect("file");
        }
        std::fs::create_dir(dir.join("res")).expect("dir");
        let d = dir.to_str().expect("utf-8 temp dir");
        let sep = std::path::MAIN_SEPARATOR;

        let line = format!("/send {d}/so");
        assert_eq!(offered(&line), (6, vec![format!("{d}/solo.bin")]));
        // Several: each offered, sorted; a folder ends with a separator.
        let line = format!("  /send   {d}/re");
        let (start, got) = offered(&line);
        assert_eq!(start, 10);
        assert_eq!(
            got,
            [
                format!("{d}/readme.txt"),
                format!("{d}/report 2024.pdf"),
                format!("{d}/res{sep}")
            ]
        );
        // A name with a space needs no escape (the rest of the line is
        // the path); in quotes, a unique file closes them.
        let line = format!("/send \"{d}/rep");
        assert_eq!(offered(&line), (7, vec![format!("{d}/report 2024.pdf\"")]));
        let line = format!("/send '{d}/rep");
        assert_eq!(offered(&line), (7, vec![format!("{d}/report 2024.pdf'")]));
        // Hidden files only when the name starts with a dot.
        let line = format!("/send {d}/");
        assert_eq!(offered(&line).1.len(), 4);
        let line = format!("/send {d}/.h");
        assert_eq!(offered(&line).1, [format!("{d}/.hidden")]);

        // Anywhere else, nothing to complete.
        for line in [
            format!("/sen {d}/so"),
            format!("/sendx {d}/so"),
            format!("//send {d}/so"),
            format!("hello {d}/so"),
            format!("/save {d}/so"),
            format!("/send \"{d}/solo.bin\" "),
            format!("/send {d}/nothing-here/x"),
        ] {
            assert!(offered(&line).1.is_empty(), "{line:?}");
        }
        // The cursor in the middle: only what is before it counts.
        let line = format!("/send {d}/so and more");
        let at = line.find(" and").expect("cursor");
        let (start, c) = complete_send(&line, at);
        assert_eq!((start, c.len()), (6, 1));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn tab_expands_nothing_but_lists_the_home_directory_for_tilde() {
        let Some(home) = super::super::command::home_dir() else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&home) else {
            return;
        };
        let Some(name) = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .find(|n| !n.starts_with('.'))
        else {
            return;
        };
        let (_, got) = offered(&format!("/send ~/{name}"));
        assert!(
            got.iter().any(|r| r.starts_with(&format!("~/{name}"))),
            "{got:?}"
        );
    }

    #[test]
    fn rows_count_the_column_a_wide_character_leaves_empty() {
        assert_eq!(rows_below("alice> hi", 80), 0);
        assert_eq!(rows_below(&"x".repeat(80), 80), 1, "a full row");
        assert_eq!(rows_below(&"x".repeat(81), 80), 1);
        // 7 + 36 × 2 = 79 columns: the 37th wide character starts row 2,
        // and 40 more fill it exactly. Width alone (159) says one row less.
        let line = format!("alice> {}", "字".repeat(76));
        assert_eq!(rows_below(&line, 80), 2);
        assert_eq!(rows_below(&format!("alice> {}", "字".repeat(37)), 80), 1);
        assert_eq!(rows_below("alice> one\ntwo\nthree", 80), 2, "a block");
    }
}
