//! What shells and `man` read, generated from the one clap definition in
//! [`crate::cli`] so they never drift from the parser: completion scripts
//! and the manual page. `doc/p2pchat.1` is this page, checked in
//! (`scripts/manpage` writes it; a test fails when it is stale).

use std::io::{self, Write};

use clap::CommandFactory;
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;

use crate::cli::Cli;
use crate::error::exit;

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> io::Result<()> {
    // Into memory first: clap_complete panics when its writer fails.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "p2pchat", &mut script);
    out.write_all(&script)
}

const DESCRIPTION: &str = "\
p2pchat is a private chat for two, and a byte-exact data pipe, over one \
TCP connection between the two machines. One side listens, the other \
dials; after that both are the same and both send and receive at once.

At a terminal it is a chat room: a prompt that incoming messages never \
garble, names, timestamps, join and leave notices. With pipes it is a \
data pipe for scripts, binary safe, with a clean half-close: the end of \
our input ends our sending, and we keep receiving until the peer is done. \
When our input is a terminal and our output is not (p2pchat listen PORT \
| tar x), we are receiving: once the peer has finished sending, we finish \
too, as nc does.

The room is encrypted and integrity-protected unless --plain is given. \
Without a secret both sides show the same verify code: compare it by \
voice, and a machine in the middle is found out. In a pipe the data \
flows before anyone can compare the codes, so there the code protects \
only against a passive eavesdropper (each side warns on stderr). With a shared secret \
(P2PCHAT_SECRET, --secret-file, --ask-secret) or a one-time code \
(--code, --relay) the room is authenticated before any data flows, and \
nobody else can join or inject. Nothing is stored: no history, no logs \
of content.";

/// The CHAT section: what the room at a terminal offers.
const CHAT: &str = "\
When stdin and stdout are both terminals, p2pchat is a chat room: each \
line typed is a message, shown as 12:03 name: text on both screens, and \
incoming messages never garble the line being typed.";

const CHAT_COMMANDS: &[(&str, &str)] = &[
    (
        "/quit",
        "Leave the room (also /exit, /q, Ctrl-D on an empty line, Ctrl-C). \
         The peer is told and its side ends with exit status 0; a draft \
         not sent is reported as not delivered. Closing the terminal window \
         leaves the same way. A second Ctrl-C exits at once.",
    ),
    ("/help", "List the commands (also /?)."),
    (
        "/code",
        "Show the verify code again, to compare it with the peer's by voice.",
    ),
    (
        "/status",
        "Show the connection: the peer's address or the relay, whether it \
         is encrypted, how many times it resumed after a drop, and the \
         bytes of messages sent and received.",
    ),
    (
        "/save FILE",
        "Write the transcript so far, as plain text, to FILE, a new file \
         readable by you alone. An existing file is never overwritten. \
         Nothing is written anywhere otherwise.",
    ),
    (
        "/send PATH",
        "Offer a file to the peer (Tab completes the path). It goes inside \
         the same encrypted connection, beside the chat, and is saved only \
         once the peer accepts it and its SHA-256 matched.",
    ),
    (
        "/accept [N], /reject [N]",
        "Take or turn down the peer's offer #N (the only one, without N). \
         A file is saved in the current directory, or in --save-dir DIR, \
         never over an existing file: report (1).pdf.",
    ),
    (
        "/cancel [N]",
        "Stop transfer #N, either way; the peer is told.",
    ),
    (
        "/files",
        "List the offers waiting and the transfers moving.",
    ),
    (
        "//text",
        "Send /text as a message. Any other /command is refused, never sent.",
    ),
];

const CHAT_KEYS: &[(&str, &str)] = &[
    ("Enter", "Send the message."),
    (
        "Alt-Enter",
        "Start a new line in the same message. A pasted block of lines is \
         one message too: one timestamp and continuation lines on your \
         screen; the peer gets the lines exactly as pasted.",
    ),
    (
        "Ctrl-A, Ctrl-E, Left, Right",
        "Move to the start, the end, or a character.",
    ),
    (
        "Ctrl-U, Ctrl-K, Ctrl-W",
        "Erase to the start of the line, to its end, or the word before.",
    ),
    (
        "Tab",
        "After /send, complete the file name; a second Tab lists the \
         choices.",
    ),
    (
        "Up, Down, Ctrl-R",
        "Recall and search lines sent before (kept in memory only).",
    ),
    (
        "Bell",
        "A message that arrives after 30 s without keys or messages rings \
         the terminal bell, which most terminals turn into a notification \
         or a tab mark; --no-bell turns it off.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "P2PCHAT_SECRET",
        "The shared secret, the same on both sides. Removed from the \
         environment once read. --secret-file or --ask-secret take \
         precedence over it.",
    ),
    (
        "P2PCHAT_CODE",
        "The one-time code for a dialer with --code or --relay, instead of \
         asking for it at the terminal. Removed from the environment once \
         read.",
    ),
    (
        "P2PCHAT_PORTABLE",
        "Set to 1 on Linux to use the paths the other systems use: stdin and \
         stdout on blocking threads instead of private non-blocking \
         descriptions, the relay's buffer copy instead of splice(2), \
         acknowledged bytes from the send queue instead of TCP_INFO. For \
         testing; read once at start.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, the chat room uses no colors (as does \
         TERM=dumb, which also selects a plain line reader).",
    ),
];

