//! The room's files on this machine: the driver's half of the file
//! streams. It opens what we offer and reads it where the session asks,
//! creates a temporary file in the save directory for what we accept and
//! writes it as it arrives, names it once its SHA-256 matched, and turns
//! the user's `/send`, `/accept`, `/reject` and `/cancel` into session
//! calls. Every transfer has a number for the user (`#N`), in the order
//! offers were made either way.
//!
//! Nothing is written before an offer is accepted (by the user, or by
//! `--receive`), a file is written only inside the save directory under a
//! safe name, and what did not arrive whole is removed.
//!
//! Files touch the disk only on threads of their own, which hand over
//! through channels and the loop's waker, so a slow disk never holds the
//! chat or the heartbeats: a file we send is read ahead of the network
//! ([`super::disk_reader`]), and a received one is written, made durable
//! (`fsync`) and named ([`super::disk_writer`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::Waker;

use super::disk_reader::{DiskReader, Took};
use super::disk_writer::{DiskWriter, Outcome};
use super::user::{FileCommand, Notice, UserSide};
use crate::error::Error;
use crate::files::disk::{self, Incoming, Outgoing};
use crate::files::name;
use crate::progress::bytes;
use crate::session::stream::StreamId;
use crate::session::{Event, Session};

/// The most file bytes read or written in one turn of the loop, so the
/// sockets and the keyboard are served in between.
const TURN_BUDGET: usize = 1024 * 1024;
/// The most of our files read at once. The others wait their turn (the
/// session sends those it has bytes of), so that offering many files at
/// once costs the memory of a few (a file being read holds up to 2.5 MiB).
const MAX_READING: usize = 4;
/// The least of a received file handed to its writer at once, but for
/// its end: each hand-over may wake the writer's thread, so fewer make
/// fewer switches (on loopback, a tenth of them). Held back, these bytes
/// take from the window the peer's credit allows (`FILE_WINDOW`, 2 MiB),
/// so this stays small beside it: on a link the credit bounds, a 3 %
/// smaller window on average.
const MIN_HAND: usize = 128 * 1024;
/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// Where received files go and who decides.
#[derive(Debug, Clone)]
pub struct FilePolicy {
    /// The directory files are saved in.
    pub dir: PathBuf,
    /// Take every offer without asking (`--receive DIR`).
    pub take_all: bool,
}

/// One transfer, as the user knows it.
struct Known {
    number: u32,
    /// The name as shown: for an offer of the peer's, the safe name it is
    /// saved under.
    shown: String,
    size: u64,
    outgoing: bool,
}

pub struct Files {
    policy: FilePolicy,
    known: HashMap<StreamId, Known>,
    next_number: u32,
    /// Offers of the peer's waiting for the user, oldest first.
    waiting: Vec<(StreamId, Vec<u8>)>,
    reading: HashMap<StreamId, DiskReader>,
    writing: HashMap<StreamId, DiskWriter>,
    /// Where saved files ended up, until their end is told.
    saved: HashMap<StreamId, PathBuf>,
    /// We offered files from the command line (`--send`).
    pub sent_from_args: bool,
    next_progress: Option<Instant>,
    progress_shown: bool,
    /// The threads of files written, finished or given up: joined before
    /// the program exits.
    writers: Vec<JoinHandle<()>>,
    /// Files given up whose thread may still name them: a name reported
    /// at the exit is removed.
    given_up: Vec<StreamId>,
    /// What the writers report: a file named, or its first error.
    named_tx: Sender<Outcome>,
    named_rx: Receiver<Outcome>,
    waker: Arc<Waker>,
}

impl Files {
    pub fn new(policy: FilePolicy, waker: Arc<Waker>) -> Files {
        let (named_tx, named_rx) = channel();
        Files {
            policy,
            known: HashMap::new(),
            next_number: 1,
            waiting: Vec::new(),
            reading: HashMap::new(),
            writing: HashMap::new(),
            saved: HashMap::new(),
            sent_from_args: false,
            next_progress: None,
            progress_shown: false,
            writers: Vec::new(),
            given_up: Vec::new(),
            named_tx,
            named_rx,
            waker,
        }
    }

