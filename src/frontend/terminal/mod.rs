//! The terminal front-end: when stdin and stdout are terminals, p2pchat is a
//! chat room. A prompt (rustyline, on its own thread) that incoming
//! messages never garble, a transcript of `12:03 name: text` lines, notices,
//! and the peer's text sanitised. With `TERM=dumb` or no usable terminal it
//! falls back to a simple line reader that still never loses a typed line.

mod command;
mod editor;
mod facts;
mod progress;
mod saved;
mod transcript;

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::TryRecvError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Registry, Token, Waker};
use rustyline::ExternalPrinter;

use super::{notice, stdio};
use crate::driver::signals::Interrupts;
use crate::driver::user::{FileCommand, Notice, UserInput, UserSide, UserTokens};
use editor::{Prepared, Running, Typed};
use facts::RoomFacts;
use progress::ProgressLine;
use saved::Transcript;
use transcript::{clock, columns, dumb_terminal, Style};

/// The longest partial line held back before it is shown anyway.
const MAX_PARTIAL: usize = 8 * 1024;

/// How long the screen stays after the peer left, unless a key is pressed.
const LEAVE_PAUSE: std::time::Duration = std::time::Duration::from_secs(3);

/// A message after this long without keys or messages rings the bell.
const QUIET_SPELL: Duration = Duration::from_secs(30);

/// Moves up a line and back down: draws nothing, wherever it lands.
const PRINTER_BARRIER: &str = "\x1b[1A\n";

/// Where typed lines come from.
enum Keyboard {
    /// rustyline, prepared until the room is up, then running.
    Editor(Option<Box<Prepared>>, Option<Running>),
    /// A plain cooked-mode terminal read, split into lines here.
    Simple { tty: stdio::Stdin, partial: Vec<u8> },
}

pub struct Terminal {
    tokens: UserTokens,
    keyboard: Keyboard,
    /// Draws above the prompt while the editor runs.
    printer: Option<Box<dyn ExternalPrinter + Send>>,
    waker: Arc<Waker>,
    interrupts: Interrupts,
    style: Style,
    our_name: String,
    peer_name: String,
    /// Typed lines not yet handed to the session, with the bytes of the
    /// current one still to go.
    queued: VecDeque<String>,
    current: Vec<u8>,
    /// File commands typed, for `poll_command`.
    commands: VecDeque<FileCommand>,
    /// The user left (or the keyboard failed) while lines typed before
    /// that were still queued: `read_input` says so once they went out.
    ended: Option<io::Result<UserInput>>,
    /// The file progress line, redrawn in place.
    progress: ProgressLine,
    /// The editor may have something for us.
    keyboard_ready: bool,
    /// Until the editor starts (the room is up), the terminal read in
    /// cooked mode, so that `/quit` and Ctrl-D can end a room nobody has
    /// joined (with the start of a line ended by Ctrl-D rather than Enter).
    early: Option<(stdio::Stdin, Vec<u8>)>,
    input_open: bool,
    /// Incoming bytes up to the next newline.
    incoming: Vec<u8>,
    output_open: bool,
    saved_termios: Option<crate::sys::terminal::Mode>,
    quiet: bool,
    /// The peer left: the screen stays a moment before we exit.
    peer_left: bool,
    /// Another room follows this one (`listen --keep`): nothing to leave.
    pub keep: bool,
    /// Ring the bell for a message after a quiet spell.
    pub bell: bool,
    /// The last message, typed line or join, for the bell.
    last_activity: Instant,
    /// The room as `/code` and `/status` tell it.
    room: RoomFacts,
    /// What the screen showed, in plain text, for `/save`.
    log: Transcript,
    /// The connection is down (resume): lines typed now are queued, and
    /// marked so in our transcript.
    down: Arc<AtomicBool>,
}

