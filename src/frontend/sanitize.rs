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
    /// The last character rendered: an emoji sequence may go on.
    prev: Option<char>,
}

impl Sanitizer {
    /// Renders `data`, keeping an incomplete trailing UTF-8 sequence for the
    /// next call. `\n` and `\t` pass through.
    pub fn push(&mut self, data: &[u8], out: &mut String) {
        self.carry.extend_from_slice(data);
        // A CR at the end may be the first half of a CRLF line ending.
        let cr = usize::from(self.carry.last() == Some(&b'\r'));
        let mut keep = incomplete_tail(&self.carry).max(cr);
        // A joiner at the end waits for the emoji it may join.
        if self.carry[..self.carry.len() - keep].ends_with("\u{200d}".as_bytes()) {
            keep += 3;
        }
        let split = self.carry.len() - keep;
        self.render_carry(split, out);
    }

    /// Renders whatever is held back (at the end of the stream).
    pub fn flush(&mut self, out: &mut String) {
        self.render_carry(self.carry.len(), out);
    }

    fn render_carry(&mut self, split: usize, out: &mut String) {
        let done = &self.carry[..split];
        render_after(self.prev, done, out);
        if let Some(last) = String::from_utf8_lossy(done).chars().next_back() {
            self.prev = Some(last);
        }
        self.carry.drain(..split);
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
    render_after(None, bytes, out);
}

/// As [`render`], with `prev` the character rendered just before (the
/// emoji sequence it may continue).
fn render_after(mut prev: Option<char>, bytes: &[u8], out: &mut String) {
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' && chars.peek() == Some(&'\n') {
            continue;
        }
        if in_emoji(prev, c, chars.peek().copied()) {
            out.push(c);
        } else {
            push_char(c, out);
        }
        prev = Some(c);
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
    let text = String::from_utf8_lossy(bytes);
    let mut chars = text.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        if c == '\n' {
            out.push_str("^J");
        } else if in_emoji(prev, c, chars.peek().copied()) {
            out.push(c);
        } else {
            push_char(c, &mut out);
        }
        prev = Some(c);
    }
    out
}

const ZWJ: char = '\u{200d}';
const VS15: char = '\u{fe0e}';
const VS16: char = '\u{fe0f}';

/// Whether `c`, invisible on its own, is part of an emoji sequence here and
/// so is shown as it is: a variation selector right after a pictograph or
/// a keycap base (❤️, 1️⃣), and a zero-width joiner between two emoji
/// (👩‍💻, 🏳️‍🌈, 👨‍👩‍👧). Anywhere else it stays `<U+…>`: it could hide text.
fn in_emoji(prev: Option<char>, c: char, next: Option<char>) -> bool {
    let Some(prev) = prev else {
        return false;
    };
    match c {
        VS15 | VS16 => pictographic(prev) || matches!(prev, '0'..='9' | '#' | '*'),
        ZWJ => {
            (pictographic(prev) || prev == VS16 || skin_tone(prev))
                && next.is_some_and(pictographic)
        }
        _ => false,
    }
}

/// The Fitzpatrick skin-tone modifiers (👍🏽).
fn skin_tone(c: char) -> bool {
    ('\u{1f3fb}'..='\u{1f3ff}').contains(&c)
}

