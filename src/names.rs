//! Display names: our default name, sanitising names a peer sends us, and
//! addresses as people write them.

use std::net::{IpAddr, SocketAddr};

/// The longest name, in characters, that we send or show.
pub const MAX_NAME_CHARS: usize = 32;

/// Keeps printable characters only (no controls, no escape sequences, no
/// newlines, no `"`, which delimits names in notices), trims, and caps the
/// length. Invalid UTF-8 becomes U+FFFD.
pub fn sanitize(raw: &[u8]) -> String {
    let kept: String = printable(raw).chars().take(MAX_NAME_CHARS).collect();
    kept.trim().to_string()
}

/// Whether [`sanitize`] cuts `raw` short: it has more than
/// [`MAX_NAME_CHARS`] characters a name may hold.
pub fn too_long(raw: &[u8]) -> bool {
    printable(raw).chars().count() > MAX_NAME_CHARS
}

/// What a name may show of `raw`, trimmed, before the length cap.
fn printable(raw: &[u8]) -> String {
    let kept: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|c| !c.is_control() && !is_invisible(*c) && *c != '"')
        .collect();
    kept.trim().to_string()
}

/// Characters a terminal draws as nothing, uses to reorder text or may
/// take as a line break: bidi controls, zero-width and other invisible
/// format characters, the line and paragraph separators (U+2028, U+2029),
/// tag characters, Hangul fillers. A peer could hide or disguise text, or
/// start a line of its own, with them.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}' | '\u{ffa0}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}')
}

/// An address as people write it: IPv4-mapped IPv6 shown as IPv4.
pub fn display_addr(addr: SocketAddr) -> String {
    match unmapped(addr.ip()) {
        // Rebuilt only when mapped: a link-local address keeps its zone.
        ip @ IpAddr::V4(_) if addr.is_ipv6() => SocketAddr::new(ip, addr.port()).to_string(),
        _ => addr.to_string(),
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others as they
/// are.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `host:port`, with an IPv6 address in brackets: `[2001:db8::7]:51423`.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The user's login name, or "anonymous" when none can be found.
pub fn login_name() -> String {
    let from_env = ["USER", "LOGNAME"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|v| sanitize(v.as_encoded_bytes()))
        .find(|n| !n.is_empty());
    from_env
        .or_else(passwd_name)
        .unwrap_or_else(|| "anonymous".to_string())
}

fn passwd_name() -> Option<String> {
    crate::sys::process::login_name()
        .map(|name| sanitize(&name))
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_controls_and_escapes_and_keep_unicode() {
        assert_eq!(sanitize(b"bob\x1b[2J\n"), "bob[2J");
        assert_eq!(sanitize("  李雷 😀 ".as_bytes()), "李雷 😀");
        assert_eq!(sanitize(b"\xff\xfeab"), "\u{fffd}\u{fffd}ab");
        assert_eq!(sanitize("a\u{202e}b".as_bytes()), "ab");
        assert_eq!(sanitize(&[b'x'; 100]).len(), MAX_NAME_CHARS);
        assert!(too_long(&[b'x'; 33]) && !too_long(&[b'x'; 32]));
        assert!(!too_long(
            format!(" {} \u{202e}", "x".repeat(32)).as_bytes()
        ));
        assert_eq!(
            sanitize("\u{3164}".as_bytes()),
            "",
            "a Hangul filler is no name"
        );
        assert_eq!(sanitize("a\u{2066}b\u{e0041}c\u{ad}".as_bytes()), "abc");
        assert_eq!(
            sanitize("bo\u{2028}b\u{2029}".as_bytes()),
            "bob",
            "no line or paragraph separator in a name"
        );
    }
}
