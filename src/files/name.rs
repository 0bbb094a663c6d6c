//! File names a peer offers, made harmless: the name a file is saved
//! under ([`safe_name`]), the name as shown in a notice ([`display`]), and
//! the name tried when one is taken ([`numbered`]). Pure: no I/O.

use crate::names::is_invisible;

/// The longest file name, in bytes, that the common file systems take
/// (ext4, APFS, NTFS counts UTF-16 units, which is never fewer).
pub const MAX_NAME_BYTES: usize = 255;

/// An extension up to this long (in bytes, its dot included) is kept when
/// a name is cut to [`MAX_NAME_BYTES`] or numbered.
const MAX_KEPT_EXTENSION: usize = 16;

/// The name used when nothing of the offered one is left.
const FALLBACK: &str = "file";

/// Characters Windows forbids in a name (besides controls and the path
/// separators, which never get this far).
const WINDOWS_FORBIDDEN: &[char] = &['<', '>', ':', '"', '|', '?', '*'];

/// Two-part extensions kept whole by [`numbered`].
const DOUBLE_EXTENSIONS: &[&str] = &[".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst"];

/// The name under which a file a peer offered as `offered` is saved in
/// the target directory. The rules, in order:
///
/// 1. Invalid UTF-8 becomes U+FFFD.
/// 2. Only the base name is used: the offer is split on both `/` and `\`
///    and the last non-empty part is kept, so `../../etc/passwd` is
///    `passwd`, `/abs/x` is `x` and `C:\Windows\x.dll` is `x.dll`.
/// 3. Control characters (NUL, C0, DEL, C1) become `_`; bidi controls and
///    invisible characters ([`is_invisible`]) are removed, so
///    `"\u{202e}gpj.exe"` is saved as the `gpj.exe` it really is.
/// 4. Characters Windows forbids, `< > : " | ? *`, become `_`.
/// 5. Trailing dots and spaces are removed (Windows drops them itself, so
///    `x.txt.` would silently become `x.txt`). This also makes `.` and
///    `..` empty.
/// 6. A name that starts with a dot gets a `_` in front: `.bashrc` is
///    `_.bashrc`, never a hidden file, and never one of our temporary
///    names (which start with a dot).
/// 7. A Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
///    `LPT0`–`LPT9`, `COM¹²³`, `LPT¹²³`, `CONIN$`, `CONOUT$`, `CLOCK$`), in
///    any case and with any extension (`con.txt`, `Com1`, `nul.tar.gz`),
///    gets a `_` in front.
/// 8. The result is cut to at most [`MAX_NAME_BYTES`] bytes at a character
///    boundary; an extension of up to 16 bytes (dot included) is kept and
///    the part before it shortened instead.
/// 9. An empty result is `file`.
///
/// The result is never empty, `.` or `..`, holds no `/`, `\`, NUL or
/// control character, and is no Windows device name.
pub fn safe_name(offered: &[u8]) -> String {
    let lossy = String::from_utf8_lossy(offered);
    let base = lossy
        .split(['/', '\\'])
        .rev()
        .find(|part| !part.is_empty())
        .unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| {
            if c.is_control() || WINDOWS_FORBIDDEN.contains(&c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let mut name = cut(&strip_trailing(&cleaned), MAX_NAME_BYTES);
    if name.starts_with('.') || is_windows_reserved(&name) {
        // `_` plus a name cut one byte shorter stays within the limit.
        name = format!("_{}", cut(&name, MAX_NAME_BYTES - 1));
    }
    if name.is_empty() {
        name = FALLBACK.to_string();
    }
    name
}

/// `name` cut to at most `max` bytes at a character boundary, a short
/// extension kept, without trailing dots or spaces.
fn cut(name: &str, max: usize) -> String {
    if name.len() <= max {
        return strip_trailing(name);
    }
    let (stem, extension) = match short_extension(name) {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    let stem = prefix(stem, max - extension.len());
    strip_trailing(&format!("{stem}{extension}"))
}

/// The byte index of `name`'s extension (its last dot) when there is one
/// of at most [`MAX_KEPT_EXTENSION`] bytes after a non-empty stem.
fn short_extension(name: &str) -> Option<usize> {
    name.rfind('.')
        .filter(|&i| i > 0 && name.len() - i <= MAX_KEPT_EXTENSION)
}

/// The longest prefix of `s` of at most `max` bytes that ends at a
/// character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` without trailing dots and spaces.
fn strip_trailing(s: &str) -> String {
    s.trim_end_matches(['.', ' ']).to_string()
}

/// Whether Windows takes `name` for a device: a device name, in any case,
/// alone or before a dot (`con`, `CON.txt`, `nul.tar.gz`); spaces before
/// the dot do not help (`CON .txt`).
fn is_windows_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = stem.to_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" | "CLOCK$" => true,
        _ => {
            let mut chars = upper.chars();
            let head: String = chars.by_ref().take(3).collect();
            let tail: Vec<char> = chars.collect();
            (head == "COM" || head == "LPT")
                && matches!(tail.as_slice(), [d] if d.is_ascii_digit() || matches!(d, '¹' | '²' | '³'))
        }
    }
}

/// `name`, which a peer sent, for showing inside quotes on one line:
/// control characters, bidi controls and invisible characters are shown
/// as `<U+202E>`-style escapes, and `"` as `<U+0022>`, so the quotes
/// always delimit the name; everything else is shown as it is.
pub fn display(name: &str) -> String {
    let mut shown = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() || is_invisible(c) || c == '"' {
            shown.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// The `n`th other name for `name` when `name` is taken: `report.pdf`, 1
/// is `report (1).pdf`; `archive.tar.gz`, 2 is `archive (2).tar.gz` (the
/// two-part extensions `.tar.gz`, `.tar.bz2`, `.tar.xz`, `.tar.zst` stay
/// whole); `notes`, 3 is `notes (3)`. A leading dot starts no extension
/// (`.profile`, 1 is `.profile (1)`), and neither does a last part longer
/// than 16 bytes. The result stays within [`MAX_NAME_BYTES`]: the part
/// before the number is shortened when needed.
pub fn numbered(name: &str, n: u32) -> String {
    let lower = name.to_ascii_lowercase();
    let double = DOUBLE_EXTENSIONS
        .iter()
        .find(|ext| lower.len() > ext.len() && lower.ends_with(*ext))
        .map(|ext| name.len() - ext.len());
    let (stem, extension) = match double.or_else(|| short_extension(name)) {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    let number = format!(" ({n})");
    let room = MAX_NAME_BYTES.saturating_sub(number.len() + extension.len());
    format!("{}{number}{extension}", prefix(stem, room))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What every saved name must be, whatever the peer sent.
    fn assert_safe(name: &str) {
        assert!(!name.is_empty(), "empty name");
        assert!(name != "." && name != "..", "{name:?} is a directory");
        assert!(!name.starts_with('.'), "{name:?} is hidden");
        assert!(name.len() <= MAX_NAME_BYTES, "{name:?} is too long");
        assert!(
            !name.ends_with(['.', ' ']),
            "{name:?} ends in a dot or space"
        );
        assert!(
            !name.contains(['/', '\\', '\0']),
            "{name:?} holds a separator or NUL"
        );
        assert!(
            !name
                .chars()
                .any(|c| c.is_control() || is_invisible(c) || WINDOWS_FORBIDDEN.contains(&c)),
            "{name:?} holds a control, invisible or forbidden character"
        );
        assert!(!is_windows_reserved(name), "{name:?} is a Windows device");
    }

    #[test]
    fn only_the_base_name_is_used() {
        assert_eq!(safe_name(b"../../etc/passwd"), "passwd");
        assert_eq!(safe_name(b"/abs/x"), "x");
        assert_eq!(safe_name(b"C:\\Windows\\x.dll"), "x.dll");
        assert_eq!(safe_name(b"dir/sub/"), "sub");
        assert_eq!(safe_name(b"a\\b/c\\d"), "d");
        assert_eq!(safe_name(b"report.pdf"), "report.pdf");
        assert_eq!(safe_name(b"C:x.dll"), "C_x.dll");
        assert_eq!(safe_name(b"\\\\?\\C:\\x"), "x");
    }

    #[test]
    fn dots_never_name_a_directory_or_a_hidden_file() {
        for offer in [
            &b""[..],
            b".",
            b"..",
            b"...",
            b"/",
            b"//",
            b"../..",
            b"x/..",
        ] {
            assert_eq!(safe_name(offer), "file", "{offer:?}");
        }
        assert_eq!(safe_name(b".bashrc"), "_.bashrc");
        assert_eq!(safe_name(b"../.ssh/.authorized_keys"), "_.authorized_keys");
        assert_eq!(safe_name(b"..x"), "_..x");
        assert_eq!(safe_name(b"x.txt."), "x.txt");
        assert_eq!(safe_name(b"x.txt . . "), "x.txt");
        assert_eq!(safe_name(b"   "), "file");
        assert_eq!(safe_name(b" x"), " x");
    }

    #[test]
    fn controls_and_invisible_characters_cannot_hide_anything() {
        assert_eq!(safe_name("\u{202e}gpj.exe".as_bytes()), "gpj.exe");
        assert_eq!(safe_name("photo\u{202e}gpj.exe".as_bytes()), "photogpj.exe");
        assert_eq!(safe_name("a\u{200b}b\u{feff}".as_bytes()), "ab");
        assert_eq!(safe_name(b"a\0b"), "a_b");
        assert_eq!(safe_name(b"a\nb\rc\td\x1b[2J"), "a_b_c_d_[2J");
        assert_eq!(safe_name("x\u{85}y\u{7f}".as_bytes()), "x_y_");
        assert_eq!(safe_name(b"\xff\xfe.txt"), "\u{fffd}\u{fffd}.txt");
        assert_eq!(safe_name("\u{200b}.bashrc".as_bytes()), "_.bashrc");
        assert_eq!(safe_name("\u{2028}".as_bytes()), "file");
    }

    #[test]
    fn windows_forbidden_characters_are_replaced() {
        assert_eq!(safe_name(b"a<b>c:d\"e|f?g*h"), "a_b_c_d_e_f_g_h");
        assert_eq!(safe_name(b"x.txt:stream"), "x.txt_stream");
    }

    #[test]
    fn windows_device_names_get_a_prefix() {
        for (offer, saved) in [
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("Com1", "_Com1"),
            ("lpt9.log", "_lpt9.log"),
            ("nul.tar.gz", "_nul.tar.gz"),
            ("AUX", "_AUX"),
            ("prn.", "_prn"),
            ("CON .txt", "_CON .txt"),
            ("COM¹", "_COM¹"),
            ("conout$", "_conout$"),
        ] {
            assert_eq!(safe_name(offer.as_bytes()), saved, "{offer}");
        }
        for fine in [
            "CONSOLE",
            "com10",
            "lpt",
            "COMA",
            "xcon",
            "con_x.txt",
            "LPT1x",
        ] {
            assert_eq!(safe_name(fine.as_bytes()), fine);
        }
    }

    #[test]
    fn long_names_are_cut_and_keep_a_short_extension() {
        let name = safe_name(format!("{}.pdf", "a".repeat(300)).as_bytes());
        assert_eq!(name.len(), MAX_NAME_BYTES);
        assert!(name.ends_with("aaa.pdf"));
        // A multi-byte character is never split.
        let name = safe_name(format!("{}.txt", "é".repeat(200)).as_bytes());
        assert!(name.len() <= MAX_NAME_BYTES && name.ends_with("é.txt"));
        assert_eq!(name.len(), 254);
        // An extension too long to keep is cut like the rest.
        let long_ext = format!("x.{}", "e".repeat(300));
        assert_eq!(safe_name(long_ext.as_bytes()).len(), MAX_NAME_BYTES);
        // The prefix of a hidden or device name does not push it over.
        let hidden = safe_name(format!(".{}", "h".repeat(300)).as_bytes());
        assert!(hidden.starts_with("_.h") && hidden.len() == MAX_NAME_BYTES);
        // A cut that leaves trailing dots or spaces loses them.
        let dotted = format!("x{}{}", ". ".repeat(200), "y".repeat(20));
        assert_eq!(safe_name(dotted.as_bytes()), "x");
    }

    #[test]
    fn display_shows_hidden_characters_as_escapes() {
        assert_eq!(display("report.pdf"), "report.pdf");
        assert_eq!(display("\u{202e}gpj.exe"), "<U+202E>gpj.exe");
        assert_eq!(display("a\"b"), "a<U+0022>b");
        assert_eq!(display("a\nb\x1b"), "a<U+000A>b<U+001B>");
        assert_eq!(display("x\u{e0041}"), "x<U+E0041>");
        assert_eq!(display("李雷 😀"), "李雷 😀");
    }

    #[test]
    fn numbered_names_keep_the_extension() {
        assert_eq!(numbered("report.pdf", 1), "report (1).pdf");
        assert_eq!(numbered("archive.tar.gz", 2), "archive (2).tar.gz");
        assert_eq!(numbered("a.TAR.ZST", 2), "a (2).TAR.ZST");
        assert_eq!(numbered("x.tar.bz2", 7), "x (7).tar.bz2");
        assert_eq!(numbered("notes", 3), "notes (3)");
        assert_eq!(numbered(".profile", 1), ".profile (1)");
        assert_eq!(numbered("_.bashrc", 1), "_ (1).bashrc");
        assert_eq!(numbered(".tar.gz", 1), ".tar (1).gz");
        assert_eq!(numbered("v1.2.3", 4), "v1.2 (4).3");
        let long = format!("{}.pdf", "a".repeat(251));
        let n = numbered(&long, 1000);
        assert_eq!(n.len(), MAX_NAME_BYTES);
        assert!(n.ends_with("a (1000).pdf"));
        let wide = format!("{}.md", "é".repeat(126));
        assert!(numbered(&wide, 1).len() <= MAX_NAME_BYTES);
        assert!(numbered(&wide, 1).ends_with("é (1).md"));
    }

    proptest! {
        #[test]
        fn any_offer_gives_a_safe_name(offer in proptest::collection::vec(any::<u8>(), 0..600)) {
            assert_safe(&safe_name(&offer));
        }

        #[test]
        fn any_text_offer_gives_a_safe_name(offer in "(\\PC|[./\\\\ \u{202e}\u{200b}\0\n]){0,300}") {
            assert_safe(&safe_name(offer.as_bytes()));
        }

        #[test]
        fn a_numbered_safe_name_is_safe(offer in "(\\PC|[./\\\\ ]){0,300}", n in any::<u32>()) {
            assert_safe(&numbered(&safe_name(offer.as_bytes()), n));
        }

        #[test]
        fn device_names_are_never_kept(
            device in "(?i)(con|prn|aux|nul|com[0-9]|lpt[0-9])",
            rest in "(\\.[a-z ]{0,5}){0,3}",
        ) {
            assert_safe(&safe_name(format!("{device}{rest}").as_bytes()));
        }

        #[test]
        fn display_shows_no_control_or_bidi_character(name in any::<String>()) {
            let shown = display(&name);
            prop_assert!(!shown.chars().any(|c| c.is_control() || is_invisible(c) || c == '"'));
        }
    }
}
