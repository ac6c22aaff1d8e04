//! Active speaker detection end to end: publishers stamp the RFC 6464 audio level on their
//! packets, as browsers do, and everybody in the room is told who speaks.

mod common;

use std::time::{Duration, Instant};

use common::publisher::{HandPublisher, Seen};
use common::{PATIENCE, server, wait_for_counts, wait_for_tasks};
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use switchyard::Counts;
use switchyard::media::audio_level::{AUDIO_LEVEL_URI, SILENCE, SPEECH_LEVEL};
use switchyard::rtc::extmap::audio_level_id;
use switchyard::rtc::setup::{self as engine, OPUS_PAYLOAD_TYPE};
use switchyard::signal::protocol::{ServerMessage, TrackKind};

/// A level well inside speech: −10 dBov.
const LOUD: u8 = 10;

/// The server's codecs, and the audio level on the audio a participant sends, as a browser
/// offers it.
fn sending_levels() -> MediaEngine {
    let mut media_engine = engine::media_engine().expect("codecs");
    media_engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            Some(RTCRtpTransceiverDirection::Sendonly),
        )
        .expect("the audio level extension registers");
    media_engine
}

/// A participant with a microphone whose level the test sets, packet by packet.
struct Talker {
    publisher: HandPublisher,
    level_id: u8,
    sequence_number: u16,
    timestamp: u32,
}

impl Talker {
    async fn join(server: &switchyard::RunningServer, name: &str) -> Talker {
        let publisher = HandPublisher::join_with_engine(
            server,
            "speakers",
            name,
            &[TrackKind::Audio],
            sending_levels(),
        )
        .await;
        let level_id = audio_level_id(&publisher.local_sdp().await)
            .expect("the offer carries the audio level extension");
        publisher
            .wait_until("the connection", |seen| {
                seen.state == Some(RTCPeerConnectionState::Connected)
            })
            .await;
        Talker {
            publisher,
            level_id,
            sequence_number: rand::random(),
            timestamp: rand::random(),
        }
    }

    fn id(&self) -> &str {
        &self.publisher.id
    }

    /// Sends 20 ms of Opus at `level` (−dBov), with the voice activity flag on speech.
    async fn send(&mut self, level: u8) {
        self.sequence_number = self.sequence_number.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        let voice = if level <= SPEECH_LEVEL { 0x80 } else { 0 };
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                payload_type: OPUS_PAYLOAD_TYPE,
                sequence_number: self.sequence_number,
                timestamp: self.timestamp,
                ssrc: self.publisher.tracks[0].ssrc,
                extension: true,
                extension_profile: 0xBEDE,
                extensions: vec![rtp::header::Extension {
                    id: self.level_id,
                    payload: bytes::Bytes::copy_from_slice(&[voice | level]),
                }],
                ..Default::default()
            },
            // An Opus frame's table of contents and a little payload.
            payload: bytes::Bytes::from_static(&[0x78, 0x0b, 0xe4, 0xc1, 0x36]),
        };
        self.publisher.write(0, packet).await;
    }
}

/// Every participant sends 20 ms of audio at its level of `levels` every 20 ms until `done`
/// holds; returns how long that took.
async fn talk_until(
    talkers: &mut [Talker],
    levels: &[u8],
    what: &str,
    done: impl Fn(&[Seen]) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    loop {
        clock.tick().await;
        for (talker, level) in talkers.iter_mut().zip(levels) {
            talker.send(*level).await;
        }
        let seen: Vec<Seen> = talkers
            .iter()
            .map(|talker| talker.publisher.seen())
            .collect();
        if done(&seen) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {what}: {:#?}",
            seen.iter().map(speakers_messages).collect::<Vec<_>>()
        );
    }
}

/// The `speakers` messages a participant received, as (active, speaking).
fn speakers_messages(seen: &Seen) -> Vec<(Option<String>, Vec<String>)> {
    seen.messages
        .iter()
        .filter_map(|message| match message {
            ServerMessage::Speakers { active, speaking } => Some((
                active.as_ref().map(|active| active.as_str().to_owned()),
                speaking.iter().map(|id| id.as_str().to_owned()).collect(),
            )),
            _ => None,
        })
        .collect()
}

/// Whether the latest `speakers` a participant received names `who` as the active speaker and
/// the only one speaking.
fn told_only(seen: &Seen, who: &str) -> bool {
    speakers_messages(seen).last() == Some(&(Some(who.to_owned()), vec![who.to_owned()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everybody_is_told_who_speaks_and_the_active_speaker_follows_the_conversation() {
    let server = server().await;
    // The HTTP server's own task, plus the one axum's graceful shutdown spawns on the first
    // connection (as in `lifecycle`).
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        + 1;
    let mut talkers = vec![
        Talker::join(&server, "ada").await,
        Talker::join(&server, "grace").await,
        Talker::join(&server, "edsger").await,
    ];
    let ids: Vec<String> = talkers
        .iter()
        .map(|talker| talker.id().to_owned())
        .collect();

    // Silence from everybody, until the server reads all three microphones; a silent room is
    // told nothing.
    talk_until(&mut talkers, &[SILENCE; 3], "the three microphones", |_| {
        server.counts().publications == 3
    })
    .await;
    let silence_until = Instant::now() + Duration::from_secs(1);
    talk_until(&mut talkers, &[SILENCE; 3], "a second of silence", |_| {
        Instant::now() >= silence_until
    })
    .await;
    for talker in &talkers {
        assert_eq!(speakers_messages(&talker.publisher.seen()), vec![]);
    }

    // Ada speaks: everybody, Ada included, hears of it within a second.
    let took = talk_until(
        &mut talkers,
        &[LOUD, SILENCE, SILENCE],
        "Ada to be the active speaker",
        |seen| seen.iter().all(|seen| told_only(seen, &ids[0])),
    )
    .await;
    assert!(took <= Duration::from_secs(1), "it took {took:?}");

    // Ada stops and Grace speaks: the active speaker changes.
    let took = talk_until(
        &mut talkers,
        &[SILENCE, LOUD, SILENCE],
        "Grace to take over",
        |seen| seen.iter().all(|seen| told_only(seen, &ids[1])),
    )
    .await;
    assert!(took <= Duration::from_secs(2), "it took {took:?}");
    for talker in &talkers {
        let told = speakers_messages(&talker.publisher.seen());
        assert!(
            told.iter()
                .all(|(active, speaking)| active.as_ref() != Some(&ids[2])
                    && !speaking.contains(&ids[2])),
            "the silent participant never speaks: {told:?}"
        );
    }

    // Somebody who joins now hears who has the floor right after `joined`.
    let newcomer = Talker::join(&server, "barbara").await.publisher;
    newcomer
        .wait_until("the speakers", |seen| !speakers_messages(seen).is_empty())
        .await;
    let messages = newcomer.seen().messages;
    let joined = messages
        .iter()
        .position(|message| matches!(message, ServerMessage::Joined { .. }))
        .expect("joined");
    match &messages[joined + 1] {
        ServerMessage::Speakers { active, .. } => {
            assert_eq!(active.as_ref().map(|id| id.as_str()), Some(ids[1].as_str()));
        }
        other => panic!("after joined came {other:?}"),
    }

    newcomer.leave().await;
    for talker in talkers {
        talker.publisher.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
    // The room's speaker task ended with the room.
    wait_for_tasks(baseline).await;
}