impl Terminal {
    pub fn open(
        registry: &Registry,
        tokens: UserTokens,
        name: &str,
        quiet: bool,
        waker: Arc<Waker>,
        interrupts: &Interrupts,
    ) -> io::Result<Terminal> {
        let saved_termios = saved_termios();
        if let Some(t) = saved_termios {
            // A second Ctrl-C exits at once: leave the terminal sane.
            interrupts.on_exit(Box::new(move || restore_termios(&t)));
        }
        let mut early = None;
        let keyboard = match (!dumb_terminal()).then(editor::prepare).flatten() {
            Some(prepared) => {
                // Without it, /quit waits for the room as it used to.
                early = stdio::Stdin::open_until_editor(registry, tokens.stdin, waker.clone())
                    .ok()
                    .flatten()
                    .map(|tty| (tty, Vec::new()));
                Keyboard::Editor(Some(Box::new(prepared)), None)
            }
            None => Keyboard::Simple {
                tty: stdio::Stdin::open(registry, tokens.stdin, waker.clone())?,
                partial: Vec::new(),
            },
        };
        // A plain reader starts by reading: on a thread, that read is what
        // asks the thread for the first keys.
        let read_first = matches!(keyboard, Keyboard::Simple { .. }) || early.is_some();
        Ok(Terminal {
            tokens,
            keyboard,
            printer: None,
            waker,
            interrupts: interrupts.clone(),
            style: Style::from_env(),
            our_name: name.to_string(),
            peer_name: "peer".into(),
            queued: VecDeque::new(),
            current: Vec::new(),
            commands: VecDeque::new(),
            ended: None,
            progress: ProgressLine::default(),
            keyboard_ready: read_first,
            early,
            input_open: true,
            incoming: Vec::new(),
            output_open: true,
            saved_termios,
            quiet,
            peer_left: false,
            keep: false,
            bell: true,
            last_activity: Instant::now(),
            room: RoomFacts::default(),
            log: Transcript::default(),
            down: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Shows lines: above the prompt while the editor runs, else on stdout.
    fn show(&mut self, lines: &str) {
        if lines.is_empty() {
            return;
        }
        // The progress line is no longer the last row: the next one is new.
        self.progress.interrupted();
        if let Some(p) = self.printer.as_mut() {
            // With a newline: outside readline the printer writes as is.
            if p.print(format!("{lines}\n")).is_ok() {
                return;
            }
        }
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{lines}");
        let _ = out.flush();
    }

    /// A status line, wrapped at spaces like a message, continuation rows
    /// indented so that no row of it can pass for one of ours.
    fn show_notice(&mut self, text: &str) {
        self.show_notice_after("", text);
    }

    /// As `show_notice`, with `prefix` (cursor moves) before it.
    fn show_notice_after(&mut self, prefix: &str, text: &str) {
        for line in text.split('\n') {
            self.log.push(line.to_string());
        }
        let shown = notice_rows(text, columns())
            .iter()
            .map(|row| self.style.notice(row))
            .collect::<Vec<_>>()
            .join("\n");
        self.show(&format!("{prefix}{shown}"));
    }

    /// The count of rows the editor thread drew itself (see
    /// [`ProgressLine::redraw`]).
    fn editor_drawn(&self) -> usize {
        match &self.keyboard {
            Keyboard::Editor(_, Some(running)) => running.drawn(),
            _ => 0,
        }
    }

    fn start_editor(&mut self) {
        // The editor reads the terminal from now on; closing our early
        // reader's descriptor also takes it out of the poll. A line ended
        // by Ctrl-D rather than Enter is a message too (not a command).
        if let Some((_, partial)) = self.early.take() {
            let line = String::from_utf8_lossy(&partial).into_owned();
            if let command::Typed::Message(text) = command::Typed::of(&line) {
                self.queued.push_back(text);
            }
        }
        if let Keyboard::Editor(prepared, running) = &mut self.keyboard {
            if let Some(p) = prepared.take() {
                let (style, name) = (self.style, self.our_name.clone());
                let down = self.down.clone();
                let transcript = move |line: &str| {
                    let mut shown =
                        style.message(&clock(), &name, line.as_bytes(), true, columns());
                    if down.load(Ordering::SeqCst) {
                        shown.push_str(
                            &style.notice("  (queued: sent when the connection is back)"),
                        );
                    }
                    shown
                };
                let (r, printer) = p.start(
                    Style::prompt(&self.our_name),
                    transcript,
                    self.waker.clone(),
                );
                *running = Some(r);
                self.printer = Some(printer);
            }
        }
    }

    /// Takes what the user typed into `queued`; returns Leave if the user
    /// is done.
    fn poll_keyboard(&mut self) -> io::Result<Option<UserInput>> {
        for typed in self.read_keyboard()? {
            match typed {
                Typed::Line(line) => {
                    if let Some(done) = self.command(line) {
                        return Ok(Some(done));
                    }
                }
                Typed::Interrupt => {
                    // Counted, so that the next Ctrl-C exits at once.
                    self.interrupts.raise();
                    return Ok(Some(UserInput::Leave));
                }
                Typed::Eof => return Ok(Some(UserInput::Leave)),
                // The window closed under the editor (its error can be any
                // EIO the terminal gave it): that is leaving, politely.
                Typed::Failed(_) if terminal_gone() => return Ok(Some(UserInput::Leave)),
                Typed::Failed(e) => return Err(io::Error::other(e)),
            }
        }
        Ok(None)
    }

    /// Reads everything the keyboard has into `queued` and `commands`,
    /// stopping where the user leaves (kept in `ended`), so that a file
    /// command is seen even while the session takes no input.
    fn pump_keyboard(&mut self) {
        while self.input_open && self.keyboard_ready && self.ended.is_none() {
            match self.poll_keyboard() {
                Ok(None) => {}
                Ok(Some(done)) => self.ended = Some(Ok(done)),
                Err(e) => self.ended = Some(Err(e)),
            }
        }
    }

    /// What the keyboard has for us now; clears `keyboard_ready` when empty.
    fn read_keyboard(&mut self) -> io::Result<Vec<Typed>> {
        let mut got = Vec::new();
        match &mut self.keyboard {
            Keyboard::Editor(_, Some(running)) => match running.try_recv() {
                Ok(t) => got.push(t),
                Err(TryRecvError::Empty) => self.keyboard_ready = false,
                Err(TryRecvError::Disconnected) => got.push(Typed::Eof),
            },
            Keyboard::Editor(_, None) => match self.early.as_mut() {
                Some((tty, partial)) => {
                    if !read_lines(tty, partial, &mut got)? {
                        self.keyboard_ready = false;
                    }
                }
                None => self.keyboard_ready = false,
            },
            Keyboard::Simple { tty, partial } => {
                if !read_lines(tty, partial, &mut got)? {
                    self.keyboard_ready = false;
                }
            }
        }
        Ok(got)
    }

    /// Handles `/quit` and `/help`; queues anything else as a message.
    fn command(&mut self, line: String) -> Option<UserInput> {
        match command::Typed::of(&line) {
            command::Typed::Quit => Some(UserInput::Leave),
            command::Typed::Help => {
                self.show_notice(command::HELP);
                None
            }
            command::Typed::Unknown(cmd) => {
                self.show_notice(&command::Typed::hint(&cmd));
                None
            }
            command::Typed::File(cmd) => {
                self.commands.push_back(cmd);
                None
            }
            command::Typed::Usage(text) => {
                self.show_notice(&text);
                None
            }
            command::Typed::Code => {
                let text = self.room.code_line();
                self.show_notice(&text);
                None
            }
            command::Typed::Status => {
                let text = self.room.status_line(self.down.load(Ordering::SeqCst));
                self.show_notice(&text);
                None
            }
            command::Typed::Save(file) => {
                let text = self.log.save(&file);
                self.show_notice(&text);
                None
            }
            command::Typed::Empty => None,
            command::Typed::Message(text) => {
                self.last_activity = Instant::now();
                // A block of lines: one timestamp, continuation lines.
                for (i, line) in text.split('\n').enumerate() {
                    let line = crate::frontend::sanitize::line(line.as_bytes());
                    self.log.push(if i == 0 {
                        format!("{} {}: {line}", clock(), self.our_name)
                    } else {
                        format!("      {line}")
                    });
                }
                self.queued.push_back(text);
                None
            }
        }
    }

    /// Whether a message arriving now comes after a quiet spell: no
    /// message and no key for [`QUIET_SPELL`].
    fn ring_now(&self) -> bool {
        let key = match &self.keyboard {
            Keyboard::Editor(_, Some(running)) => running.last_key(),
            _ => None,
        };
        let last = key.map_or(self.last_activity, |k| k.max(self.last_activity));
        self.bell && last.elapsed() >= QUIET_SPELL
    }

    /// Formats complete incoming lines; holds back a partial one.
    fn take_lines(&mut self, flush: bool) -> String {
        let mut shown = Vec::new();
        let clock = clock();
        while let Some(i) = self.incoming.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.incoming.drain(..=i).collect();
            // CRLF from a Windows or telnet peer ends the line, too.
            let text = line[..i].strip_suffix(b"\r").unwrap_or(&line[..i]);
            self.log.push(format!(
                "{clock} {}: {}",
                self.peer_name,
                crate::frontend::sanitize::line(text)
            ));
            shown.push(
                self.style
                    .message(&clock, &self.peer_name, text, false, columns()),
            );
        }
        if (flush || self.incoming.len() >= MAX_PARTIAL) && !self.incoming.is_empty() {
            let line = std::mem::take(&mut self.incoming);
            self.log.push(format!(
                "{clock} {}: {}",
                self.peer_name,
                crate::frontend::sanitize::line(&line)
            ));
            shown.push(
                self.style
                    .message(&clock, &self.peer_name, &line, false, columns()),
            );
        }
        shown.join("\n")
    }
}

impl UserSide for Terminal {
    fn on_ready(&mut self, token: Token, closed: bool) {
        if token != self.tokens.stdin {
            return;
        }
        if let Some((tty, _)) = self.early.as_mut() {
            tty.on_ready(closed);
            self.keyboard_ready = true;
        } else if let Keyboard::Simple { tty, .. } = &mut self.keyboard {
            tty.on_ready(closed);
            self.keyboard_ready = true;
        }
    }

    fn left_before_room(&mut self) -> io::Result<bool> {
        // Lines typed meanwhile wait in `queued` for the room.
        self.pump_keyboard();
        match self.ended.take() {
            Some(Ok(UserInput::Leave)) => Ok(true),
            Some(Err(e)) => Err(e),
            other => {
                self.ended = other;
                Ok(false)
            }
        }
    }

    fn output_is_data(&self) -> bool {
        false
    }

    fn on_wake(&mut self) {
        match &mut self.keyboard {
            Keyboard::Editor(..) => {
                if let Some((tty, _)) = self.early.as_mut() {
                    tty.on_wake();
                }
                self.keyboard_ready = true;
            }
            Keyboard::Simple { tty, .. } => {
                tty.on_wake();
                self.keyboard_ready |= tty.ready;
            }
        }
    }

    fn input_ready(&self) -> bool {
        // A file command (or the leaving) waiting counts: the loop goes on
        // turning until `poll_command` (or `read_input`) takes it.
        self.input_open
            && (!self.current.is_empty()
                || !self.queued.is_empty()
                || !self.commands.is_empty()
                || self.ended.is_some()
                || self.keyboard_ready)
    }

    fn read_input(&mut self, buf: &mut [u8]) -> io::Result<UserInput> {
        if self.current.is_empty() && self.queued.is_empty() {
            if let Some(end) = self.ended.take() {
                return end;
            }
            if let Some(done) = self.poll_keyboard()? {
                return Ok(done);
            }
        }
        if self.current.is_empty() {
            let Some(line) = self.queued.pop_front() else {
                return Ok(UserInput::Blocked);
            };
            // Over the wire a typed line is exactly the line plus "\n". The
            // editor thread already showed it in the transcript; a simple
            // terminal echoed it itself.
            self.current = line.into_bytes();
            self.current.push(b'\n');
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.drain(..n);
        self.room.sent += n as u64;
        Ok(UserInput::Data(n))
    }

    fn close_input(&mut self, _registry: &Registry) {
        self.input_open = false;
    }

    fn output_ready(&self) -> bool {
        self.output_open
    }

    fn write_output(&mut self, data: &[u8]) -> io::Result<usize> {
        self.room.received += data.len() as u64;
        self.incoming.extend_from_slice(data);
        let mut lines = self.take_lines(false);
        if !lines.is_empty() {
            if self.ring_now() {
                // The terminal turns it into a notification or a tab mark.
                lines.push('\x07');
            }
            self.last_activity = Instant::now();
        }
        self.show(&lines);
        Ok(data.len())
    }

    fn close_output(&mut self, _registry: &Registry) {
        let lines = self.take_lines(true);
        self.show(&lines);
        self.output_open = false;
    }

    fn output_open(&self) -> bool {
        self.output_open
    }

    fn notice(&mut self, notice: Notice<'_>) {
        match notice {
            Notice::Joined {
                name,
                peer,
                verify_code,
                authenticated_by,
                via_relay,
                ..
            } => {
                if let Some(n) = name {
                    self.peer_name = n.to_string();
                }
                self.room.peer = Some(peer);
                self.room.verify_code = verify_code.map(str::to_string);
                self.room.authenticated_by = authenticated_by;
                self.room.via_relay = via_relay.map(str::to_string);
                self.last_activity = Instant::now();
                for line in notice::joined_lines(&notice, notice::Joined::JoinedFrom) {
                    self.show_notice(&line);
                }
                self.start_editor();
            }
            other => {
                match other {
                    Notice::PeerLeft { .. } => self.peer_left = true,
                    Notice::ConnectionLost { .. } => self.down.store(true, Ordering::SeqCst),
                    Notice::Reconnected { .. } => {
                        self.room.resumes += 1;
                        self.down.store(false, Ordering::SeqCst)
                    }
                    Notice::PlainWarning => self.room.plain = true,
                    _ => {}
                }
                // What the peer does is part of the chat, even with -q, and
                // so are the files.
                let chat = matches!(
                    other,
                    Notice::PeerDone { .. }
                        | Notice::PeerLeft { .. }
                        | Notice::FileOffered { .. }
                        | Notice::FileOffering { .. }
                        | Notice::FileEnded { .. }
                        | Notice::FileNote { .. }
                );
                if chat || !self.quiet || other.essential() {
                    // A transfer's summary takes the place of the progress
                    // line if that is still the last row: no stale figures
                    // above it (the next progress line, if any, is new).
                    let mut over = "";
                    if matches!(other, Notice::FileEnded { .. }) && self.printer.is_some() {
                        over = self.progress.give_way(self.editor_drawn());
                    }
                    for line in notice::lines(&other) {
                        self.show_notice_after(over, &line);
                        over = "";
                    }
                }
            }
        }
    }

    fn poll_command(&mut self) -> Option<FileCommand> {
        if self.commands.is_empty() {
            // Typed while the session took no input (its buffer full).
            self.pump_keyboard();
        }
        self.commands.pop_front()
    }

    fn asks_about_files(&self) -> bool {
        true
    }

    fn file_progress(&mut self, line: Option<&str>) {
        let Some(line) = line else {
            self.progress.idle();
            return;
        };
        let drawn = self.editor_drawn();
        let now = Instant::now();
        let shown = match self.printer.as_mut() {
            Some(p) => match self
                .progress
                .redraw(line, columns(), drawn, now, self.style)
            {
                Some(text) => p.print(format!("{text}\n")).is_ok(),
                None => true,
            },
            None => false,
        };
        if !shown {
            // No line editor to draw above: a plain line now and then.
            if let Some(text) = self.progress.plain(line, columns(), now, self.style) {
                self.show(&text);
            }
        }
    }

    fn finish(&mut self) {
        let rest = self.take_lines(true);
        self.show(&rest);
        if let Some(p) = self.printer.as_mut() {
            // Stopping readline drops a message still waiting in the
            // printer's one-slot channel. Sending this no-op (cursor up,
            // newline) returns only once everything before it was taken
            // and drawn; if it is the one dropped, nothing is lost.
            let _ = p.print(PRINTER_BARRIER.to_string());
        }
        self.interrupts.mute();
        let mut draft = String::new();
        if let Keyboard::Editor(_, Some(running)) = &mut self.keyboard {
            draft = running.draft();
            if self.peer_left && !self.keep {
                // Let the user read the screen: a key, or a short pause.
                let _ = self.printer.as_mut().map(|p| {
                    p.print(format!(
                        "{}\n",
                        self.style
                            .notice("the room is closed: press any key to leave")
                    ))
                });
                let keys = running.keys();
                let give_up = std::time::Instant::now() + LEAVE_PAUSE;
                while std::time::Instant::now() < give_up && running.keys() == keys {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            running.stop();
            // Lines typed after the peer left can still be in the channel.
            while let Ok(typed) = running.try_recv() {
                if let Typed::Line(l) = typed {
                    if let command::Typed::Message(text) = command::Typed::of(&l) {
                        self.queued.push_back(text);
                    }
                }
            }
        }
        self.printer = None;
        if let Some(t) = self.saved_termios {
            restore_termios(&t);
        }
        let mut undelivered: Vec<String> = Vec::new();
        if !self.current.is_empty() {
            undelivered.push(
                String::from_utf8_lossy(&self.current)
                    .trim_end()
                    .to_string(),
            );
        }
        undelivered.extend(self.queued.drain(..));
        if !draft.trim().is_empty() {
            undelivered.push(draft);
        }
        for line in undelivered {
            let text = self.style.notice(&format!(
                "not delivered: {}",
                crate::frontend::sanitize::line(line.as_bytes())
            ));
            let _ = writeln!(io::stderr(), "{text}");
        }
    }
}

/// Reads the terminal in cooked mode into `got`, as lines (`partial`
/// holds the start of one), or `Eof` for Ctrl-D or a hung-up terminal.
/// Returns false when there was nothing to read.
fn read_lines(
    tty: &mut stdio::Stdin,
    partial: &mut Vec<u8>,
    got: &mut Vec<Typed>,
) -> io::Result<bool> {
    let mut buf = [0u8; 4096];
    match tty.read(&mut buf) {
        Ok(0) => {
            // Ctrl-D: a last unterminated line still goes out.
            if !partial.is_empty() {
                got.push(Typed::Line(String::from_utf8_lossy(partial).into_owned()));
                partial.clear();
            }
            got.push(Typed::Eof);
        }
        Ok(n) => {
            partial.extend_from_slice(&buf[..n]);
            while let Some(i) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=i).collect();
                got.push(Typed::Line(
                    String::from_utf8_lossy(&line[..i]).into_owned(),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            tty.ready = false;
            return Ok(false);
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        // A hung-up terminal: leaving, like Ctrl-D.
        Err(e) if crate::sys::process::is_hangup(&e) => got.push(Typed::Eof),
        Err(e) => return Err(e),
    }
    Ok(true)
}

/// Returns true if and only if our terminal hung up (its window closed).
fn terminal_gone() -> bool {
    crate::sys::terminal::stdin_hung_up()
}

/// The rows of a status line `cols` wide: each of its lines wrapped at
/// spaces, continuation rows indented by the same two columns a message's
/// would be at its narrowest.
fn notice_rows(text: &str, cols: usize) -> Vec<String> {
    let indent = " ".repeat(transcript::indent_width(0, cols));
    let mut rows = Vec::new();
    for line in text.split('\n') {
        for (i, row) in transcript::wrap(line, 0, cols).into_iter().enumerate() {
            rows.push(if i == 0 {
                row
            } else {
                format!("{indent}{row}")
            });
        }
    }
    rows
}

fn saved_termios() -> Option<crate::sys::terminal::Mode> {
    crate::sys::terminal::Mode::of_stdin()
}

/// Puts the terminal back as we found it and turns bracketed paste off.
fn restore_termios(t: &crate::sys::terminal::Mode) {
    t.restore_stdin();
    let _ = io::stdout().write_all(b"\x1b[?2004l");
    let _ = io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::notice_rows;

    #[test]
    fn status_lines_wrap_at_spaces_with_an_indent() {
        let rows = notice_rows(
            "only this machine can dial it: p2pchat dial 127.0.0.1 51423",
            30,
        );
        assert_eq!(
            rows,
            [
                "only this machine can dial it:",
                "  p2pchat dial 127.0.0.1 51423"
            ]
        );
        assert_eq!(notice_rows("a\nb", 30), ["a", "b"]);
    }

    #[test]
    fn help_is_a_list_one_command_a_row() {
        let rows = notice_rows(super::command::HELP, 80);
        assert_eq!(
            rows.len(),
            super::command::HELP.lines().count(),
            "{rows:#?}"
        );
        assert!(rows
            .iter()
            .any(|r| r == "/send PATH        offers a file (Tab completes the path)"));
    }
}
