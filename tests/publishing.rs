//! Publishing: a track is announced as soon as the offer that sends it is answered, before its
//! first packet, and ended when an offer stops sending it; the tracks of one offer reach each
//! subscriber in one server offer; an offer cannot announce without bound.

mod common;

use common::{PATIENCE, join, server, wait_for_counts};
use loadtest::signaling::{self, Received, SignalingReceiver, SignalingSender};
use switchyard::Counts;
use switchyard::signal::protocol::{ErrorCode, ServerMessage};

/// A certificate fingerprint of the right shape; nothing here gets as far as DTLS.
const FINGERPRINT: &str = "sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

/// An offer from a client that sends the tracks named in `sections` (`(kind, track id,
/// direction)`), on media sections 0, 1, ...: what a browser's offer holds, less its candidates.
fn offer(sections: &[(&str, &str, &str)]) -> String {
    let mids: Vec<String> = (0..sections.len()).map(|mid| mid.to_string()).collect();
    let mut sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\na=msid-semantic: WMS stream\r\n",
        mids.join(" ")
    );
    for (mid, (kind, track, direction)) in sections.iter().enumerate() {
        let (payload_type, codec) = if *kind == "audio" {
            (111, "opus/48000/2")
        } else {
            (96, "VP8/90000")
        };
        sdp.push_str(&format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF {payload_type}\r\nc=IN IP4 0.0.0.0\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
             a=fingerprint:{FINGERPRINT}\r\na=setup:actpass\r\na=mid:{mid}\r\na={direction}\r\n\
             a=msid:stream {track}\r\na=rtcp-mux\r\na=rtpmap:{payload_type} {codec}\r\n\
             a=ssrc:{ssrc} cname:publisher\r\n",
            ssrc = 1000 + mid,
        ));
    }
    sdp
}

