//! Switchyard's own signaling (`docs/signaling.md`): one socket, one peer connection.
//!
//! Every server message is kept in the participant's log (the integration tests read it), and
//! the few a participant acts on become [`SignalEvent`]s. Everything happens on
//! [`ConnectionId::MAIN`]: the participant publishes and receives on the same connection.

use std::time::{Duration, Instant};

use ::switchyard::signal::protocol::{ClientMessage, IceCandidate, ServerMessage};
use tokio::sync::mpsc;
use webrtc::peer_connection::RTCIceCandidateInit;

use super::{ConnectionId, JoinRequest, Session, SignalCommand, SignalEvent, Target};
use crate::ClientError;
use crate::server_probe;
use crate::signaling::{self, Received, SignalingReceiver, SignalingSender};

/// How many redirects a join follows: a room lives on one node, so one is all it takes.
const MAX_REDIRECTS: usize = 3;

/// How long the server may take to accept a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A Switchyard server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switchyard;

#[async_trait::async_trait]
impl Target for Switchyard {
    fn name(&self) -> &'static str {
        "switchyard"
    }

    fn metrics_url(&self, url: &str) -> Option<String> {
        server_probe::metrics_url(url)
    }

    async fn join(&self, request: JoinRequest) -> Result<Session, ClientError> {
        let mut url = request.url.clone();
        let mut redirects = 0;
        loop {
            match try_join(&request, &url).await? {
                Attempt::Joined(session) => return Ok(session),
                // The room lives on another node of a cluster: the same join goes there.
                Attempt::Redirected(to) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    url = to;
                }
                Attempt::Redirected(to) => {
                    return Err(ClientError::Signaling(format!(
                        "redirected more than {MAX_REDIRECTS} times, last to {to}"
                    )));
                }
            }
        }
    }
}

/// How one join went: in, or sent to another node.
enum Attempt {
    Joined(Session),
    Redirected(String),
}

/// Joins at `url`, which may answer with a redirect.
async fn try_join(request: &JoinRequest, url: &str) -> Result<Attempt, ClientError> {
    {
        let (mut sender, mut receiver) = signaling::connect_with(url, request.tls.clone()).await?;
        sender
            .send(&ClientMessage::Join {
                room: request.room.clone(),
                name: request.name.clone(),
                token: request.token.clone(),
            })
            .await?;
        let mut messages = Vec::new();
        let (participant, ice_servers) = loop {
            let message = match tokio::time::timeout(JOIN_TIMEOUT, receiver.next()).await {
                Err(_) => return Err(ClientError::Timeout("`joined`".to_owned())),
                Ok(None | Some(Received::Closed(_))) => {
                    return Err(ClientError::Signaling("closed before `joined`".to_owned()));
                }
                Ok(Some(Received::Unknown(text))) => {
                    return Err(ClientError::Signaling(format!("unexpected frame {text}")));
                }
                Ok(Some(Received::Message(message))) => message,
            };
            let joined = match &message {
                ServerMessage::Joined {
                    participant,
                    ice_servers,
                    ..
                } => Some((participant.clone(), ice_servers.clone())),
                ServerMessage::Error { code, message } => {
                    return Err(ClientError::Refused(*code, message.clone()));
                }
                ServerMessage::Redirect { url } => {
                    sender.close().await;
                    return Ok(Attempt::Redirected(url.clone()));
                }
                _ => None,
            };
            messages.push(message);
            if let Some(joined) = joined {
                break joined;
            }
        };
        let joined_at = Instant::now();
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(relay(sender, receiver, events_tx, commands_rx));
        Ok(Attempt::Joined(Session {
            participant: participant.to_string(),
            url: url.to_owned(),
            joined_at,
            messages,
            ice_servers,
            events,
            commands,
            task,
        }))
    }
}

/// Carries messages both ways until the socket closes.
async fn relay(
    mut sender: SignalingSender,
    mut receiver: SignalingReceiver,
    events: mpsc::UnboundedSender<SignalEvent>,
    mut commands: mpsc::UnboundedReceiver<SignalCommand>,
) {
    loop {
        tokio::select! {
            frame = receiver.next() => match frame {
                Some(Received::Message(message)) => {
                    for event in events_of(message) {
                        let _ = events.send(event);
                    }
                }
                Some(Received::Unknown(text)) => {
                    // A message this build's protocol does not know yet may still be one the
                    // participant acts on.
                    let value = serde_json::from_str(&text).unwrap_or_default();
                    if let Some(event) = hint_of(&value) {
                        let _ = events.send(event);
                    }
                }
                Some(Received::Closed(code)) => {
                    let _ = events.send(SignalEvent::Closed(code));
                    break;
                }
                None => {
                    let _ = events.send(SignalEvent::Closed(None));
                    break;
                }
            },
            Some(command) = commands.recv() => {
                let Some(message) = message_of(command) else { continue };
                // A failed send shows up as the socket closing on the receiving side.
                let _ = match message {
                    Outgoing::Message(message) => sender.send(&message).await,
                    Outgoing::Raw(text) => sender.send_raw(text).await,
                };
            }
        }
    }
}

