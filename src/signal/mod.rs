//! WebSocket signaling: the wire protocol and the session that speaks it.

mod admit;
pub mod closing;
pub mod liveness;
pub mod outbox;
pub mod protocol;
pub mod rate;
pub mod session;
pub mod setup;
pub mod strict_json;
pub mod text;
pub mod views;
pub mod writer;
