//! How the chat room reads on screen: `12:03 bob: text`, notices, colors.
//! Colors are off with `NO_COLOR` or `TERM=dumb`.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::frontend::sanitize;

/// Styles for the transcript.
#[derive(Clone, Copy)]
pub struct Style {
    pub(super) color: bool,
}

const RESET: &str = "\x1b[0m";
const PEER: &str = "\x1b[1;36m";
const SELF: &str = "\x1b[1;32m";
const NOTICE: &str = "\x1b[33m";
const TIME: &str = "\x1b[2m";

impl Style {
    /// Colors unless the environment asks for none.
    pub fn from_env() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && !dumb_terminal(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// `12:03 bob: text` for a message; `ours` picks the name's color.
    /// We wrap it ourselves to `cols`, every continuation indented under
    /// the text, so no visual line of a message can begin where our own
    /// lines begin: a peer cannot pad its text to the edge and forge
    /// `12:03 alice: ...` on the next row.
    ///
    /// Our own message may be a block of several lines (a paste,
    /// Alt-Enter): each line starts a continuation row. The peer's never
    /// holds a newline (its lines are split where they arrive).
    pub fn message(&self, clock: &str, name: &str, text: &[u8], ours: bool, cols: usize) -> String {
        let prefix_width = clock.width() + 1 + name.width() + 2;
        let mut rows = Vec::new();
        if ours {
            for (i, line) in text.split(|&b| b == b'\n').enumerate() {
                let first = if i == 0 { prefix_width } else { 0 };
                let body = sanitize::line(line);
                rows.extend(wrap(
                    &body,
                    first.max(indent_width(prefix_width, cols)),
                    cols,
                ));
            }
        } else {
            rows = wrap(&sanitize::line(text), prefix_width, cols);
        }
        let indent = " ".repeat(indent_width(prefix_width, cols));
        let mut out = format!(
            "{} {}: {}",
            self.paint(TIME, clock),
            self.paint(if ours { SELF } else { PEER }, name),
            rows.first().map_or("", String::as_str)
        );
        for row in rows.iter().skip(1) {
            out.push('\n');
            out.push_str(&indent);
            out.push_str(row);
        }
        out
    }

    /// A notice about the room, e.g. `bob left the room`.
    pub fn notice(&self, text: &str) -> String {
        self.paint(NOTICE, text)
    }

    /// The prompt: our name and `> `. Colors would confuse the line
    /// editor's width arithmetic, so the prompt stays plain.
    pub fn prompt(name: &str) -> String {
        format!("{name}> ")
    }
}

/// How far continuation rows are indented: under the text, but never more
/// than half the width, so a narrow terminal still has room for text.
pub(super) fn indent_width(prefix_width: usize, cols: usize) -> usize {
    prefix_width.min(cols / 2).max(2)
}

/// Splits `body` into rows: the first fits after the prefix, the rest
/// after the indent; breaks at blanks, moving a word that does not fit to
/// the next row. Wide characters count as two columns.
///
/// A word longer than any row (a URL) is not cut: it is left whole on its
/// row, the terminal wraps it to the next rows as it does any long line
/// (so selecting it with the mouse gives it whole), and the text after it
/// starts a new, indented row. The rows the terminal starts at column 0
/// then hold part of that one word and nothing else: no blank, so nothing
/// a peer sends can read as `12:03 alice: ...` there either. A word with
/// wide characters (a run of CJK text) is cut and indented as before.
pub(super) fn wrap(body: &str, prefix_width: usize, cols: usize) -> Vec<String> {
    let cols = cols.max(8);
    let cont = cols.saturating_sub(indent_width(prefix_width, cols)).max(1);
    let mut rows = Vec::new();
    let mut row = String::new();
    let mut used = 0;
    let mut room = cols.saturating_sub(prefix_width).max(1);
    // A row ended by a long word: the next row starts after it.
    let mut after_long = false;
    for token in tokens(body) {
        let w = token.width();
        if token.starts_with(blank) {
            if used > 0 && used + w <= room {
                row.push_str(token);
                used += w;
            } else if used > 0 {
                // The blanks at a break are the break.
                rows.push(std::mem::take(&mut row));
                (used, room) = (0, cont);
            }
            continue;
        }
        if used + w <= room {
            row.push_str(token);
            used += w;
            continue;
        }
        if w <= cont || token.chars().any(|c| c.width() == Some(2)) {
            // A row of its own, or cut where rows end.
            if used > 0 {
                rows.push(std::mem::take(&mut row).trim_end().to_string());
                room = cont;
            }
            let mut rest = token;
            while rest.width() > room {
                let (head, tail) = split_at_width(rest, room);
                rows.push(head.to_string());
                rest = tail;
                room = cont;
            }
            row.push_str(rest);
            used = rest.width();
            continue;
        }
        // Longer than any row: whole, for the terminal to wrap.
        row.push_str(token);
        rows.push(std::mem::take(&mut row));
        (used, room) = (0, cont);
        after_long = true;
    }
    if !(after_long && row.is_empty()) || rows.is_empty() {
        rows.push(row.trim_end().to_string());
    }
    rows
}

/// Characters that show as blank space; words are what lies between.
fn blank(c: char) -> bool {
    c.is_whitespace() || c == '\u{2800}'
}

/// `body` as alternating runs of blanks and of other characters.
fn tokens(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_blank = None;
    for (i, c) in body.char_indices() {
        let b = blank(c);
        if in_blank.is_some_and(|prev| prev != b) {
            out.push(&body[start..i]);
            start = i;
        }
        in_blank = Some(b);
    }
    if start < body.len() {
        out.push(&body[start..]);
    }
    out
}

/// The longest head of `s` at most `cols` wide (at least one character),
/// and the rest.
fn split_at_width(s: &str, cols: usize) -> (&str, &str) {
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > cols {
            break;
        }
        used += w;
        cut = i + c.len_utf8();
    }
    if cut == 0 {
        cut = s.chars().next().map_or(s.len(), char::len_utf8);
    }
    s.split_at(cut)
}