    /// Keeps a writer's thread to join, forgetting those that ended.
    fn joined_later(&mut self, thread: Option<JoinHandle<()>>) {
        self.writers.retain(|t| !t.is_finished());
        self.writers.extend(thread);
    }

    /// Gives up the file `id` is written to (the thread removes it, or,
    /// if it was already naming it, [`Files::named`] or the drop does).
    fn give_up(&mut self, id: StreamId) {
        if let Some(writer) = self.writing.remove(&id) {
            self.given_up.push(id);
            self.joined_later(writer.abort());
        }
    }

    /// What the writers did since the last turn (a file named, or a
    /// write that failed): the session hears of each.
    fn named(&mut self, session: &mut Session, now: Instant) {
        while let Ok((id, result)) = self.named_rx.try_recv() {
            let Some(writer) = self.writing.remove(&id) else {
                // Given up (cancelled, or the room ended) while its thread
                // named it: what the user was told holds, no file.
                self.given_up.retain(|g| *g != id);
                unwanted(result);
                continue;
            };
            self.joined_later(writer.into_thread());
            match result {
                // Cancelled in this very turn, before its end was told.
                Ok(path) if !session.file_saved(id, now) => unwanted(Ok(path)),
                Ok(path) => {
                    self.saved.insert(id, path);
                }
                Err(e) => {
                    let why = disk::describe(&e, &self.policy.dir);
                    session.file_io_failed(id, &why, now);
                }
            }
        }
    }

    fn number(&mut self, id: StreamId, shown: String, size: u64, outgoing: bool) -> u32 {
        let number = self.next_number;
        self.next_number += 1;
        self.known.insert(
            id,
            Known {
                number,
                shown,
                size,
                outgoing,
            },
        );
        number
    }

    /// Offers the file at `path`. An error is one line for the user.
    pub fn offer(
        &mut self,
        path: &Path,
        session: &mut Session,
        ui: &mut dyn UserSide,
        now: Instant,
    ) -> Result<(), Error> {
        let file = Outgoing::open(path).map_err(|e| Error::Usage(disk::describe(&e, path)))?;
        let offered = file.name().to_string();
        let size = file.len();
        let reader = DiskReader::new(file, self.waker.clone());
        let id = session.offer_file(offered.as_bytes(), size, now)?;
        let shown = name::display(&offered);
        let number = self.number(id, shown.clone(), size, true);
        self.reading.insert(id, reader);
        ui.notice(Notice::FileOffering {
            number,
            name: &shown,
            size,
        });
        Ok(())
    }

    /// What the user typed.
    pub fn command(
        &mut self,
        cmd: FileCommand,
        session: &mut Session,
        ui: &mut dyn UserSide,
        now: Instant,
    ) {
        let said = match cmd {
            FileCommand::Send(path) => match self.offer(Path::new(&path), session, ui, now) {
                Ok(()) => None,
                Err(e) => Some(format!("/send: {e}")),
            },
            FileCommand::Accept(n) => match self.pick_offer(n, "accept") {
                Ok(id) => {
                    let raw = self.take_waiting(id);
                    self.accept(id, &raw, session, ui, now);
                    None
                }
                Err(e) => Some(e),
            },
            FileCommand::Reject(n) => match self.pick_offer(n, "reject") {
                Ok(id) => {
                    self.take_waiting(id);
                    session.reject_file(id, "the peer's user said no", now);
                    None
                }
                Err(e) => Some(e),
            },
            FileCommand::Cancel(n) => match self.pick_running(n) {
                Ok(id) => {
                    if let Some(pos) = self.waiting.iter().position(|(w, _)| *w == id) {
                        self.waiting.remove(pos);
                        session.reject_file(id, "the peer's user said no", now);
                    } else {
                        session.cancel_file(id, now);
                    }
                    None
                }
                Err(e) => Some(e),
            },
            FileCommand::List => Some(self.list(session)),
        };
        if let Some(text) = said {
            ui.notice(Notice::FileNote { text: &text });
        }
    }

    fn take_waiting(&mut self, id: StreamId) -> Vec<u8> {
        match self.waiting.iter().position(|(w, _)| *w == id) {
            Some(i) => self.waiting.remove(i).1,
            None => Vec::new(),
        }
    }

