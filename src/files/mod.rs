//! Files in the room, on this machine's side: the names a peer offers,
//! made harmless ([`name`]), and the file system work of receiving into a
//! directory and reading a file to send ([`disk`]). No protocol and no
//! session state here: the session decides what to offer, accept and
//! verify; these modules only make sure that whatever a peer sends, a file
//! lands whole under a safe, fresh name in the chosen directory, or not at
//! all.

pub mod disk;
pub mod name;
