//! The file progress line: one row just above the prompt, redrawn in place
//! for as long as nothing else was printed below it.

use std::time::{Duration, Instant};

use unicode_width::UnicodeWidthChar;

use super::transcript::Style;

/// Up a row and clear it: the new progress line replaces the old one.
pub const ERASE_ROW_ABOVE: &str = "\x1b[1A\x1b[2K";

/// Redraws closer together than this are skipped: the screen cannot show
/// them, and each one waits for the editor thread to draw it.
const MIN_GAP: Duration = Duration::from_millis(100);

/// Without a line editor, a progress line is a new line: one this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct ProgressLine {
    /// The last progress line drawn: the editor's count of rows it drew
    /// itself then (its own messages), and when. None once anything else
    /// was printed: the next progress line is a fresh row.
    last: Option<(usize, Instant)>,
    /// No transfer runs any more (`file_progress(None)`): the next progress
    /// line is a fresh row, though the last one is still the last row.
    idle: bool,
    /// When the last plain progress line was shown.
    plain_at: Option<Instant>,
}

impl ProgressLine {
    /// What to print (above the prompt) for `line`, on a terminal `cols`
    /// wide, when the editor has drawn `drawn` rows of its own so far:
    /// the row, replacing the last progress line if that is still the
    /// last row printed. None: too soon after the last one, skipped.
    pub fn redraw(
        &mut self,
        line: &str,
        cols: usize,
        drawn: usize,
        now: Instant,
        style: Style,
    ) -> Option<String> {
        let replace = match self.last {
            Some((d, at)) if d == drawn && !self.idle => {
                if now.saturating_duration_since(at) < MIN_GAP {
                    return None;
                }
                true
            }
            _ => false,
        };
        self.last = Some((drawn, now));
        self.idle = false;
        let row = style.notice(&fit(line, cols));
        Some(if replace {
            format!("{ERASE_ROW_ABOVE}{row}")
        } else {
            row
        })
    }

    /// Something else was printed: the progress line on screen stays as
    /// it is, and the next one starts a new row.
    pub fn interrupted(&mut self) {
        self.last = None;
    }

    /// No transfer runs any more: the next progress line starts a new
    /// row, but a summary printed before anything else may still take the
    /// last one's place ([`give_way`](Self::give_way)).
    pub fn idle(&mut self) {
        self.idle = true;
    }

    /// A line that ends a transfer is about to be printed: it may take
    /// the progress line's row if that is still the last row (`drawn` as
    /// for [`redraw`](Self::redraw)). Returns what to print before it to
    /// erase that row, or nothing; either way the next progress line is a
    /// fresh row.
    pub fn give_way(&mut self, drawn: usize) -> &'static str {
        let last = matches!(self.last, Some((d, _)) if d == drawn);
        self.last = None;
        if last {
            ERASE_ROW_ABOVE
        } else {
            ""
        }
    }

    /// Without a line editor (`TERM=dumb`): the line as a new line, now
    /// and then. None: not now.
    pub fn plain(&mut self, line: &str, cols: usize, now: Instant, style: Style) -> Option<String> {
        if self
            .plain_at
            .is_some_and(|at| now.saturating_duration_since(at) < PLAIN_EVERY)
        {
            return None;
        }
        self.plain_at = Some(now);
        Some(style.notice(&fit(line, cols)))
    }
}

