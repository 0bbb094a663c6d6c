//! What a typed line is: a message, a command, or nothing to send. Both the
//! editor thread (which draws our own transcript line) and the room (which
//! acts on it) ask here, so the screen shows exactly what the peer gets.

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
    /// `/something` we do not know: refused here, never sent.
    Unknown(String),
    /// An empty or blank line: nothing to send.
    Empty,
}

pub const HELP: &str = "commands: /quit (or Ctrl-D, Ctrl-C) leaves the room; /code shows the \
                        verify code again; /status shows the connection; /save FILE writes the \
                        transcript so far to a new FILE; /help shows this; start a message with \
                        // to send a line that begins with /";

impl Typed {
    pub fn of(line: &str) -> Typed {
        if line.trim().is_empty() {
            return Typed::Empty;
        }
        if let Some(rest) = line.strip_prefix("//") {
            return Typed::Message(format!("/{rest}"));
        }
        let trimmed = line.trim();
        if let Some(file) = trimmed
            .strip_prefix("/save")
            .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        {
            return Typed::Save(file.trim().to_string());
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
}
