//! The transcript kept in memory for `/save`, and nothing else: nothing
//! is ever written unless the user asks.

use std::collections::VecDeque;
use std::io::{self, Write};

/// The most of the transcript kept for `/save`, in bytes; older lines go.
const TRANSCRIPT_CAP: usize = 16 * 1024 * 1024;

/// What the room showed, as plain text, kept in memory for `/save` only.
#[derive(Default)]
pub struct Transcript {
    lines: VecDeque<String>,
    bytes: usize,
    /// Lines dropped from the start to stay within [`TRANSCRIPT_CAP`].
    dropped: u64,
}

impl Transcript {
    pub fn push(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > TRANSCRIPT_CAP {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len() + 1;
            self.dropped += 1;
        }
    }

    /// Writes the transcript to a new file at `path` and says how it went.
    /// An existing file is never overwritten; the file is for the user
    /// alone (mode 0600).
    pub fn save(&self, path: &str) -> String {
        if path.is_empty() {
            return "/save needs a file name: /save FILE (a new file; nothing is overwritten)"
                .into();
        }
        let shown = crate::frontend::sanitize::line(path.as_bytes());
        let target = match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => std::path::Path::new(&home).join(rest),
            _ => std::path::PathBuf::from(path),
        };
        let mut text = String::with_capacity(self.bytes + 64);
        if self.dropped > 0 {
            text.push_str(&format!("({} earlier lines not kept)\n", self.dropped));
        }
        for line in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        crate::sys::process::owner_only(&mut options);
        let written = options
            .open(&target)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()));
        match written {
            Ok(()) => format!(
                "saved the transcript so far ({} lines) to {shown}",
                self.lines.len()
            ),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                format!("{shown} already exists: nothing was saved or overwritten; pick a new name")
            }
            Err(e) => format!("cannot save to {shown}: {}", crate::error::describe_io(&e)),
        }
    }
}
