//! How the chat room reads on screen: `12:03 bob: text`, notices, colors.
//! Colors are off with `NO_COLOR` or `TERM=dumb`.

use crate::frontend::sanitize;

/// Styles for the transcript.
#[derive(Clone, Copy)]
pub struct Style {
    color: bool,
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
    pub fn message(&self, clock: &str, name: &str, text: &[u8], ours: bool) -> String {
        format!(
            "{} {}: {}",
            self.paint(TIME, clock),
            self.paint(if ours { SELF } else { PEER }, name),
            sanitize::line(text)
        )
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

/// Returns true if and only if TERM is unset or `dumb`: no colors, no
/// line editor.
pub fn dumb_terminal() -> bool {
    std::env::var("TERM").map_or(true, |t| t == "dumb")
}

/// The local time as `HH:MM`.
pub fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r fills the struct from a valid time_t; tm is plain data.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        return "--:--".into();
    }
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_a_transcript_and_are_sanitised() {
        let plain = Style { color: false };
        assert_eq!(
            plain.message("12:03", "bob", b"hi \x1b[2J", false),
            "12:03 bob: hi ^[[2J"
        );
        let colored = Style { color: true };
        assert!(colored
            .message("12:03", "bob", b"x", false)
            .contains("\x1b[1;36mbob\x1b[0m"));
    }

    #[test]
    fn the_clock_is_hours_and_minutes() {
        let c = clock();
        assert_eq!(c.len(), 5);
        assert_eq!(&c[2..3], ":");
    }
}
