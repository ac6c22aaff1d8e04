//! Ids that would be easy to confuse as bare integers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// One participant's media connection on the server, unique for the process's life. It names
/// the media worker that owns the connection, so that any worker can tell where a packet for it
/// goes without asking anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    serial: u64,
    worker: WorkerIndex,
}

impl ConnectionId {
    /// A fresh id for a connection on `worker`.
    pub fn next(worker: WorkerIndex) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            serial: NEXT.fetch_add(1, Ordering::Relaxed),
            worker,
        }
    }

    /// The worker that owns it.
    pub fn worker(self) -> WorkerIndex {
        self.worker
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.serial)
    }
}

/// A transceiver of one connection, as the WebRTC core numbers them (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransceiverIndex(pub usize);

/// One of the media engine's worker threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerIndex(pub usize);

impl fmt::Display for WorkerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// A published track, unique for the process's life: what down-tracks, subscriptions and the
/// publisher's feedback name it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicationKey(pub(crate) u64);

impl PublicationKey {
    /// A fresh key.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for PublicationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One subscriber's down-track, unique for the process's life: whose bitrate estimate a
/// publisher's aggregation holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriberKey(pub(crate) u64);

impl SubscriberKey {
    /// A fresh key.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// One of a published track's simulcast layers: its position in the publisher's
/// `a=simulcast` list, or 0 for a track sent as one stream. The position says nothing about
/// quality; the layers' measured resolutions order them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LayerIndex(pub u8);

impl fmt::Display for LayerIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "L{}", self.0)
    }
}

/// An RTP stream's synchronization source: the publisher's, as it arrives, or a subscriber
/// slot's own, as forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

/// A media section's identifier in the SDP (`a=mid:`), which names a transceiver on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mid(String);

impl Mid {
    /// The identifier as the SDP writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it names nothing (a section without `a=mid:`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Mid {
    fn from(mid: &str) -> Self {
        Self(mid.to_owned())
    }
}

impl From<String> for Mid {
    fn from(mid: String) -> Self {
        Self(mid)
    }
}

impl From<Mid> for String {
    fn from(mid: Mid) -> Self {
        mid.0
    }
}

impl fmt::Display for Mid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant, as the server names it for the life of its session (`PA_` and twelve hex
/// digits). The wire carries it as a plain string.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ParticipantId(String);

impl ParticipantId {
    /// A fresh, random id.
    pub fn random() -> Self {
        Self(format!("PA_{:012x}", rand::random::<u64>() >> 16))
    }

    /// The id as the wire carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ParticipantId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl PartialEq<str> for ParticipantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<String> for ParticipantId {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<&str> for ParticipantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A webhook event (`EV_` and sixteen hex digits): a receiver that sees the same id twice got a
/// retry of an event it already has.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A fresh, random id.
    pub fn random() -> Self {
        Self(format!("EV_{:016x}", rand::random::<u64>()))
    }

    /// The id as the event carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An invite link (`IN_` and sixteen hex digits when the server makes it): the server counts
/// the joins made with each.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct InviteId(String);

impl InviteId {
    /// A fresh, random id.
    pub fn random() -> Self {
        Self(format!("IN_{:016x}", rand::random::<u64>()))
    }

    /// The id as the token carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A node of a cluster (`node-` and eight hex digits unless configured): the name its entry,
/// and the rooms placed on it, carry in the cluster's directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct NodeId(String);

/// Why a text cannot be a node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node id is 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`")]
pub struct BadNodeId;

impl NodeId {
    /// A fresh, random id, for a node that was not given one.
    pub fn random() -> Self {
        Self(format!("node-{:08x}", rand::random::<u32>()))
    }

    /// The id as the directory carries it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for NodeId {
    type Err = BadNodeId;

    /// A configured id: short, and safe in a Redis key and a URL path.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fits = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-');
        if fits {
            Ok(Self(text.to_owned()))
        } else {
            Err(BadNodeId)
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
