//! One participant's peer connection, and the events it reports.
//!
//! The connection's callbacks run on its driver task, which must never block, so the handler
//! only forwards each event to the participant's session over a channel; the session acts on
//! them in order, alongside the participant's signaling messages.

use std::sync::Arc;

use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState,
};

use crate::metrics::{Gauge, GaugeGuard, Metrics};
use crate::rtc::engine::{MediaSettings, build_peer_connection};
use crate::rtc::feedback::{FEEDBACK_QUEUE, Feedback};
use crate::rtc::ports::PortLease;

/// Something the peer connection reports to the session.
pub enum PeerEvent {
    /// A local ICE candidate to trickle to the client.
    Candidate(RTCIceCandidateInit),
    /// The connection's state changed.
    State(RTCPeerConnectionState),
    /// The client started sending a track.
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

/// A server-side peer connection; closes itself when dropped.
pub struct Peer {
    connection: Arc<dyn PeerConnection>,
    _port: Option<PortLease>,
    _gauge: GaugeGuard,
}

/// The channels a [`Peer`] reports on.
pub struct PeerChannels {
    /// Connection events.
    pub events: mpsc::UnboundedReceiver<PeerEvent>,
    /// Subscriber RTCP feedback.
    pub feedback: mpsc::Receiver<Feedback>,
}

impl Peer {
    /// Builds a connection with the server's settings.
    pub async fn new(
        settings: &MediaSettings,
        metrics: &Arc<Metrics>,
    ) -> webrtc::error::Result<(Peer, PeerChannels)> {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (feedback_tx, feedback) = mpsc::channel(FEEDBACK_QUEUE);
        let handler = Arc::new(EventForwarder::new(events_tx));
        let (connection, port) = build_peer_connection(settings, handler, feedback_tx).await?;
        let peer = Peer {
            connection,
            _port: port,
            _gauge: GaugeGuard::new(metrics, Gauge::Peers),
        };
        Ok((peer, PeerChannels { events, feedback }))
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Arc<dyn PeerConnection> {
        &self.connection
    }

    /// Closes the connection and stops its driver.
    pub async fn close(self) {
        let _ = self.connection.close().await;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // `close` is idempotent; this covers a session that ends without reaching it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let connection = Arc::clone(&self.connection);
            runtime.spawn(async move {
                let _ = connection.close().await;
            });
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