/// The terminal's width in columns (80 when it cannot be asked).
pub fn columns() -> usize {
    crate::sys::terminal::columns().unwrap_or(80)
}

/// Returns true if and only if TERM is `dumb`, or unset where a terminal
/// always sets it: no colors, no line editor. The Windows console sets no
/// TERM and understands escape sequences once asked to
/// (`sys::terminal::enable_escapes`).
pub fn dumb_terminal() -> bool {
    match std::env::var("TERM") {
        Ok(t) => t == "dumb",
        Err(_) => !crate::sys::terminal::TERM_OPTIONAL,
    }
}

/// The local time as `HH:MM`.
pub fn clock() -> String {
    match crate::sys::terminal::local_time() {
        Some((hour, minute)) => format!("{hour:02}:{minute:02}"),
        None => "--:--".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_cannot_start_a_visual_line() {
        let style = Style { color: false };
        let forged = format!("{}12:03 alice: give me your password", "x".repeat(60));
        let shown = style.message("12:03", "bob", forged.as_bytes(), false, 80);
        let rows: Vec<&str> = shown.lines().collect();
        assert!(rows.len() >= 2, "{shown}");
        assert!(rows[0].starts_with("12:03 bob: "));
        for row in &rows[1..] {
            assert!(
                row.starts_with("           "),
                "continuations are indented: {row:?}"
            );
            assert!(row.chars().count() <= 80);
        }
        assert!(shown.contains("alice: give"));
    }

    #[test]
    fn a_word_longer_than_a_row_is_left_whole_for_the_terminal() {
        let url = format!("https://example.org/{}", "a".repeat(100));
        let rows = wrap(&format!("see {url} now"), 11, 40);
        assert_eq!(rows, vec![format!("see {url}"), "now".to_string()]);
        // The terminal's rows at column 0 hold only the word: no blank.
        let style = Style { color: false };
        let forged = format!("{}12:03\u{a0}alice:\u{2800}hi {}", "x".repeat(80), "y");
        let shown = style.message("12:03", "bob", forged.as_bytes(), false, 40);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        // What the terminal wraps holds no blank; the rest is indented.
        assert!(!lines[0]["12:03 bob: ".len()..].contains(blank), "{shown}");
        assert!(lines[1].starts_with("           alice:"), "{shown}");
    }

    #[test]
    fn wrapping_breaks_at_spaces_and_counts_wide_characters() {
        assert_eq!(wrap("one two three", 13, 24), vec!["one two", "three"]);
        // A word that fits on a row moves there whole.
        assert_eq!(wrap("a bcdefghij", 10, 20), vec!["a", "bcdefghij"]);
        let wide = wrap("李雷李雷李雷李雷李雷", 10, 20);
        assert!(wide.iter().all(|r| r.width() <= 10), "{wide:?}");
        assert_eq!(wide.concat(), "李雷李雷李雷李雷李雷");
    }

    #[test]
    fn messages_read_as_a_transcript_and_are_sanitised() {
        let plain = Style { color: false };
        assert_eq!(
            plain.message("12:03", "bob", b"hi \x1b[2J", false, 80),
            "12:03 bob: hi ^[[2J"
        );
        let colored = Style { color: true };
        assert!(colored
            .message("12:03", "bob", b"x", false, 80)
            .contains("\x1b[1;36mbob\x1b[0m"));
    }

    #[test]
    fn our_block_of_lines_is_one_message_with_continuation_rows() {
        let plain = Style { color: false };
        assert_eq!(
            plain.message("12:03", "alice", b"one\ntwo", true, 80),
            "12:03 alice: one\n             two"
        );
        // The peer's newline stays visible: its lines are split on arrival.
        assert_eq!(
            plain.message("12:03", "bob", b"one\ntwo", false, 80),
            "12:03 bob: one^Jtwo"
        );
    }

    #[test]
    fn the_clock_is_hours_and_minutes() {
        let c = clock();
        assert_eq!(c.len(), 5);
        assert_eq!(&c[2..3], ":");
    }
}