/// Unicode's Extended_Pictographic property (emoji-data.txt, Unicode 15):
/// the characters emoji sequences are built from.
fn pictographic(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00a9, 0x00a9),
        (0x00ae, 0x00ae),
        (0x203c, 0x203c),
        (0x2049, 0x2049),
        (0x2122, 0x2122),
        (0x2139, 0x2139),
        (0x2194, 0x2199),
        (0x21a9, 0x21aa),
        (0x231a, 0x231b),
        (0x2328, 0x2328),
        (0x2388, 0x2388),
        (0x23cf, 0x23cf),
        (0x23e9, 0x23f3),
        (0x23f8, 0x23fa),
        (0x24c2, 0x24c2),
        (0x25aa, 0x25ab),
        (0x25b6, 0x25b6),
        (0x25c0, 0x25c0),
        (0x25fb, 0x25fe),
        (0x2600, 0x2605),
        (0x2607, 0x2612),
        (0x2614, 0x2685),
        (0x2690, 0x2705),
        (0x2708, 0x2712),
        (0x2714, 0x2714),
        (0x2716, 0x2716),
        (0x271d, 0x271d),
        (0x2721, 0x2721),
        (0x2728, 0x2728),
        (0x2733, 0x2734),
        (0x2744, 0x2744),
        (0x2747, 0x2747),
        (0x274c, 0x274c),
        (0x274e, 0x274e),
        (0x2753, 0x2755),
        (0x2757, 0x2757),
        (0x2763, 0x2767),
        (0x2795, 0x2797),
        (0x27a1, 0x27a1),
        (0x27b0, 0x27b0),
        (0x27bf, 0x27bf),
        (0x2934, 0x2935),
        (0x2b05, 0x2b07),
        (0x2b1b, 0x2b1c),
        (0x2b50, 0x2b50),
        (0x2b55, 0x2b55),
        (0x3030, 0x3030),
        (0x303d, 0x303d),
        (0x3297, 0x3297),
        (0x3299, 0x3299),
        (0x1f000, 0x1f0ff),
        (0x1f10d, 0x1f10f),
        (0x1f12f, 0x1f12f),
        (0x1f16c, 0x1f171),
        (0x1f17e, 0x1f17f),
        (0x1f18e, 0x1f18e),
        (0x1f191, 0x1f19a),
        (0x1f1ad, 0x1f1e5),
        (0x1f201, 0x1f20f),
        (0x1f21a, 0x1f21a),
        (0x1f22f, 0x1f22f),
        (0x1f232, 0x1f23a),
        (0x1f23c, 0x1f23f),
        (0x1f249, 0x1f3fa),
        (0x1f400, 0x1f53d),
        (0x1f546, 0x1f64f),
        (0x1f680, 0x1f6ff),
        (0x1f774, 0x1f77f),
        (0x1f7d5, 0x1f7ff),
        (0x1f80c, 0x1f80f),
        (0x1f848, 0x1f84f),
        (0x1f85a, 0x1f85f),
        (0x1f888, 0x1f88f),
        (0x1f8ae, 0x1f8ff),
        (0x1f90c, 0x1f93a),
        (0x1f93c, 0x1f945),
        (0x1f947, 0x1faff),
        (0x1fc00, 0x1fffd),
    ];
    let c = c as u32;
    RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
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
    fn emoji_sequences_are_emoji_and_stray_joiners_are_shown() {
        for emoji in ["❤️", "👩‍💻", "🏳️‍🌈", "👨‍👩‍👧", "1️⃣", "👍🏽‍♂️", "🏴‍☠️"]
        {
            assert_eq!(line(emoji.as_bytes()), emoji);
            assert_eq!(
                line(format!("a {emoji} b").as_bytes()),
                format!("a {emoji} b")
            );
        }
        assert_eq!(line("x\u{fe0f}".as_bytes()), "x<U+FE0F>");
        assert_eq!(line("\u{fe0f}❤".as_bytes()), "<U+FE0F>❤");
        assert_eq!(line("a\u{200d}b".as_bytes()), "a<U+200D>b");
        assert_eq!(line("👩\u{200d}".as_bytes()), "👩<U+200D>");
        assert_eq!(
            line("👩\u{200d}\u{200d}💻".as_bytes()),
            "👩<U+200D><U+200D>💻"
        );
        assert_eq!(line("👩\u{200d}\u{202e}".as_bytes()), "👩<U+200D><U+202E>");
        // Split across reads, a sequence is still one.
        let bytes = "👩‍💻".as_bytes();
        for cut in 1..bytes.len() {
            let mut s = Sanitizer::default();
            let mut out = String::new();
            s.push(&bytes[..cut], &mut out);
            s.push(&bytes[cut..], &mut out);
            s.flush(&mut out);
            assert_eq!(out, "👩‍💻", "cut at {cut}");
        }
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