/// `line` made safe and cut to one row of a terminal `cols` wide, short of
/// the last column (where a terminal would wrap or hold the cursor).
pub fn fit(line: &str, cols: usize) -> String {
    let room = cols.saturating_sub(1).max(1);
    let safe = crate::frontend::sanitize::line(line.as_bytes());
    let mut out = String::new();
    let mut used = 0;
    for c in safe.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Style = Style { color: false };

    #[test]
    fn a_progress_line_replaces_the_last_one_only_while_it_is_the_last_row() {
        let mut p = ProgressLine::default();
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            p.redraw("#1 10%", 80, 0, s(0), PLAIN).as_deref(),
            Some("#1 10%")
        );
        assert_eq!(
            p.redraw("#1 20%", 80, 0, s(1000), PLAIN).as_deref(),
            Some("\x1b[1A\x1b[2K#1 20%")
        );
        // Another line printed in between: the next one is a fresh row.
        p.interrupted();
        assert_eq!(
            p.redraw("#1 30%", 80, 0, s(2000), PLAIN).as_deref(),
            Some("#1 30%")
        );
        // The editor drew one of our messages in between: fresh too.
        assert_eq!(
            p.redraw("#1 40%", 80, 1, s(3000), PLAIN).as_deref(),
            Some("#1 40%")
        );
        assert_eq!(
            p.redraw("#1 50%", 80, 1, s(4000), PLAIN).as_deref(),
            Some("\x1b[1A\x1b[2K#1 50%")
        );
        // The transfers ended: the chain ends, the line stays.
        p.idle();
        assert_eq!(
            p.redraw("#2 1%", 80, 1, s(5000), PLAIN).as_deref(),
            Some("#2 1%")
        );
        assert_eq!(
            p.redraw("#2 2%", 80, 1, s(6000), PLAIN).as_deref(),
            Some("\x1b[1A\x1b[2K#2 2%")
        );
    }

    #[test]
    fn a_summary_takes_the_progress_row_only_while_it_is_the_last_row() {
        let mut p = ProgressLine::default();
        let t0 = Instant::now();
        assert_eq!(p.give_way(0), "", "no progress line yet");
        assert!(p.redraw("#1 10%", 80, 0, t0, PLAIN).is_some());
        assert_eq!(p.give_way(0), ERASE_ROW_ABOVE);
        // The chain ended with it: the next progress line is a fresh row.
        assert_eq!(p.give_way(0), "");
        assert_eq!(
            p.redraw("#2 5%", 80, 0, t0, PLAIN).as_deref(),
            Some("#2 5%")
        );
        // Our message drawn by the editor since: it stays.
        assert_eq!(p.give_way(1), "");
        assert!(p.redraw("#2 6%", 80, 1, t0, PLAIN).is_some());
        p.interrupted();
        assert_eq!(p.give_way(1), "");
        // No transfer runs any more, and nothing was printed since the last
        // progress line: the summary that follows still takes its row.
        assert!(p.redraw("#3 99%", 80, 1, t0, PLAIN).is_some());
        p.idle();
        assert_eq!(p.give_way(1), ERASE_ROW_ABOVE);
    }

    #[test]
    fn redraws_too_close_together_are_skipped_but_a_fresh_row_never_is() {
        let mut p = ProgressLine::default();
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        assert!(p.redraw("a", 80, 0, s(0), PLAIN).is_some());
        assert_eq!(p.redraw("b", 80, 0, s(50), PLAIN), None);
        assert!(p.redraw("c", 80, 0, s(100), PLAIN).is_some());
        p.interrupted();
        assert_eq!(p.redraw("d", 80, 0, s(101), PLAIN).as_deref(), Some("d"));
    }

    #[test]
    fn the_line_is_cut_to_one_row_short_of_the_last_column() {
        assert_eq!(fit("abcdefghij", 6), "abcde");
        assert_eq!(fit("abc", 80), "abc");
        // A wide character that would reach the last column waits outside.
        assert_eq!(fit("ab字字", 6), "ab字");
        assert_eq!(fit("abc", 0), "a");
        // Nothing in it can move the cursor.
        assert!(!fit("a\nb\x1b[2Jc", 80).contains(['\n', '\x1b']));
        let mut p = ProgressLine::default();
        let row = p.redraw(&"x".repeat(200), 40, 0, Instant::now(), PLAIN);
        assert_eq!(row.map(|r| r.len()), Some(39));
    }

    #[test]
    fn without_an_editor_a_plain_line_is_shown_now_and_then() {
        let mut p = ProgressLine::default();
        let t0 = Instant::now();
        assert_eq!(p.plain("a", 80, t0, PLAIN).as_deref(), Some("a"));
        assert_eq!(p.plain("b", 80, t0 + Duration::from_secs(1), PLAIN), None);
        assert_eq!(
            p.plain("c", 80, t0 + PLAIN_EVERY, PLAIN).as_deref(),
            Some("c")
        );
    }
}
