//! Where the dialer's one-time code comes from: `P2PCHAT_CODE`, or a prompt
//! on the terminal with the code words completed by Tab. Never from argv,
//! where `ps` and the shell's history would keep it.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::MemHistory;
use rustyline::{Behavior, CompletionType, Config, Context, Editor};

use crate::error::{Error, Signal};
use crate::protocol::code::{self, Code};

pub const ENV_VAR: &str = "P2PCHAT_CODE";

/// The code from `P2PCHAT_CODE` (then scrubbed from the environment) or
/// typed at the terminal.
pub fn read(prompt: &str) -> Result<Code, Error> {
    if let Some(value) = std::env::var_os(ENV_VAR) {
        crate::secret::scrub_env(ENV_VAR);
        let value = value
            .into_string()
            .map_err(|_| Error::Usage(format!("{ENV_VAR} is not valid UTF-8")))?;
        return Code::parse(&value).map_err(|e| Error::Usage(format!("{ENV_VAR}: {e}")));
    }
    ask(prompt)
}

/// Prompts on the controlling terminal (even when stdin and stdout are
/// pipes), again after a mistyped code.
fn ask(prompt: &str) -> Result<Code, Error> {
    let no_tty = || {
        Error::Usage(format!(
            "the code is needed: set {ENV_VAR} or run at a terminal to type it"
        ))
    };
    // Without a controlling terminal there is nobody to ask.
    if crate::sys::terminal::Tty::open().is_err() {
        return Err(no_tty());
    }
    // Tab as in a shell: a prefix shared by several words completes no
    // further and a second Tab lists them (cycling would put the first in
    // silently, and what is typed next would join onto it).
    let config = Config::builder()
        .behavior(Behavior::PreferTerm)
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<WordCompleter, MemHistory> =
        Editor::with_history(config, MemHistory::new()).map_err(|_| no_tty())?;
    editor.set_helper(Some(WordCompleter));
    loop {
        match editor.readline(prompt) {
            Ok(line) => {
                let line = zeroize::Zeroizing::new(line);
                match Code::parse(&line) {
                    Ok(code) => return Ok(code),
                    Err(e) => eprintln_safe(&format!("p2pchat: {e}")),
                }
            }
            Err(ReadlineError::Interrupted) => return Err(Error::Interrupted(Signal::Int)),
            Err(ReadlineError::Eof) => {
                return Err(Error::Usage(format!(
                    "no code was given (type it, or set {ENV_VAR})"
                )))
            }
            Err(_) => return Err(no_tty()),
        }
    }
}

fn eprintln_safe(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Completes the word under the cursor from the code word list.
struct WordCompleter;

impl Completer for WordCompleter {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| c == '-' || c.is_whitespace())
            .map_or(0, |i| i + 1);
        let prefix = &line[start..pos];
        // Which part of the code this is: 0 is the room, 3 the last word.
        let part = line[..start]
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .count();
        // The room number comes first and is not a word; once whole, Tab
        // moves on to the first word.
        if prefix.bytes().any(|b| b.is_ascii_digit()) {
            let whole =
                prefix.len() == code::ROOM_DIGITS && prefix.bytes().all(|b| b.is_ascii_digit());
            let next = if whole && part == 0 && pos == line.len() {
                vec![pair(prefix, format!("{prefix}-"))]
            } else {
                Vec::new()
            };
            return Ok((start, next));
        }
        let words = code::complete(prefix);
        // One candidate is the word: finish it and, like a shell finishing
        // a file name, step to the next part unless it is the last one.
        let candidates = match words.as_slice() {
            [word] if part < code::WORDS && pos == line.len() => {
                vec![pair(word, format!("{word}-"))]
            }
            _ => words.iter().map(|w| pair(w, w.to_string())).collect(),
        };
        Ok((start, candidates))
    }
}

fn pair(display: &str, replacement: String) -> Pair {
    Pair {
        display: display.to_string(),
        replacement,
    }
}

impl rustyline::hint::Hinter for WordCompleter {
    type Hint = String;
}
impl rustyline::highlight::Highlighter for WordCompleter {}
impl rustyline::validate::Validator for WordCompleter {}
impl rustyline::Helper for WordCompleter {}
