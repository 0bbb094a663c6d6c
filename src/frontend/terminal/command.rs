//! What a typed line is: a message, a command, or nothing to send. Both the
//! editor thread (which draws our own transcript line) and the room (which
//! acts on it) ask here, so the screen shows exactly what the peer gets.

use crate::driver::user::FileCommand;

/// One line typed at the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// A message for the peer: the line as sent (`//x` became `/x`).
    Message(String),
    Quit,
    Help,
    /// `/code`: the verify code again.
    Code,
    /// `/status`: the connection.
    Status,
    /// `/save FILE`: the transcript so far into a new file (the argument
    /// as typed, perhaps empty).
    Save(String),
    /// `/send`, `/accept`, `/reject`, `/cancel`, `/files`: for the room's
    /// files, handed to the driver.
    File(FileCommand),
    /// A file command written wrong: this line tells how; nothing is sent.
    Usage(String),
    /// `/something` we do not know: refused here, never sent.
    Unknown(String),
    /// An empty or blank line: nothing to send.
    Empty,
}

/// One command a row, the descriptions lined up (a notice keeps the
/// blanks inside a row, and wraps a row too long with an indent).
pub const HELP: &str = "\
commands (N: a transfer's number, left out when there is only one):
/send PATH        offers a file (Tab completes the path)
/accept [N]       takes an offer; /reject [N] turns it down
/cancel [N]       stops a transfer, either way
/files            lists the offers and transfers
/code             shows the verify code again
/status           shows the connection
/save FILE        writes the transcript so far to a new FILE
/help             shows this
/quit (or Ctrl-D, Ctrl-C) leaves the room
//text            sends a message that begins with /";

/// The hint for `/send` without a path.
pub const SEND_USAGE: &str =
    "/send needs a file: /send PATH (Tab completes it; quotes are optional); nothing was sent";

impl Typed {
    pub fn of(line: &str) -> Typed {
        if line.trim().is_empty() {
            return Typed::Empty;
        }
        if let Some(rest) = line.strip_prefix("//") {
            return Typed::Message(format!("/{rest}"));
        }
        let trimmed = line.trim();
        if let Some(file) = argument(trimmed, "/save") {
            return Typed::Save(file.to_string());
        }
        if let Some(path) = argument(trimmed, "/send") {
            let path = unquote(path);
            if path.is_empty() {
                return Typed::Usage(SEND_USAGE.into());
            }
            return Typed::File(FileCommand::Send(expand_home(path)));
        }
        for (cmd, make) in [
            (
                "/accept",
                FileCommand::Accept as fn(Option<u32>) -> FileCommand,
            ),
            ("/reject", FileCommand::Reject),
            ("/cancel", FileCommand::Cancel),
        ] {
            if let Some(arg) = argument(trimmed, cmd) {
                return match transfer_number(arg) {
                    Some(n) => Typed::File(make(n)),
                    None => Typed::Usage(number_usage(cmd, arg)),
                };
            }
        }
        if let Some(arg) = argument(trimmed, "/files") {
            return if arg.is_empty() {
                Typed::File(FileCommand::List)
            } else {
                Typed::Usage("/files takes nothing after it: it lists the offers and transfers; nothing was sent".into())
            };
        }
        match trimmed {
            "/quit" | "/exit" | "/q" => Typed::Quit,
            "/help" | "/?" => Typed::Help,
            "/code" => Typed::Code,
            "/status" => Typed::Status,
            cmd if cmd.starts_with('/') => {
                Typed::Unknown(cmd.split_whitespace().next().unwrap_or(cmd).to_string())
            }
            _ => Typed::Message(line.to_string()),
        }
    }

    /// The hint for an unknown command.
    pub fn hint(cmd: &str) -> String {
        let shown = crate::frontend::sanitize::line(cmd.as_bytes());
        format!("unknown command {shown}: nothing was sent; /help lists the commands, //{} sends it as a message", shown.trim_start_matches('/'))
    }
}

/// What follows `cmd` on a trimmed line, trimmed; None when the line is
/// another command (`/saved` is not `/save`).
fn argument<'a>(trimmed: &'a str, cmd: &str) -> Option<&'a str> {
    trimmed
        .strip_prefix(cmd)
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(str::trim)
}