    fn id_of(&self, number: u32) -> Option<StreamId> {
        self.known
            .iter()
            .find(|(_, k)| k.number == number)
            .map(|(id, _)| *id)
    }

    /// The offer `/accept N` or `/reject N` means.
    fn pick_offer(&self, n: Option<u32>, verb: &str) -> Result<StreamId, String> {
        match (n, self.waiting.as_slice()) {
            (None, []) => Err(format!("/{verb}: no offer is waiting")),
            (None, [(id, _)]) => Ok(*id),
            (None, _) => {
                let list: Vec<String> = self
                    .waiting
                    .iter()
                    .filter_map(|(id, _)| self.known.get(id).map(|k| format!("#{}", k.number)))
                    .collect();
                Err(format!(
                    "/{verb}: several offers wait ({}): say which, e.g. /{verb} {}",
                    list.join(", "),
                    list.first().map_or("1", |s| &s[1..])
                ))
            }
            (Some(n), _) => match self.id_of(n) {
                Some(id) if self.waiting.iter().any(|(w, _)| *w == id) => Ok(id),
                Some(_) => Err(format!("/{verb}: #{n} is not waiting for an answer")),
                None => Err(format!("/{verb}: there is no #{n}")),
            },
        }
    }

    /// The transfer `/cancel N` means: running or waiting, either way.
    fn pick_running(&self, n: Option<u32>) -> Result<StreamId, String> {
        let running: Vec<StreamId> = self
            .known
            .keys()
            .copied()
            .filter(|id| {
                self.reading.contains_key(id)
                    || self.writing.contains_key(id)
                    || self.waiting.iter().any(|(w, _)| w == id)
            })
            .collect();
        match (n, running.as_slice()) {
            (None, []) => Err("/cancel: no transfer is running".into()),
            (None, [id]) => Ok(*id),
            (None, _) => Err("/cancel: several transfers run: say which, e.g. /cancel 1".into()),
            (Some(n), _) => match self.id_of(n) {
                Some(id) if running.contains(&id) => Ok(id),
                Some(_) => Err(format!("/cancel: #{n} has ended")),
                None => Err(format!("/cancel: there is no #{n}")),
            },
        }
    }

    /// `/files`: what waits and what moves.
    fn list(&self, session: &Session) -> String {
        let mut lines = Vec::new();
        for (id, _) in &self.waiting {
            if let Some(k) = self.known.get(id) {
                lines.push(format!(
                    "#{} \"{}\" ({}) waits: /accept {} or /reject {}",
                    k.number,
                    k.shown,
                    bytes(k.size),
                    k.number,
                    k.number
                ));
            }
        }
        for p in session.file_progress() {
            if let Some(k) = self.known.get(&p.id) {
                if self.waiting.iter().any(|(w, _)| *w == p.id) {
                    continue;
                }
                let how = if p.since.is_none() {
                    "waits for the peer".to_string()
                } else {
                    format!("{} of {}", bytes(p.done), bytes(p.size))
                };
                let dir = if k.outgoing { "sending" } else { "receiving" };
                lines.push(format!("#{} {dir} \"{}\": {how}", k.number, k.shown));
            }
        }
        if lines.is_empty() {
            "no files: /send PATH offers one".into()
        } else {
            lines.join("\n")
        }
    }

    /// Creates the file an offer goes to and takes the offer; a file that
    /// cannot be created turns it down, saying why.
    fn accept(
        &mut self,
        id: StreamId,
        raw: &[u8],
        session: &mut Session,
        ui: &mut dyn UserSide,
        now: Instant,
    ) {
        let (report, waker) = (self.named_tx.clone(), self.waker.clone());
        let created = Incoming::create(&self.policy.dir, raw)
            .and_then(|file| DiskWriter::spawn(id, file, report, waker));
        match created {
            Ok(writer) => match session.accept_file(id, now) {
                Ok(()) => {
                    self.writing.insert(id, writer);
                }
                Err(why) => {
                    self.joined_later(writer.abort());
                    ui.notice(Notice::FileNote {
                        text: &format!("/accept: {why}"),
                    });
                }
            },
            Err(e) => {
                let why = disk::describe(&e, &self.policy.dir);
                ui.notice(Notice::FileNote {
                    text: &format!("cannot take the file: {why}"),
                });
                session.reject_file(id, &format!("the peer cannot save it: {why}"), now);
            }
        }
    }

