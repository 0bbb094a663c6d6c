//! What a room has decided and not yet handed out: events for the user,
//! actions for the driver, and how it ended. Shared by both kinds of room.

use std::collections::VecDeque;

use super::{Action, Event, Status};
use crate::error::Error;

#[derive(Default)]
pub struct Outbox {
    pub events: VecDeque<Event>,
    pub actions: VecDeque<Action>,
    /// Set once, when the room ends.
    pub outcome: Option<Result<(), Error>>,
}

impl Outbox {
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn status(&self) -> Status {
        match &self.outcome {
            None => Status::Running,
            Some(r) => Status::Ended(r.clone()),
        }
    }
}
