//! Who is waiting for whom: connections by token, matched by side.

use std::collections::HashMap;

use super::ConnId;
use crate::protocol::transit::{Hello, TOKEN_LEN};

#[derive(Debug, Default)]
pub struct Waiting {
    by_token: HashMap<[u8; TOKEN_LEN], Vec<(Hello, ConnId)>>,
    len: usize,
}

impl Waiting {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn add(&mut self, hello: Hello, conn: ConnId) {
        self.by_token
            .entry(hello.token)
            .or_default()
            .push((hello, conn));
        self.len += 1;
    }

    /// Connections waiting on `token`.
    pub fn on_token(&self, token: &[u8; TOKEN_LEN]) -> usize {
        self.by_token.get(token).map_or(0, Vec::len)
    }

    /// Takes the longest-waiting connection that `hello` may pair with.
    pub fn take_match(&mut self, hello: &Hello) -> Option<ConnId> {
        let list = self.by_token.get_mut(&hello.token)?;
        let i = list.iter().position(|(h, _)| h.matches(hello))?;
        let (_, conn) = list.remove(i);
        self.len -= 1;
        if list.is_empty() {
            self.by_token.remove(&hello.token);
        }
        Some(conn)
    }

    /// Removes and returns everyone else waiting on `token`.
    pub fn remove_token(&mut self, token: &[u8; TOKEN_LEN]) -> Vec<ConnId> {
        let spares: Vec<ConnId> = self
            .by_token
            .remove(token)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        self.len -= spares.len();
        spares
    }

    pub fn remove(&mut self, token: &[u8; TOKEN_LEN], conn: ConnId) {
        if let Some(list) = self.by_token.get_mut(token) {
            let before = list.len();
            list.retain(|(_, c)| *c != conn);
            self.len -= before - list.len();
            if list.is_empty() {
                self.by_token.remove(token);
            }
        }
    }
}