/// Writes the manual page: the options every command takes, then each
/// command with its own, the exit codes and the environment.
pub fn manpage(out: &mut dyn Write) -> io::Result<()> {
    let mut page = Vec::new();
    render(&mut page)?;
    // Each piece clap_mangen renders starts with the same two-line
    // preamble (the quote string); the page needs it once.
    let page = String::from_utf8_lossy(&page);
    let mut seen_preamble = false;
    let mut kept = String::with_capacity(page.len());
    let mut lines = page.lines().peekable();
    while let Some(line) = lines.next() {
        if line == PREAMBLE[0] && lines.peek() == Some(&PREAMBLE[1]) {
            lines.next();
            if seen_preamble {
                continue;
            }
            seen_preamble = true;
            kept.push_str(&PREAMBLE.join("\n"));
            kept.push('\n');
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    out.write_all(kept.as_bytes())
}

/// What roff and clap_mangen put before each piece they render.
const PREAMBLE: [&str; 2] = [".ie \\n(.g .ds Aq \\(aq", ".el .ds Aq '"];

fn render(out: &mut dyn Write) -> io::Result<()> {
    let top = Cli::command();
    let man = Man::new(top.clone()).manual("User Commands");
    man.render_title(out)?;
    man.render_name_section(out)?;

    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    for sub in visible(&top) {
        roff.text(synopsis(sub));
        roff.control("br", []);
    }
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut roff, DESCRIPTION);
    roff.control("SH", ["COMMANDS"]);
    for sub in visible(&top) {
        roff.control("TP", []);
        roff.text([bold(format!("p2pchat {}", sub.get_name()))]);
        roff.text([roman(about(sub))]);
    }
    roff.to_writer(out)?;

    // The options of every command (-q), which may also go before it;
    // each command's own follow in its section.
    Man::new(top.clone()).render_options_section(out)?;

    for sub in visible(&top) {
        let mut roff = Roff::new();
        let name = sub.get_name().to_uppercase();
        roff.control("SH", [format!("P2PCHAT {name}").as_str()]);
        roff.text(synopsis(sub));
        roff.control("PP", []);
        paragraphs(&mut roff, &about(sub));
        if let Some(after) = sub.get_after_help() {
            roff.control("PP", []);
            roff.control("nf", []);
            roff.text([roman(after.to_string())]);
            roff.control("fi", []);
        }
        roff.to_writer(out)?;
        let own = sub
            .clone()
            .bin_name(format!("p2pchat {}", sub.get_name()))
            .disable_help_flag(true)
            .mut_args(|a| a.help_heading(format!("{name} OPTIONS")));
        Man::new(own).render_options_section(out)?;
    }

    let mut roff = Roff::new();
    roff.control("SH", ["CHAT"]);
    paragraphs(&mut roff, CHAT);
    roff.control("SS", ["Commands"]);
    for (command, meaning) in CHAT_COMMANDS {
        roff.control("TP", []);
        roff.text([bold(*command)]);
        roff.text([roman(*meaning)]);
    }
    roff.control("SS", ["Keys"]);
    for (keys, meaning) in CHAT_KEYS {
        roff.control("TP", []);
        roff.text([bold(*keys)]);
        roff.text([roman(*meaning)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit::TABLE {
        roff.control("TP", []);
        roff.text([bold(code.to_string())]);
        roff.text([roman(*meaning)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "Every error is one line on stderr that names the cause in plain words.",
    )]);
    roff.control("SH", ["ENVIRONMENT"]);
    for (var, meaning) in ENVIRONMENT {
        roff.control("TP", []);
        roff.text([bold(*var)]);
        roff.text([roman(*meaning)]);
    }
    roff.control("SH", ["EXAMPLES"]);
    roff.control("nf", []);
    roff.text([roman(crate::cli::EXAMPLES)]);
    roff.control("fi", []);
    roff.control("SH", ["FILES"]);
    roff.text([roman(
        "None of its own: p2pchat reads a secret file only when told to, and \
         writes a file only when /save FILE asks it to, or a file the peer \
         offered is accepted (/accept, --receive DIR): first as a hidden \
         .NAME.p2pchat-XXXXXXXX.part in the target directory, renamed once \
         verified and removed otherwise.",
    )]);
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("nc(1), socat(1), ssh(1)")]);
    roff.to_writer(out)?;
    man.render_version_section(out)
}

/// The commands a user types (not `help`, which clap adds).
fn visible(top: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    top.get_subcommands().filter(|s| !s.is_hide_set())
}

/// `p2pchat listen [OPTIONS] [PORT]`, with the command in bold.
fn synopsis(sub: &clap::Command) -> Vec<clap_mangen::roff::Inline> {
    let mut own = sub.clone().bin_name(format!("p2pchat {}", sub.get_name()));
    let usage = own.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
    let rest = usage
        .strip_prefix(&format!("p2pchat {}", sub.get_name()))
        .unwrap_or(usage);
    vec![
        bold(format!("p2pchat {}", sub.get_name())),
        roman(rest.to_string()),
    ]
}

fn about(sub: &clap::Command) -> String {
    sub.get_long_about()
        .or_else(|| sub.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default()
}

/// Text with blank lines between paragraphs.
fn paragraphs(roff: &mut Roff, text: &str) {
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(para.replace('\n', " "))]);
    }
}