    /// A file event of the session's.
    pub fn on_event(
        &mut self,
        ev: Event,
        peer: Option<&str>,
        session: &mut Session,
        ui: &mut dyn UserSide,
        now: Instant,
    ) {
        match ev {
            Event::FileOffered {
                id,
                name: raw,
                size,
            } => {
                // What it is saved under, and what the peer called it (its
                // bidi and invisible characters shown as <U+...>).
                let shown = name::display(&name::safe_name(&raw));
                let offered = name::display(&String::from_utf8_lossy(&raw));
                let offered_as = (offered != shown).then_some(offered.as_str());
                let number = self.number(id, shown.clone(), size, false);
                if self.policy.take_all {
                    ui.notice(Notice::FileOffered {
                        number,
                        from: peer,
                        name: &shown,
                        offered_as,
                        size,
                        saving_to: Some(&self.policy.dir),
                    });
                    self.accept(id, &raw, session, ui, now);
                } else if ui.asks_about_files() {
                    self.waiting.push((id, raw));
                    ui.notice(Notice::FileOffered {
                        number,
                        from: peer,
                        name: &shown,
                        offered_as,
                        size,
                        saving_to: None,
                    });
                } else {
                    session.reject_file(id, "the peer takes files only with --receive DIR", now);
                    ui.notice(Notice::FileNote {
                        text: &format!(
                            "turned down #{number} \"{shown}\" ({}): run with --receive DIR to take files",
                            bytes(size)
                        ),
                    });
                }
            }
            // Its writer stays until it reports, so that a cancel can
            // still give the file up.
            Event::FileComplete { id } => match self.writing.get_mut(&id) {
                Some(writer) => writer.finish(),
                None => session.file_io_failed(id, "its file was lost", now),
            },
            Event::FileEnded {
                id,
                outgoing,
                size,
                outcome,
                elapsed,
                ..
            } => {
                self.reading.remove(&id);
                self.give_up(id);
                self.take_waiting(id);
                let saved_as = self.saved.remove(&id);
                let (number, shown) = self
                    .known
                    .get(&id)
                    .map_or((0, String::new()), |k| (k.number, k.shown.clone()));
                ui.notice(Notice::FileEnded {
                    number,
                    outgoing,
                    name: &shown,
                    size,
                    outcome: &outcome,
                    elapsed,
                    saved_as: saved_as.as_deref(),
                });
            }
            _ => {}
        }
    }

    /// Takes what the writers did, then takes our files' bytes from their
    /// readers and hands the peer's to their writers, as far as the
    /// session wants and at most `TURN_BUDGET` each way (whether more is
    /// wanted is the session's to say: `file_to_read`, `file_to_write`).
    /// A file whose reader has nothing ready, or whose writer is full, is
    /// passed over for the rest of the turn, so one file's slow disk never
    /// holds back the others; its thread wakes the loop when it can go on.
    /// Returns true if and only if more could be done at once.
    pub fn pump(&mut self, session: &mut Session, now: Instant) -> bool {
        self.named(session, now);
        let mut read = 0;
        let mut waiting = Vec::new();
        let mut reading = self.reading.values().filter(|r| r.reading()).count();
        // A file whose reader did not start for want of a slot.
        let mut capped = false;
        while read < TURN_BUDGET {
            let Some((id, at)) = session.file_to_read(&waiting) else {
                break;
            };
            let Some(reader) = self.reading.get_mut(&id) else {
                session.file_io_failed(id, "its file is not open", now);
                continue;
            };
            // (A reader that started already goes on, also when a resume
            // has it read again: that is bounded by the files in flight.)
            if !reader.started() && reading >= MAX_READING {
                waiting.push(id);
                capped = true;
                continue;
            }
            let buf = session.file_read_buf(id);
            if buf.is_empty() {
                waiting.push(id);
                continue;
            }
            let was_reading = reader.reading();
            match reader.take(at, buf) {
                Took::Bytes(n) => {
                    read += n;
                    session.file_read(id, n, now);
                }
                Took::Waiting => waiting.push(id),
                Took::Failed(e) => session.file_io_failed(id, &e.to_string(), now),
            }
            // A take may start a reader, end its reading (the next file
            // may then start at once), or, after a resume, start it again.
            match (was_reading, reader.reading()) {
                (false, true) => reading += 1,
                (true, false) => reading -= 1,
                _ => {}
            }
        }
        // A slot freed after a file was turned away: it may start now.
        let more_to_read =
            session.file_to_read(&waiting).is_some() || (capped && reading < MAX_READING);
        let mut written = 0;
        let mut passed_over = Vec::new();
        while written < TURN_BUDGET {
            let Some((id, data)) = session.file_to_write(&passed_over) else {
                break;
            };
            let Some(writer) = self.writing.get_mut(&id) else {
                session.file_io_failed(id, "its file is not open", now);
                continue;
            };
            if data.len() < MIN_HAND && !session.file_all_here(id) {
                // Too little yet (see MIN_HAND); it waits for more.
                passed_over.push(id);
                continue;
            }
            let n = writer.hand(data);
            if n == 0 {
                // The disk is behind: the bytes wait in the session, whose
                // credit holds the peer back, until the writer has room.
                passed_over.push(id);
                continue;
            }
            written += n;
            session.file_written(id, n, now);
        }
        more_to_read || session.file_to_write(&passed_over).is_some()
    }