/// A path written in matching single or double quotes, without them.
fn unquote(path: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = path.strip_prefix(q).and_then(|rest| rest.strip_suffix(q)) {
            return inner;
        }
    }
    path
}

/// The user's home directory: `HOME`, or `USERPROFILE` on Windows.
pub(super) fn home_dir() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    #[cfg(windows)]
    let home = home.or_else(|| std::env::var_os("USERPROFILE").filter(|h| !h.is_empty()));
    home.map(std::path::PathBuf::from)
}

/// `~/rest` as `$HOME/rest` (on Windows also `~\rest`); anything else,
/// or a home that is unknown or not UTF-8, as it is.
pub(super) fn expand_home(path: &str) -> String {
    let rest = path
        .strip_prefix("~/")
        .or_else(|| path.strip_prefix("~\\").filter(|_| cfg!(windows)));
    let Some(rest) = rest else {
        return path.to_string();
    };
    let rest = rest.trim_start_matches(['/', '\\']);
    home_dir()
        .map(|home| home.join(rest))
        .and_then(|p| p.into_os_string().into_string().ok())
        .unwrap_or_else(|| path.to_string())
}

/// The `N` of `/accept N`: none, or a positive number, perhaps written
/// `#N`. The outer None: anything else.
fn transfer_number(arg: &str) -> Option<Option<u32>> {
    if arg.is_empty() {
        return Some(None);
    }
    let digits = arg.strip_prefix('#').unwrap_or(arg);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|&n| n > 0).map(Some)
}

