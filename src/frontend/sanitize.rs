//! Makes peer bytes safe for a terminal: control characters and escape
//! sequences (CSI, OSC such as OSC 52 clipboard writes, cursor moves) are
//! shown visibly instead of executed; valid UTF-8 is kept intact; invalid
//! UTF-8 becomes U+FFFD. Used only when the output is a terminal: pipes and
//! files get the exact bytes.

/// A streaming sanitiser: a UTF-8 sequence split across two reads is held
/// back until it is complete.
#[derive(Default)]
pub struct Sanitizer {
    carry: Vec<u8>,
}

impl Sanitizer {
    /// Renders `data`, keeping an incomplete trailing UTF-8 sequence for the
    /// next call. `\n` and `\t` pass through.
    pub fn push(&mut self, data: &[u8], out: &mut String) {
        self.carry.extend_from_slice(data);
        // A CR at the end may be the first half of a CRLF line ending.
        let cr = usize::from(self.carry.last() == Some(&b'\r'));
        let keep = incomplete_tail(&self.carry).max(cr);
        let split = self.carry.len() - keep;
        render(&self.carry[..split], out);
        self.carry.drain(..split);
    }

    /// Renders whatever is held back (at the end of the stream).
    pub fn flush(&mut self, out: &mut String) {
        render(&self.carry, out);
        self.carry.clear();
    }
}

/// How many bytes at the end of `b` start a UTF-8 sequence that is not
/// complete yet (0 to 3).
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=3.min(b.len()) {
        let byte = b[b.len() - back];
        let need = match byte {
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf7 => 4,
            0x80..=0xbf => continue,
            _ => return 0,
        };
        return if need > back { back } else { 0 };
    }
    0
}

/// Renders bytes safely into `out`. A CR just before LF is part of the
/// line ending (a Windows or telnet peer), not a `^M`.
pub fn render(bytes: &[u8], out: &mut String) {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        push_char(c, out);
    }
}

/// One character, made visible if the terminal would act on it.
pub fn push_char(c: char, out: &mut String) {
    match c {
        '\n' | '\t' => out.push(c),
        '\u{1b}' => out.push_str("^["),
        '\u{7f}' => out.push_str("^?"),
        c if (c as u32) < 0x20 => {
            out.push('^');
            out.push((b'@' + c as u8) as char);
        }
        c if ('\u{80}'..='\u{9f}').contains(&c) => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        // Shown, not obeyed: `<U+202E>` instead of reversed text.
        c if crate::names::is_invisible(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
        c => out.push(c),
    }
}

/// A whole line, rendered safely (no newline allowed through).
pub fn line(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for c in String::from_utf8_lossy(bytes).chars() {
        if c == '\n' {
            out.push_str("^J");
        } else {
            push_char(c, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(b: &[u8]) -> String {
        let mut s = String::new();
        render(b, &mut s);
        s
    }

    #[test]
    fn strips_osc52_clipboard_payload_and_csi() {
        let evil = b"\x1b]52;c;ZXZpbA==\x07\x1b[2J\x1b[1Ahi";
        let shown = clean(evil);
        assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}'));
        assert_eq!(shown, "^[]52;c;ZXZpbA==^G^[[2J^[[1Ahi");
    }

    #[test]
    fn c1_controls_and_del_are_visible() {
        assert_eq!(clean("a\u{9b}31mb\u{7f}".as_bytes()), "a\\x9b31mb^?");
        assert_eq!(clean(b"\r\x08"), "^M^H");
    }

    #[test]
    fn unicode_is_intact_and_invalid_utf8_is_replaced() {
        assert_eq!(clean("你好 😀 e\u{301}".as_bytes()), "你好 😀 e\u{301}");
        assert_eq!(clean(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn a_split_utf8_sequence_survives_the_stream() {
        let bytes = "→x".as_bytes();
        let mut s = Sanitizer::default();
        let mut out = String::new();
        s.push(&bytes[..1], &mut out);
        s.push(&bytes[1..2], &mut out);
        assert_eq!(out, "");
        s.push(&bytes[2..], &mut out);
        assert_eq!(out, "→x");
        s.push(b"\xe2", &mut out);
        s.flush(&mut out);
        assert_eq!(out, "→x\u{fffd}");
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn bidi_and_invisible_characters_are_shown_not_obeyed() {
        let mut out = String::new();
        render("evil\u{202e}txt.exe \u{200b}x\u{3164}".as_bytes(), &mut out);
        assert_eq!(out, "evil<U+202E>txt.exe <U+200B>x<U+3164>");
        assert_eq!(
            line("a\u{2028}12:03 alice: hi\u{2029}b".as_bytes()),
            "a<U+2028>12:03 alice: hi<U+2029>b",
            "the line and paragraph separators are shown, not obeyed"
        );
    }

    #[test]
    fn crlf_is_a_line_ending_and_a_lone_cr_is_visible() {
        let mut s = Sanitizer::default();
        let mut out = String::new();
        s.push(b"windows\r", &mut out);
        s.push(b"\nline\rover", &mut out);
        s.flush(&mut out);
        assert_eq!(out, "windows\nline^Mover");
    }
}
