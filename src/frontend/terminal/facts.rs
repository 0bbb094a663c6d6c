//! What `/code` and `/status` tell: the facts of the room, gathered from
//! the notices as they come.

/// What `/code` and `/status` tell about the room.
#[derive(Default)]
pub struct RoomFacts {
    pub peer: Option<std::net::SocketAddr>,
    pub verify_code: Option<String>,
    pub authenticated_by: Option<&'static str>,
    pub via_relay: Option<String>,
    pub plain: bool,
    /// Connections that carried the room on after a drop.
    pub resumes: u32,
    /// Bytes of messages each way.
    pub sent: u64,
    pub received: u64,
}

impl RoomFacts {
    pub fn code_line(&self) -> String {
        match (&self.verify_code, self.authenticated_by) {
            (Some(code), _) => format!(
                "verify code {code}: the peer's screen shows the same one unless someone is in \
                 the middle; compare it by voice"
            ),
            (None, Some(by)) => {
                format!("no verify code to compare: this room is authenticated by a {by}")
            }
            (None, None) if self.plain => {
                "no verify code: this room is not encrypted (--plain)".into()
            }
            (None, None) => "no verify code yet: nobody has joined".into(),
        }
    }

    pub fn status_line(&self, down: bool) -> String {
        let Some(peer) = self.peer else {
            return "not connected yet: nobody has joined".into();
        };
        let path = match &self.via_relay {
            Some(r) => format!("through relay {r}"),
            None => format!("direct to {}", crate::names::display_addr(peer)),
        };
        let security = if self.plain {
            "not encrypted"
        } else {
            "encrypted"
        };
        let state = if down {
            "the connection is down, reconnecting"
        } else {
            "connected"
        };
        let resumes = match self.resumes {
            1 => "1 resume".to_string(),
            n => format!("{n} resumes"),
        };
        format!(
            "{state} {path}, {security}; {resumes} so far; sent {}, received {}",
            crate::progress::bytes(self.sent),
            crate::progress::bytes(self.received)
        )
    }
}