async fn next_message(receiver: &mut SignalingReceiver) -> ServerMessage {
    match tokio::time::timeout(PATIENCE, receiver.next()).await {
        Ok(Some(Received::Message(message))) => message,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Joins `room` as `name` over a bare socket, which sends only what the test writes: the
/// socket's two halves and the participant id.
async fn join_bare(
    server: &switchyard::RunningServer,
    room: &str,
    name: &str,
) -> (SignalingSender, SignalingReceiver, String) {
    let (mut sender, mut receiver) = signaling::connect(&server.websocket_url())
        .await
        .expect("the socket opens");
    sender
        .send_raw(format!(
            r#"{{"type": "join", "room": "{room}", "name": "{name}"}}"#
        ))
        .await
        .expect("join sent");
    match next_message(&mut receiver).await {
        ServerMessage::Joined { participant, .. } => (sender, receiver, participant.to_string()),
        other => panic!("expected joined, got {other:?}"),
    }
}

async fn send_offer(sender: &mut SignalingSender, sdp: &str) {
    let frame = serde_json::json!({"type": "offer", "sdp": sdp}).to_string();
    sender.send_raw(frame).await.expect("offer sent");
}

async fn expect_answer(receiver: &mut SignalingReceiver) {
    match next_message(receiver).await {
        ServerMessage::Answer { .. } => {}
        other => panic!("expected an answer, got {other:?}"),
    }
}

/// Track ids `camera0`, `camera1`, ... `count` of them.
fn cameras(count: usize) -> Vec<String> {
    (0..count).map(|index| format!("camera{index}")).collect()
}

/// The sections of an offer sending every one of `tracks` as video.
fn sending_video(tracks: &[String]) -> Vec<(&str, &str, &str)> {
    tracks
        .iter()
        .map(|track| ("video", track.as_str(), "sendonly"))
        .collect()
}

/// The tracks of `publisher` announced to `observed`'s participant and not ended since.
fn announced_tracks(observed: &loadtest::Observed, publisher: &str) -> Vec<String> {
    let mut tracks: Vec<String> = observed
        .received
        .values()
        .filter(|track| track.announced && track.participant == publisher)
        .map(|track| track.track.clone())
        .collect();
    tracks.sort();
    tracks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offered_tracks_are_announced_before_their_first_packet() {
    let server = server().await;
    let ada = join(&server, "early", "ada", vec![]).await;
    let (mut sender, mut receiver, brian) = join_bare(&server, "early", "Brian").await;

    // Brian's offer sends a microphone and a camera; no packet ever follows it.
    send_offer(
        &mut sender,
        &offer(&[("audio", "mic", "sendonly"), ("video", "cam", "sendonly")]),
    )
    .await;
    expect_answer(&mut receiver).await;
    ada.wait_until("brian's two tracks", PATIENCE, |observed| {
        announced_tracks(observed, &brian) == ["cam", "mic"]
    })
    .await
    .expect("the offered tracks are announced without any media");

    // The next offer stops the camera: it ends, though it never sent a packet.
    send_offer(
        &mut sender,
        &offer(&[("audio", "mic", "sendonly"), ("video", "cam", "inactive")]),
    )
    .await;
    ada.wait_until("only the microphone", PATIENCE, |observed| {
        announced_tracks(observed, &brian) == ["mic"]
    })
    .await
    .expect("a track the offer stops sending ends");

    sender.close().await;
    ada.wait_until("no track of brian's", PATIENCE, |observed| {
        announced_tracks(observed, &brian).is_empty()
    })
    .await
    .expect("leaving ends the announced tracks");
    ada.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracks_of_one_offer_reach_a_subscriber_in_one_offer() {
    let server = server().await;
    // Ada listens over a bare socket too. She publishes nothing (her offer has no media
    // sections) and never answers, so the first offer the server makes her is the only one,
    // and it must hold all of Brian's tracks.
    let (mut ada_sender, mut ada, _) = join_bare(&server, "together", "Ada").await;
    send_offer(&mut ada_sender, &offer(&[])).await;
    expect_answer(&mut ada).await;
    let (mut sender, mut receiver, brian) = join_bare(&server, "together", "Brian").await;

    let tracks = cameras(8);
    let sections = sending_video(&tracks);
    send_offer(&mut sender, &offer(&sections)).await;
    expect_answer(&mut receiver).await;

    let mut announced = Vec::new();
    let sdp = loop {
        match next_message(&mut ada).await {
            ServerMessage::TrackPublished {
                participant, track, ..
            } if participant == brian.as_str() => announced.push(track),
            ServerMessage::Offer { sdp } => break sdp,
            _ => {}
        }
    };
    announced.sort();
    assert_eq!(announced, tracks, "every track announced before the offer");
    let sections = sdp.matches("\r\nm=video ").count();
    assert_eq!(sections, 8, "one offer carries every track:\n{sdp}");

    sender.close().await;
    ada_sender.close().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_sending_too_many_tracks_is_refused_and_announces_none() {
    let server = server().await;
    let ada = join(&server, "crowded", "ada", vec![]).await;
    let (mut sender, mut receiver, brian) = join_bare(&server, "crowded", "Brian").await;

    let tracks = cameras(9);
    let sections = sending_video(&tracks);
    send_offer(&mut sender, &offer(&sections)).await;
    match next_message(&mut receiver).await {
        ServerMessage::Error { code, message } => {
            assert_eq!(code, ErrorCode::InvalidSdp);
            assert!(message.contains("at most 8"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }

    // The session goes on: an offer within the limit is answered and announced.
    send_offer(&mut sender, &offer(&sections[..8])).await;
    expect_answer(&mut receiver).await;
    ada.wait_until("brian's eight cameras", PATIENCE, |observed| {
        announced_tracks(observed, &brian).len() == 8
    })
    .await
    .expect("the offer within the limit is announced");
    assert!(
        ada.observed()
            .messages
            .iter()
            .filter(|message| matches!(message, ServerMessage::TrackPublished { .. }))
            .count()
            == 8,
        "the refused offer announced nothing"
    );

    sender.close().await;
    ada.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}
