//! Wire protocol v1: the preface, the key exchange, the key schedule and the
//! record layer. Pure functions and state machines over byte buffers; the
//! full description with the record diagram is in `PROTOCOL.md`.

pub mod handshake;
pub mod keys;
pub mod record;
