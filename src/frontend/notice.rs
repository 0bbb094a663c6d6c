//! The wording of notices, shared by both front-ends.
//!
//! Whatever the peer controls (its name) is shown in quotes and never on the
//! line that carries the verify code, so a name cannot pass itself off as
//! our own text, a notice, or a code.

use std::net::SocketAddr;

use crate::driver::user::Notice;
use crate::names::display_addr;
use crate::reach::Reach;

/// The peer as notices name it: its name in quotes, or "the peer".
pub fn who(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("\"{n}\""),
        None => "the peer".into(),
    }
}

/// The line that shows the verify code: first, alone, and ours alone.
pub fn code_line(code: &str, failed_attempts: u32) -> String {
    match failed_attempts {
        0 => format!("verify code {code}"),
        1 => format!("verify code {code} (1 failed attempt before this peer)"),
        n => format!("verify code {code} ({n} failed attempts before this peer)"),
    }
}

/// In a pipe, a verify-code room sends and takes data at once: nobody can
/// compare the codes first, so the code only tells afterwards whether
/// someone in the middle had the data. Said on every such join.
pub const PIPE_VERIFY_WARNING: &str =
    "warning: in a pipe the data flows before anyone can compare \
verify codes, so the code protects only against a passive eavesdropper: compare it with the \
peer's to learn whether someone in the middle had the data; to authenticate before any data \
flows, use a one-time code (--code on both sides) or a shared secret (P2PCHAT_SECRET)";

/// How a join is worded: a status line in a pipe, or the chat's notice.
#[derive(Clone, Copy)]
pub enum Joined {
    /// `connected to "bob" (192.0.2.7:51423)`
    ConnectedTo,
    /// `"bob" joined from 192.0.2.7:51423`
    JoinedFrom,
}

/// The lines for a join: the verify code first, on a line of its own that
/// the peer cannot write to, then who joined (and how it was authenticated).
/// Empty for any other notice.
pub fn joined_lines(notice: &Notice<'_>, wording: Joined) -> Vec<String> {
    let Notice::Joined {
        peer,
        name,
        verify_code,
        failed_attempts,
        authenticated_by,
        via_relay,
    } = notice
    else {
        return Vec::new();
    };
    let mut lines: Vec<String> = verify_code
        .map(|code| code_line(code, *failed_attempts))
        .into_iter()
        .collect();
    let mut line = match (wording, name, via_relay) {
        (Joined::ConnectedTo, n, Some(r)) => {
            format!("connected to {} through relay {r}", who(*n))
        }
        (Joined::JoinedFrom, n, Some(r)) => format!("{} joined through relay {r}", who(*n)),
        (Joined::ConnectedTo, Some(n), None) => {
            format!("connected to {} ({})", who(Some(n)), display_addr(*peer))
        }
        (Joined::ConnectedTo, None, None) => format!("connected to {}", display_addr(*peer)),
        (Joined::JoinedFrom, n, None) => {
            format!("{} joined from {}", who(*n), display_addr(*peer))
        }
    };
    if let Some(how) = authenticated_by {
        line.push_str(", authenticated by ");
        line.push_str(how);
    }
    lines.push(line);
    lines
}