/// The hint for `/accept` (or `/reject`, `/cancel`) with a bad number.
fn number_usage(cmd: &str, arg: &str) -> String {
    let shown = crate::frontend::sanitize::line(arg.as_bytes());
    format!(
        "{cmd} takes the number of a transfer, as in {cmd} 2 or {cmd} #2, or nothing when \
         there is only one; not {shown}: nothing was sent"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_messages_and_escapes() {
        assert_eq!(Typed::of("/quit"), Typed::Quit);
        assert_eq!(Typed::of("  /help "), Typed::Help);
        assert_eq!(Typed::of("/qiut"), Typed::Unknown("/qiut".into()));
        assert_eq!(Typed::of("/me waves"), Typed::Unknown("/me".into()));
        assert_eq!(Typed::of("//quit"), Typed::Message("/quit".into()));
        assert_eq!(Typed::of("a /b"), Typed::Message("a /b".into()));
        assert_eq!(Typed::of("   "), Typed::Empty);
        assert_eq!(Typed::of("/code"), Typed::Code);
        assert_eq!(Typed::of(" /status "), Typed::Status);
        assert_eq!(
            Typed::of("/save  my chat.txt "),
            Typed::Save("my chat.txt".into())
        );
        assert_eq!(Typed::of("/save"), Typed::Save(String::new()));
        assert_eq!(Typed::of("/saved"), Typed::Unknown("/saved".into()));
        assert_eq!(Typed::of("//save x"), Typed::Message("/save x".into()));
        assert_eq!(Typed::of(""), Typed::Empty);
    }

    fn usage(line: &str) -> String {
        match Typed::of(line) {
            Typed::Usage(text) => text,
            other => panic!("{line:?} gave {other:?}, not a usage hint"),
        }
    }

    #[test]
    fn send_takes_the_rest_of_the_line_as_the_path() {
        let send = |p: &str| Typed::File(FileCommand::Send(p.into()));
        assert_eq!(Typed::of("/send report.pdf"), send("report.pdf"));
        assert_eq!(
            Typed::of("  /send   my report.pdf  "),
            send("my report.pdf")
        );
        assert_eq!(Typed::of("/send \"my report.pdf\""), send("my report.pdf"));
        assert_eq!(Typed::of("/send 'it''s.txt'"), send("it''s.txt"));
        assert_eq!(Typed::of("/send /tmp/a b/c"), send("/tmp/a b/c"));
        // Only a matching pair is taken off.
        assert_eq!(Typed::of("/send \"half.txt"), send("\"half.txt"));
        assert_eq!(Typed::of("/send 'a.txt\""), send("'a.txt\""));
        assert_eq!(Typed::of("/send ~user/x"), send("~user/x"));
        assert_eq!(Typed::of("/send ./~/x"), send("./~/x"));
        // Escaped, it is a message; run together, an unknown command.
        assert_eq!(Typed::of("//send x"), Typed::Message("/send x".into()));
        assert_eq!(Typed::of("/sendx"), Typed::Unknown("/sendx".into()));
    }

    #[test]
    fn send_without_a_path_is_a_hint() {
        for line in ["/send", "/send   ", "/send \"\"", "/send ''"] {
            assert_eq!(usage(line), SEND_USAGE, "{line:?}");
        }
        assert!(SEND_USAGE.contains("nothing was sent"));
    }

    #[test]
    fn a_leading_tilde_is_the_home_directory() {
        let Some(home) = home_dir() else {
            return;
        };
        let Some(home) = home.to_str() else {
            return;
        };
        let expected = std::path::Path::new(home).join("notes/a b.txt");
        let expected = expected.to_str().map(String::from);
        for line in ["/send ~/notes/a b.txt", "/send \"~/notes/a b.txt\""] {
            match Typed::of(line) {
                Typed::File(FileCommand::Send(p)) => assert_eq!(Some(p), expected, "{line:?}"),
                other => panic!("{line:?} gave {other:?}"),
            }
        }
        assert_eq!(expand_home("~"), "~", "a bare ~ is left alone");
        assert_eq!(expand_home("a/~/b"), "a/~/b");
    }

    #[test]
    fn accept_reject_and_cancel_take_an_optional_number() {
        type Make = fn(Option<u32>) -> FileCommand;
        let makes: [(&str, Make); 3] = [
            ("/accept", FileCommand::Accept),
            ("/reject", FileCommand::Reject),
            ("/cancel", FileCommand::Cancel),
        ];
        for (cmd, make) in makes {
            assert_eq!(Typed::of(cmd), Typed::File(make(None)));
            assert_eq!(Typed::of(&format!(" {cmd}  ")), Typed::File(make(None)));
            assert_eq!(Typed::of(&format!("{cmd} 3")), Typed::File(make(Some(3))));
            assert_eq!(
                Typed::of(&format!("{cmd} #12")),
                Typed::File(make(Some(12)))
            );
            assert_eq!(
                Typed::of(&format!("{cmd}   007 ")),
                Typed::File(make(Some(7)))
            );
            for bad in [
                "0",
                "#0",
                "-1",
                "+1",
                "#",
                "two",
                "1 2",
                "3x",
                "# 3",
                "99999999999",
            ] {
                let hint = usage(&format!("{cmd} {bad}"));
                assert!(hint.starts_with(cmd), "{hint}");
                assert!(hint.contains(bad), "{hint}");
                assert!(hint.ends_with("nothing was sent"), "{hint}");
            }
            assert_eq!(
                Typed::of(&format!("/{cmd} 2")),
                Typed::Message(format!("{cmd} 2"))
            );
            assert_eq!(
                Typed::of(&format!("{cmd}ed")),
                Typed::Unknown(format!("{cmd}ed"))
            );
        }
        // What the peer could not have typed is shown safely.
        assert!(!usage("/accept \u{1b}[2J").contains('\u{1b}'));
    }

    #[test]
    fn files_lists_and_takes_no_argument() {
        assert_eq!(Typed::of("/files"), Typed::File(FileCommand::List));
        assert_eq!(Typed::of(" /files "), Typed::File(FileCommand::List));
        assert!(usage("/files all").ends_with("nothing was sent"));
        assert_eq!(Typed::of("//files"), Typed::Message("/files".into()));
    }

    #[test]
    fn help_names_the_file_commands() {
        for cmd in [
            "/send PATH",
            "/accept",
            "/reject",
            "/cancel",
            "/files",
            "Tab",
        ] {
            assert!(HELP.contains(cmd), "{cmd}");
        }
    }
}
