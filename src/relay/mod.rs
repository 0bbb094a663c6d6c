//! The relay's sans-IO core: admission, the transit hello, the pairing
//! table, every limit and every deadline. The driver (`driver/relay.rs`)
//! owns the sockets and copies the bytes of paired connections; it tells
//! this core what happened (a connection, bytes before pairing, traffic, a
//! close) with the time, and carries out the [`Action`]s it gets back.
//!
//! The relay is blind: it never sees more than a hello line and the fact
//! that a pair moves bytes. It logs counts and outcomes, never an address,
//! a token (a token is a room) or content.

mod limits;
pub mod log;
mod table;
#[cfg(test)]
mod tests;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

pub use limits::Limits;
use table::Waiting;

use crate::protocol::transit::{self, Hello, Parse, BAD_HANDSHAKE, IMPATIENT, MAX_HELLO};

/// A connection, as the driver names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub usize);

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Write `line`, then close the connection (a refusal).
    Refuse { conn: ConnId, line: Vec<u8> },
    /// Close the connection without a word (a spare, a timeout, a
    /// connection that closed itself).
    Close(ConnId),
    /// Write `ok\n` to both, then copy bytes between them both ways.
    Pair(ConnId, ConnId),
    /// End the pair: flush what is buffered, then close both.
    EndPair(ConnId, ConnId),
}

/// How a pair ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairEnd {
    /// Both directions finished.
    Done,
    /// One side failed (a reset, a write error).
    Failed,
    /// No bytes moved for the idle timeout.
    Idle,
    /// A side did not take its bytes for the stall timeout.
    Stalled,
}

#[derive(Debug)]
enum State {
    /// Accepted; reading the hello.
    Hello { buf: Vec<u8> },
    /// Hello in, being placed (a moment inside `received`).
    Placing,
    /// Hello in; waiting for a partner.
    Waiting { hello: Hello },
    /// Copying to and from `partner`.
    Paired {
        partner: ConnId,
        since: Instant,
        /// Bytes were written out either way at this time.
        last_write: Instant,
        /// Bytes are waiting for a side that does not take them.
        backlog: bool,
    },
}

#[derive(Debug)]
struct Entry {
    /// The source it counts against (IPv4 address, IPv6 /48), and its
    /// IPv6 /64 within that.
    source: u128,
    subnet: Option<u128>,
    state: State,
    deadline: Option<Instant>,
    /// It counts as one of its source's rooms (waiting or paired).
    room: bool,
}

/// Counts since the last summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub paired: u64,
    pub bad_hellos: u64,
    pub impatient: u64,
    pub timed_out: u64,
    pub refused: u64,
    /// Refused for trying too many rooms (of `refused`).
    pub probes: u64,
    pub redundant: u64,
    pub ended: u64,
    pub bytes: u64,
}

/// Per source: open connections, those waiting or paired, the rate of
/// new ones, and the rooms (tokens) it asked for lately.
#[derive(Debug)]
struct Source {
    conns: usize,
    rooms: usize,
    window_start: Instant,
    new_in_window: u32,
    /// The distinct tokens of its hellos since `tokens_start` (keyed
    /// hashes of them), at most `tokens_per_source`.
    tokens: Vec<u64>,
    tokens_start: Instant,
}

impl Source {
    fn new(now: Instant) -> Source {
        Source {
            conns: 0,
            rooms: 0,
            window_start: now,
            new_in_window: 0,
            tokens: Vec::new(),
            tokens_start: now,
        }
    }

    /// Returns true if this source may name `token` now (one it named in
    /// this window, or a new one within its budget), and counts it.
    fn try_token(&mut self, token: u64, budget: usize, window: Duration, now: Instant) -> bool {
        if now.saturating_duration_since(self.tokens_start) >= window {
            self.tokens_start = now;
            self.tokens.clear();
        }
        if self.tokens.contains(&token) {
            return true;
        }
        if self.tokens.len() >= budget {
            return false;
        }
        self.tokens.push(token);
        true
    }
}

pub struct Relay {
    limits: Limits,
    conns: HashMap<ConnId, Entry>,
    /// The timer table: every entry's deadline, earliest first.
    timers: BTreeSet<(Instant, ConnId)>,
    waiting: Waiting,
    sources: HashMap<u128, Source>,
    /// IPv6 /64s within their /48 source, with a quarter of its caps.
    subnets: HashMap<u128, Source>,
    hellos: usize,
    /// Keys the hashes of tokens a source named (see `Source::tokens`).
    token_keys: RandomState,
    /// Connections in the order they came, for the oldest still owing its
    /// hello (entries that moved on are skipped, and pruned).
    hello_order: VecDeque<ConnId>,
    pairs: usize,
    actions: VecDeque<Action>,
    log: VecDeque<String>,
    counts: Counts,
    next_summary: Option<Instant>,
}