/// Where a peer can dial a listener: the command for the other machine,
/// the other addresses, and a pointer at `--relay` when none of them is
/// public.
fn reach_lines(local: SocketAddr, reach: &Reach, with_command: bool) -> Vec<String> {
    let mut lines = Vec::new();
    match reach.command("") {
        Some(command) if with_command => lines.push(format!("on the other machine: {command}")),
        Some(_) => {}
        None if !with_command => {}
        None if local.ip().is_loopback() => lines.push(format!(
            "only this machine can dial it: p2pchat dial {} {}",
            local.ip(),
            reach.port
        )),
        None => lines.push(format!(
            "this machine has no network address: only a peer on it can dial, with \
             p2pchat dial localhost {}",
            reach.port
        )),
    }
    let (others, more) = reach.others();
    if !others.is_empty() {
        let list: Vec<String> = others.iter().map(ToString::to_string).collect();
        let more = match more {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        lines.push(format!("also reachable at {}{more}", list.join(", ")));
    }
    if reach.all_private() {
        lines.push(
            "every address here is private: a peer on another network cannot dial it; \
             ask the router for a port (--map) or meet through a relay (--relay)"
                .into(),
        );
    }
    lines
}

/// The status lines for a notice, one per element.
pub fn lines(notice: &Notice<'_>) -> Vec<String> {
    match notice {
        Notice::Listening { local, .. } => vec![format!("listening on {local}")],
        Notice::HowToReach {
            local,
            reach,
            with_command,
        } => reach_lines(*local, reach, *with_command),
        Notice::Code {
            code,
            command,
            only_here,
        } => vec![
            format!("code: {code}"),
            if *only_here {
                format!("only this machine can dial it: run {command}")
            } else {
                format!("on the other machine run: {command}")
            },
            "and type the code there (or pass it in P2PCHAT_CODE); it works once".into(),
        ],
        Notice::Mapped {
            public,
            how,
            command,
        } => vec![
            format!("mapped {public} on the router ({how}); removed when p2pchat ends"),
            format!("on the other machine: {command}"),
        ],
        Notice::NotMapped { why } => vec![why.to_string()],
        Notice::AtRelay { room, relay } => {
            vec![format!("waiting for the peer in room {room} on relay {relay}")]
        }
        Notice::Waiting { line } => vec![line.to_string()],
        Notice::Connecting { target } => vec![format!("connecting to {target}\u{2026}")],
        Notice::PlainWarning => vec![
            "plain mode: the chat is not encrypted; anyone on the path can read and change it"
                .into(),
        ],
        Notice::FailedAttempt {
            peer,
            why,
            counted,
            failed,
            tries,
        } => {
            let count = if *counted {
                format!(" ({failed} of {tries} failed attempts)")
            } else {
                String::new()
            };
            let next = if *counted && failed >= tries {
                "giving up"
            } else {
                "still waiting"
            };
            vec![format!(
                "connection from {} failed: {why}; {next}{count}",
                display_addr(*peer)
            )]
        }
        Notice::Joined { verify_code, .. } => {
            let mut lines = joined_lines(notice, Joined::ConnectedTo);
            if verify_code.is_some() {
                lines.push(PIPE_VERIFY_WARNING.into());
            }
            lines
        }
        Notice::PeerLooksEncrypted => vec![
            "warning: the peer's first bytes are a p2pchat greeting: it may be an encrypted p2pchat \
             (run both sides with --plain, or neither); the bytes are passed on as data"
                .into(),
        ],
        Notice::PeerDone { name } => vec![format!("{} stopped sending", who(*name))],
        Notice::PeerLeft { name } => vec![format!("{} left the room", who(*name))],
        Notice::ConnectionLost {
            why,
            grace,
            redialing,
        } => {
            let why = why.strip_prefix("connection lost: ").unwrap_or(why);
            let secs = grace.as_secs_f64();
            vec![if *redialing {
                format!("connection lost ({why}); reconnecting for up to {secs} s")
            } else {
                format!("connection lost ({why}); waiting up to {secs} s for the peer to reconnect")
            }]
        }
        Notice::Reconnected {
            after,
            resent,
            connection,
        } => vec![format!(
            "reconnected after {} (connection #{connection}); {} re-sent, nothing lost",
            crate::progress::duration(*after),
            crate::progress::bytes(*resent)
        )],
        Notice::FileOffered { .. }
        | Notice::FileOffering { .. }
        | Notice::FileEnded { .. }
        | Notice::FileNote { .. } => vec![file_line(notice)],
    }
}

/// The line for a file notice. Names are shown in quotes, already made
/// safe by the driver.
fn file_line(notice: &Notice<'_>) -> String {
    use crate::progress::{bytes, duration};
    use crate::session::FileOutcome;
    match notice {
        Notice::FileOffered {
            number,
            from,
            name,
            offered_as,
            size,
            saving_to,
        } => {
            let (shown, size, as_) = (
                offered_as.unwrap_or(name),
                bytes(*size),
                saved_as(*offered_as, name),
            );
            match saving_to {
                None => format!(
                    "{} offers #{number} \"{shown}\" ({size}){as_}: /accept {number} or /reject {number}",
                    who(*from)
                ),
                Some(dir) => format!(
                    "receiving #{number} \"{shown}\" ({size}) from {} into {}{as_}",
                    who(*from),
                    dir.display()
                ),
            }
        }
        Notice::FileOffering { number, name, size } => format!(
            "offering #{number} \"{name}\" ({}): waiting for the peer to accept",
            bytes(*size)
        ),
        Notice::FileEnded {
            number,
            outgoing,
            name,
            size,
            outcome,
            elapsed,
            saved_as,
        } => match (outcome, outgoing) {
            (FileOutcome::Saved, true) => format!(
                "sent #{number} \"{name}\" ({}, SHA-256 verified by the peer) in {}",
                bytes(*size),
                duration(*elapsed)
            ),
            (FileOutcome::Saved, false) => {
                let place = saved_as.map_or(String::new(), |p| format!(" as {}", p.display()));
                format!(
                    "saved #{number} \"{name}\" ({}, SHA-256 verified) in {}{place}",
                    bytes(*size),
                    duration(*elapsed)
                )
            }
            (FileOutcome::Rejected { by_peer: true, why }, _) => {
                format!("the peer turned down #{number} \"{name}\"{}", because(why))
            }
            (
                FileOutcome::Rejected {
                    by_peer: false,
                    why,
                },
                _,
            ) => {
                format!("turned down #{number} \"{name}\"{}", because(why))
            }
            (FileOutcome::Cancelled { by_peer: true, why }, _) => {
                format!("the peer cancelled #{number} \"{name}\"{}", because(why))
            }
            (FileOutcome::Cancelled { by_peer: false, .. }, _) => {
                format!("cancelled #{number} \"{name}\"")
            }
            (FileOutcome::Failed { by_peer: true, why }, _) => {
                format!(
                    "#{number} \"{name}\" failed on the peer's side{}",
                    because(why)
                )
            }
            (
                FileOutcome::Failed {
                    by_peer: false,
                    why,
                },
                _,
            ) => {
                format!("#{number} \"{name}\" failed{}", because(why))
            }
        },
        Notice::FileNote { text } => text.to_string(),
        _ => String::new(),
    }
}

/// ` as "NAME"` when the offered name is not the one it is saved under.
fn saved_as(offered_as: Option<&str>, name: &str) -> String {
    match offered_as {
        Some(_) => format!(" as \"{name}\""),
        None => String::new(),
    }
}

/// ": why", or nothing when there is no reason.
fn because(why: &str) -> String {
    if why.is_empty() {
        String::new()
    } else {
        format!(": {why}")
    }
}