/// What one server message means to the participant: it is always logged, and some also ask
/// for action.
fn events_of(message: ServerMessage) -> Vec<SignalEvent> {
    let main = ConnectionId::MAIN;
    let action = match &message {
        ServerMessage::Offer { sdp } => Some(SignalEvent::Offer {
            connection: main,
            sdp: sdp.clone(),
        }),
        ServerMessage::Answer { sdp } => Some(SignalEvent::Answer {
            connection: main,
            sdp: sdp.clone(),
        }),
        ServerMessage::Candidate { candidate } => Some(SignalEvent::Candidate {
            connection: main,
            candidate: RTCIceCandidateInit {
                candidate: candidate.candidate.clone(),
                sdp_mid: candidate.sdp_mid.clone(),
                sdp_mline_index: candidate.sdp_m_line_index,
                username_fragment: candidate.username_fragment.clone(),
                url: None,
            },
        }),
        ServerMessage::TrackPublished {
            participant,
            track,
            kind,
            mid,
            ..
        } => Some(SignalEvent::TrackAnnounced {
            connection: main,
            mid: mid.clone(),
            participant: participant.to_string(),
            track: track.clone(),
            kind: *kind,
        }),
        ServerMessage::TrackUnpublished { mid, .. } => Some(SignalEvent::TrackEnded {
            connection: main,
            mid: mid.clone(),
        }),
        _ => serde_json::to_value(&message)
            .ok()
            .and_then(|value| hint_of(&value)),
    };
    // Logged first, so a test that sees an effect also finds the message that caused it.
    std::iter::once(SignalEvent::Message(message))
        .chain(action)
        .collect()
}

/// What the server says about layers and paused videos (`layers`, `video_paused`), read from
/// the message's JSON so it is understood whether or not [`ServerMessage`] names it.
fn hint_of(value: &serde_json::Value) -> Option<SignalEvent> {
    let text = |field: &str| value.get(field)?.as_str().map(str::to_owned);
    match value.get("type")?.as_str()? {
        "layers" => Some(SignalEvent::Layers {
            track: text("track")?,
            active: value
                .get("active")?
                .as_array()?
                .iter()
                .filter_map(|rid| rid.as_str().map(str::to_owned))
                .collect(),
        }),
        "video_paused" => Some(SignalEvent::VideoPaused {
            participant: text("participant")?,
            track: text("track")?,
            paused: value.get("paused")?.as_bool()?,
        }),
        _ => None,
    }
}

enum Outgoing {
    Message(ClientMessage),
    Raw(String),
}

fn message_of(command: SignalCommand) -> Option<Outgoing> {
    Some(Outgoing::Message(match command {
        SignalCommand::Offer { sdp, .. } => ClientMessage::Offer { sdp },
        SignalCommand::Answer { sdp, .. } => ClientMessage::Answer { sdp },
        SignalCommand::Candidate { candidate, .. } => ClientMessage::Candidate {
            candidate: IceCandidate {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_m_line_index: candidate.sdp_mline_index,
                username_fragment: candidate.username_fragment,
            },
        },
        SignalCommand::Leave => ClientMessage::Leave {},
        SignalCommand::Raw(text) => return Some(Outgoing::Raw(text)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layers_and_paused_videos_are_read_from_their_json() {
        let layers = json!({"type": "layers", "track": "video0", "active": ["q", "h"]});
        match hint_of(&layers) {
            Some(SignalEvent::Layers { track, active }) => {
                assert_eq!(track, "video0");
                assert_eq!(active, ["q", "h"]);
            }
            other => panic!("not layers: {other:?}"),
        }
        let paused = json!({"type": "video_paused", "participant": "PA_1", "track": "video0", "paused": true});
        match hint_of(&paused) {
            Some(SignalEvent::VideoPaused {
                participant,
                track,
                paused,
            }) => assert_eq!(
                (participant.as_str(), track.as_str(), paused),
                ("PA_1", "video0", true)
            ),
            other => panic!("not video_paused: {other:?}"),
        }
        assert!(hint_of(&json!({"type": "layers", "track": "video0"})).is_none());
        assert!(hint_of(&json!({"type": "speakers", "active": null, "speaking": []})).is_none());
        assert!(hint_of(&json!("layers")).is_none());
    }
}