    /// Shows how the transfers go, every [`PROGRESS_EVERY`].
    pub fn show_progress(&mut self, session: &Session, ui: &mut dyn UserSide, now: Instant) {
        let running: Vec<String> = session
            .file_progress()
            .into_iter()
            .filter(|p| p.since.is_some())
            .filter_map(|p| {
                let k = self.known.get(&p.id)?;
                let pct = p
                    .done
                    .saturating_mul(100)
                    .checked_div(p.size)
                    .unwrap_or(100);
                let arrow = if k.outgoing { "\u{2191}" } else { "\u{2193}" };
                let secs = p
                    .since
                    .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
                let rate = if secs > 0.2 {
                    format!(", {}/s", bytes((p.done as f64 / secs) as u64))
                } else {
                    String::new()
                };
                Some(format!(
                    "{arrow} #{} \"{}\" {pct}% of {}{rate}",
                    k.number,
                    k.shown,
                    bytes(p.size)
                ))
            })
            .collect();
        if running.is_empty() {
            if self.progress_shown {
                ui.file_progress(None);
                self.progress_shown = false;
            }
            self.next_progress = None;
            return;
        }
        if self.next_progress.is_some_and(|t| now < t) {
            return;
        }
        ui.file_progress(Some(&running.join("  ")));
        self.progress_shown = true;
        // At a prompt, redrawn often; in a pipe (`--progress`) as often as
        // its own progress line, which is rarer in a log.
        let every = if ui.asks_about_files() {
            PROGRESS_EVERY
        } else {
            ui.progress_every()
        };
        self.next_progress = Some(now + every);
    }

    /// When the progress line is due next, if a transfer runs.
    pub fn deadline(&self) -> Option<Instant> {
        self.next_progress
    }
}

/// Removes a file that was named although its transfer was given up.
fn unwanted(named: std::io::Result<PathBuf>) {
    if let Ok(path) = named {
        let _ = std::fs::remove_file(path);
    }
}

impl Drop for Files {
    /// A file being named when the room ends is named whole (or its
    /// temporary file removed), and one still arriving is given up and
    /// removed, before the program exits: never left half renamed, never
    /// a `.part` behind. A writer in a `write` that a dead disk never
    /// answers holds the exit here, as it would have held the loop; the
    /// readers, which leave nothing behind, are not waited for.
    fn drop(&mut self) {
        let writers: Vec<DiskWriter> = self.writing.drain().map(|(_, w)| w).collect();
        for writer in writers {
            self.writers.extend(writer.into_thread());
        }
        for t in self.writers.drain(..) {
            let _ = t.join();
        }
        // A file given up that its thread named anyway (the cancel came
        // as it named it): what the user was told holds, no file.
        while let Ok((id, result)) = self.named_rx.try_recv() {
            if self.given_up.contains(&id) {
                unwanted(result);
            }
        }
    }
}