/// The source a connection counts against, and for IPv6 its /64: one
/// IPv4 address, or one IPv6 /48 (a site or a customer often has a whole
/// /48 or /56 to choose addresses and /64s from), with per-/64 sub-caps.
fn group(source: u128) -> (u128, Option<u128>) {
    let is_v4_mapped = source >> 32 == 0xffff;
    if is_v4_mapped {
        (source, None)
    } else {
        (
            source & !((1u128 << 80) - 1),
            Some(source & !((1u128 << 64) - 1)),
        )
    }
}

/// A /64's share of its source's cap.
fn sub_cap(cap: usize) -> usize {
    (cap / 4).max(1)
}

impl Relay {
    pub fn new(limits: Limits) -> Relay {
        Relay {
            limits,
            conns: HashMap::new(),
            timers: BTreeSet::new(),
            waiting: Waiting::default(),
            sources: HashMap::new(),
            subnets: HashMap::new(),
            hellos: 0,
            token_keys: RandomState::new(),
            hello_order: VecDeque::new(),
            pairs: 0,
            actions: VecDeque::new(),
            log: VecDeque::new(),
            counts: Counts::default(),
            next_summary: None,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A new connection from `source` (see `net::source_key`). Returns
    /// false if it is turned away; a [`Action::Refuse`] says why.
    pub fn accept(&mut self, conn: ConnId, source: u128, now: Instant) -> bool {
        let (source, subnet) = group(source);
        let l = &self.limits;
        let mut refusal = None;
        if self.conns.len() >= l.max_connections {
            refusal = Some("error relay is full, try again later\n");
        }
        let caps = [
            (false, Some(source), l.max_per_source, l.new_per_source),
            (
                true,
                subnet,
                sub_cap(l.max_per_source),
                sub_cap(l.new_per_source as usize) as u32,
            ),
        ];
        for (is_sub, key, max, new) in caps {
            let (Some(key), None) = (key, refusal) else {
                continue;
            };
            let table = if is_sub {
                &mut self.subnets
            } else {
                &mut self.sources
            };
            let s = table.entry(key).or_insert_with(|| Source::new(now));
            if now.saturating_duration_since(s.window_start) >= l.rate_window {
                s.window_start = now;
                s.new_in_window = 0;
            }
            if s.conns >= max {
                refusal = Some("error too many connections from your address\n");
            } else if s.new_in_window >= new {
                refusal = Some("error too many new connections from your address, slow down\n");
            }
        }
        if refusal.is_none() && self.hellos >= self.limits.max_hellos {
            // The oldest connection still owing its hello makes way: a real
            // client says it at once, so a flood of silent ones cannot
            // keep it out.
            self.evict_oldest_hello();
            if self.hellos >= self.limits.max_hellos {
                refusal = Some("error relay is busy, try again later\n");
            }
        }
        if refusal.is_none() {
            for s in [self.sources.get_mut(&source)]
                .into_iter()
                .chain([subnet.and_then(|n| self.subnets.get_mut(&n))])
                .flatten()
            {
                s.conns += 1;
                s.new_in_window += 1;
            }
        }
        if let Some(line) = refusal {
            self.counts.refused += 1;
            self.forget_idle_source(source, subnet);
            self.actions.push_back(Action::Refuse {
                conn,
                line: line.as_bytes().to_vec(),
            });
            self.wake_summary(now);
            return false;
        }
        self.hellos += 1;
        self.hello_order.push_back(conn);
        if self.hello_order.len() > 2 * self.limits.max_hellos.max(1) {
            let conns = &self.conns;
            self.hello_order.retain(|c| {
                matches!(
                    conns.get(c).map(|e| &e.state),
                    Some(State::Hello { .. }) | None
                )
            });
        }
        self.insert(
            conn,
            Entry {
                source,
                subnet,
                state: State::Hello {
                    buf: Vec::with_capacity(MAX_HELLO),
                },
                deadline: Some(now + self.limits.hello_timeout),
                room: false,
            },
        );
        self.wake_summary(now);
        true
    }

    /// Closes the oldest connection still owing its hello, if any.
    fn evict_oldest_hello(&mut self) {
        while let Some(c) = self.hello_order.pop_front() {
            if let Some(State::Hello { .. }) = self.conns.get(&c).map(|e| &e.state) {
                self.counts.timed_out += 1;
                self.remove(c);
                self.actions.push_back(Action::Close(c));
                return;
            }
        }
    }

    /// Counts `conn` as one of its source's rooms (waiting or paired), or
    /// returns false when the source (or its /64) has as many as allowed.
    fn take_room(&mut self, conn: ConnId) -> bool {
        let Some(e) = self.conns.get(&conn) else {
            return false;
        };
        if e.room {
            return true;
        }
        let (source, subnet) = (e.source, e.subnet);
        let cap = self.limits.rooms_per_source;
        let full = self.sources.get(&source).is_some_and(|s| s.rooms >= cap)
            || subnet
                .and_then(|n| self.subnets.get(&n))
                .is_some_and(|s| s.rooms >= sub_cap(cap));
        if full {
            return false;
        }
        for s in [self.sources.get_mut(&source)]
            .into_iter()
            .chain([subnet.and_then(|n| self.subnets.get_mut(&n))])
            .flatten()
        {
            s.rooms += 1;
        }
        if let Some(e) = self.conns.get_mut(&conn) {
            e.room = true;
        }
        true
    }

    /// Counts `hello`'s token against its source's (and /64's) budget of
    /// rooms tried per `token_window`, or returns false when it is spent:
    /// a real user names one or two rooms, someone probing for waiting
    /// rooms names one after another.
    fn try_token(&mut self, conn: ConnId, hello: &Hello, now: Instant) -> bool {
        let Some(e) = self.conns.get(&conn) else {
            return false;
        };
        let (source, subnet) = (e.source, e.subnet);
        let key = self.token_keys.hash_one(hello.token);
        let (budget, window) = (self.limits.tokens_per_source, self.limits.token_window);
        // Both the source and its /64 must allow it; neither counts it
        // unless both do.
        let fits = |s: Option<&Source>, budget: usize| {
            s.is_none_or(|s| {
                now.saturating_duration_since(s.tokens_start) >= window
                    || s.tokens.contains(&key)
                    || s.tokens.len() < budget
            })
        };
        if !fits(self.sources.get(&source), budget)
            || !fits(subnet.and_then(|n| self.subnets.get(&n)), sub_cap(budget))
        {
            return false;
        }
        if let Some(s) = self.sources.get_mut(&source) {
            s.try_token(key, budget, window, now);
        }
        if let Some(s) = subnet.and_then(|n| self.subnets.get_mut(&n)) {
            s.try_token(key, sub_cap(budget), window, now);
        }
        true
    }

    /// Bytes from a connection that is not paired yet: its hello, or (once
    /// the hello is in) bytes it must not send before `ok`.
    pub fn received(&mut self, conn: ConnId, data: &[u8], now: Instant) {
        enum Next {
            Wait,
            Bad,
            Impatient,
            Place(Hello),
        }
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let next = match &mut entry.state {
            State::Hello { buf } => {
                let room = MAX_HELLO - buf.len();
                buf.extend_from_slice(&data[..data.len().min(room)]);
                match transit::parse(buf) {
                    Parse::Incomplete => Next::Wait,
                    Parse::Bad => Next::Bad,
                    // Bytes after the hello, before our `ok`: refused, the
                    // stricter reference behaviour (0.2.1).
                    Parse::Hello(h) if buf.len() > h.len || data.len() > room => Next::Impatient,
                    Parse::Hello(h) => Next::Place(h),
                }
            }
            State::Waiting { .. } if !data.is_empty() => Next::Impatient,
            _ => Next::Wait,
        };
        if let (State::Hello { .. }, Next::Bad | Next::Impatient | Next::Place(_)) =
            (&entry.state, &next)
        {
            entry.state = State::Placing;
            self.hellos -= 1;
        }
        match next {
            Next::Wait => {}
            Next::Bad => {
                self.counts.bad_hellos += 1;
                self.refuse(conn, BAD_HANDSHAKE);
            }
            Next::Impatient => {
                self.counts.impatient += 1;
                self.refuse(conn, IMPATIENT);
            }
            Next::Place(hello) => self.hello_done(conn, hello, now),
        }
        self.wake_summary(now);
    }

    fn hello_done(&mut self, conn: ConnId, hello: Hello, now: Instant) {
        if !self.try_token(conn, &hello, now) {
            self.counts.refused += 1;
            self.counts.probes += 1;
            self.refuse(
                conn,
                b"error too many rooms tried from your address, slow down\n",
            );
            return;
        }
        if !self.take_room(conn) {
            self.counts.refused += 1;
            self.refuse(conn, b"error too many rooms from your address\n");
            return;
        }
        if let Some(partner) = self.waiting.take_match(&hello) {
            if self.pairs >= self.limits.max_pairs {
                // Put the partner back; the newcomer is told.
                if let Some(Entry {
                    state: State::Waiting { hello: h },
                    ..
                }) = self.conns.get(&partner)
                {
                    self.waiting.add(h.clone(), partner);
                }
                self.counts.refused += 1;
                self.refuse(conn, b"error relay is full, try again later\n");
                return;
            }
            // The reference server closes every other connection waiting
            // on the token once it makes a match.
            for spare in self.waiting.remove_token(&hello.token) {
                self.counts.redundant += 1;
                self.remove(spare);
                self.actions.push_back(Action::Close(spare));
            }
            self.pairs += 1;
            self.counts.paired += 1;
            let deadline = now + self.limits.idle_timeout;
            for (me, other) in [(conn, partner), (partner, conn)] {
                if let Some(e) = self.conns.get_mut(&me) {
                    e.state = State::Paired {
                        partner: other,
                        since: now,
                        last_write: now,
                        backlog: false,
                    };
                }
                self.set_deadline(me, Some(deadline));
            }
            self.actions.push_back(Action::Pair(partner, conn));
            return;
        }
        if self.waiting.len() >= self.limits.max_waiting {
            self.counts.refused += 1;
            self.refuse(conn, b"error too many rooms waiting, try again later\n");
            return;
        }
        if self.waiting.on_token(&hello.token) >= self.limits.waiting_per_token {
            self.counts.refused += 1;
            self.refuse(conn, b"error too many connections waiting in this room\n");
            return;
        }
        self.waiting.add(hello.clone(), conn);
        if let Some(e) = self.conns.get_mut(&conn) {
            e.state = State::Waiting { hello };
        }
        self.set_deadline(conn, Some(now + self.limits.wait_timeout));
    }

    /// A pair moved bytes: `wrote` if any were written to either side
    /// this turn, `backlog` if bytes are still waiting for either. Re-arms
    /// the pair's idle or stall deadline (on both of its connections).
    pub fn traffic(&mut self, conn: ConnId, wrote: bool, backlog: bool, now: Instant) {
        let l = &self.limits;
        let (idle, stall) = (l.idle_timeout, l.stall_timeout);
        let Some(Entry {
            state:
                State::Paired {
                    partner,
                    last_write,
                    backlog: b,
                    ..
                },
            ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        if wrote {
            *last_write = now;
        }
        *b = backlog;
        let partner = *partner;
        let deadline = *last_write + if backlog { stall } else { idle };
        self.set_deadline(conn, Some(deadline));
        // The partner's own timer would end the pair on its old deadline.
        self.set_deadline(partner, None);
    }

    /// A connection closed or failed before the driver's copy loop took
    /// it over (a paired one ends its pair).
    pub fn closed(&mut self, conn: ConnId, now: Instant) {
        match self.conns.get(&conn).map(|e| &e.state) {
            Some(State::Paired { partner, .. }) => {
                let partner = *partner;
                self.actions.push_back(Action::EndPair(conn, partner));
                self.pair_ended(conn, partner, PairEnd::Failed, 0, now);
            }
            Some(_) => {
                self.remove(conn);
                self.actions.push_back(Action::Close(conn));
            }
            None => {}
        }
        self.wake_summary(now);
    }

    /// The driver ended a pair (both directions done, or a failure), with
    /// the bytes it moved.
    pub fn pair_ended(&mut self, a: ConnId, b: ConnId, how: PairEnd, bytes: u64, now: Instant) {
        let since = match self.conns.get(&a).map(|e| &e.state) {
            Some(State::Paired { since, .. }) => *since,
            _ => return,
        };
        self.remove(a);
        self.remove(b);
        self.pairs -= 1;
        self.counts.ended += 1;
        self.counts.bytes += bytes;
        let how = match how {
            PairEnd::Done => "done",
            PairEnd::Failed => "a side failed",
            PairEnd::Idle => "idle",
            PairEnd::Stalled => "a side stopped reading",
        };
        self.log.push_back(format!(
            "pair ended ({how}) after {:.1} s, {}",
            now.saturating_duration_since(since).as_secs_f64(),
            human_bytes(bytes)
        ));
        self.wake_summary(now);
    }

    /// The earliest deadline: a connection's or the next summary line.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let first = self.timers.iter().next().map(|&(t, _)| t);
        first.into_iter().chain(self.next_summary).min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, conn)) = self.timers.iter().next() {
            if t > now {
                break;
            }
            self.timers.remove(&(t, conn));
            let Some(entry) = self.conns.get_mut(&conn) else {
                continue;
            };
            entry.deadline = None;
            match &entry.state {
                State::Hello { .. } => {
                    self.counts.timed_out += 1;
                    self.remove(conn);
                    self.actions.push_back(Action::Close(conn));
                }
                State::Waiting { .. } => {
                    self.counts.timed_out += 1;
                    self.refuse(conn, b"error nobody came to the room in time\n");
                }
                State::Placing => {}
                State::Paired {
                    partner, backlog, ..
                } => {
                    let (partner, how) = (
                        *partner,
                        if *backlog {
                            PairEnd::Stalled
                        } else {
                            PairEnd::Idle
                        },
                    );
                    self.actions.push_back(Action::EndPair(conn, partner));
                    self.pair_ended(conn, partner, how, 0, now);
                }
            }
        }
        if self.next_summary.is_some_and(|t| now >= t) {
            self.summary();
            self.next_summary = None;
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next line for the log.
    pub fn poll_log(&mut self) -> Option<String> {
        self.log.pop_front()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn pairs(&self) -> usize {
        self.pairs
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    // ----- bookkeeping -----------------------------------------------------

    fn insert(&mut self, conn: ConnId, entry: Entry) {
        if let Some(t) = entry.deadline {
            self.timers.insert((t, conn));
        }
        self.conns.insert(conn, entry);
    }

    fn set_deadline(&mut self, conn: ConnId, deadline: Option<Instant>) {
        let Some(e) = self.conns.get_mut(&conn) else {
            return;
        };
        if e.deadline == deadline {
            return;
        }
        if let Some(old) = e.deadline.take() {
            self.timers.remove(&(old, conn));
        }
        if let Some(t) = deadline {
            self.timers.insert((t, conn));
        }
        e.deadline = deadline;
    }

    fn remove(&mut self, conn: ConnId) {
        let Some(e) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(t) = e.deadline {
            self.timers.remove(&(t, conn));
        }
        match &e.state {
            State::Hello { .. } => self.hellos -= 1,
            State::Waiting { hello } => self.waiting.remove(&hello.token, conn),
            State::Placing | State::Paired { .. } => {}
        }
        for s in [self.sources.get_mut(&e.source)]
            .into_iter()
            .chain([e.subnet.and_then(|n| self.subnets.get_mut(&n))])
            .flatten()
        {
            s.conns -= 1;
            if e.room {
                s.rooms -= 1;
            }
        }
        self.forget_idle_source(e.source, e.subnet);
    }

    /// A source with no connections is kept only while its rate window
    /// or the rooms it tried matter; it goes at its next refusal or
    /// connection otherwise, or when the tables outgrow the connections.
    fn forget_idle_source(&mut self, source: u128, subnet: Option<u128>) {
        let idle = |s: &Source| s.conns == 0 && s.new_in_window == 0 && s.tokens.is_empty();
        if self.sources.get(&source).is_some_and(idle) {
            self.sources.remove(&source);
        }
        if let Some(n) = subnet.filter(|n| self.subnets.get(n).is_some_and(idle)) {
            self.subnets.remove(&n);
        }
        // Bound the tables: sources with no connections are dropped once
        // they are larger than the connections could need.
        for table in [&mut self.sources, &mut self.subnets] {
            if table.len() > 2 * self.limits.max_connections {
                table.retain(|_, s| s.conns > 0);
            }
        }
    }

    /// Refuses a connection in the hello state.
    fn refuse(&mut self, conn: ConnId, line: &[u8]) {
        self.remove(conn);
        self.actions.push_back(Action::Refuse {
            conn,
            line: line.to_vec(),
        });
    }

    fn wake_summary(&mut self, now: Instant) {
        if self.next_summary.is_none() {
            self.next_summary = Some(now + self.limits.summary_every);
        }
    }

    fn summary(&mut self) {
        let c = std::mem::take(&mut self.counts);
        self.log.push_back(format!(
            "now {} pairs, {} waiting, {} connections; in the last {} s: {} paired, {} ended ({} moved), \
             {} bad hellos, {} impatient, {} timed out, {} refused by limits ({} for trying too many rooms), \
             {} redundant",
            self.pairs,
            self.waiting.len(),
            self.conns.len(),
            self.limits.summary_every.as_secs(),
            c.paired,
            c.ended,
            human_bytes(c.bytes),
            c.bad_hellos,
            c.impatient,
            c.timed_out,
            c.refused,
            c.probes,
            c.redundant,
        ));
    }
}

/// `12.3 MiB`, for the log.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
