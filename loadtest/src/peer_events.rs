//! The events a synthetic participant's peer connection reports.
//!
//! The connection's callbacks run on its driver task, which must never block, so the handler
//! only forwards each event to the participant over a channel; the participant acts on them in
//! order, alongside its signaling.

use std::sync::Arc;

use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};

/// Something the peer connection reports to the participant.
pub enum PeerEvent {
    /// A local ICE candidate to trickle to the server.
    Candidate(RTCIceCandidateInit),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
    /// The server started sending a track.
    Track(Arc<dyn TrackRemote>),
}

impl std::fmt::Debug for PeerEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerEvent::Candidate(candidate) => f.debug_tuple("Candidate").field(candidate).finish(),
            PeerEvent::State(state) => f.debug_tuple("State").field(state).finish(),
            PeerEvent::Track(_) => f.write_str("Track(..)"),
        }
    }
}

/// The connection's event handler: forwards candidates, state changes and new remote tracks to
/// a channel, since callbacks run on the connection's driver and must not block it.
pub struct EventForwarder {
    events: mpsc::UnboundedSender<PeerEvent>,
}

impl EventForwarder {
    /// A handler sending to `events`.
    pub fn new(events: mpsc::UnboundedSender<PeerEvent>) -> Self {
        Self { events }
    }
}

/// The `mid` of the transceiver that receives the remote track `track`.
pub async fn mid_of_remote_track(
    connection: &Arc<dyn PeerConnection>,
    track: &str,
) -> Option<String> {
    for transceiver in connection.get_transceivers().await {
        let Ok(Some(receiver)) = transceiver.receiver().await else {
            continue;
        };
        if receiver.track().track_id().await == track {
            return transceiver.mid().await.ok().flatten();
        }
    }
    None
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EventForwarder {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(mut candidate) = event.candidate.to_json() {
            // The core labels every candidate with an empty mid; with BUNDLE the first media
            // section's index is what a browser needs, and an empty mid would be refused.
            candidate.sdp_mid = None;
            candidate.sdp_mline_index = Some(0);
            let _ = self.events.send(PeerEvent::Candidate(candidate));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }
}
