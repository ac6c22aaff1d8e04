//! Media flows between participants byte for byte, and never back to its publisher.

mod common;

use common::{PATIENCE, camera_and_microphone, join, server, wait_for_counts};
use switchyard::Counts;
use switchyard::signal::protocol::TrackKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_receive_each_others_tracks_intact() {
    let server = server().await;
    let mut participants = Vec::new();
    for name in ["ada", "brian", "chen"] {
        participants.push(join(&server, "trio", name, camera_and_microphone()).await);
    }
    let ids: Vec<String> = participants.iter().map(|p| p.id().to_owned()).collect();

    for participant in &participants {
        participant
            .wait_until("four live tracks with packets", PATIENCE, |observed| {
                observed.live_tracks().count() == 4
                    && observed.live_tracks().all(|track| track.intact >= 20)
            })
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{}: {error}: {:#?}",
                    participant.id(),
                    participant.observed().received
                )
            });
    }

    for participant in &participants {
        let observed = participant.observed();
        let mut senders: Vec<(String, TrackKind)> = observed
            .live_tracks()
            .map(|track| {
                (
                    track.participant.clone(),
                    track.kind.expect("announced kind"),
                )
            })
            .collect();
        senders.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
        let mut expected: Vec<(String, TrackKind)> = ids
            .iter()
            .filter(|id| id.as_str() != participant.id())
            .flat_map(|id| {
                [
                    (id.clone(), TrackKind::Audio),
                    (id.clone(), TrackKind::Video),
                ]
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_str().cmp(b.1.as_str())));
        assert_eq!(
            senders,
            expected,
            "{} receives exactly the others' tracks",
            participant.id()
        );
        for track in observed.received.values() {
            assert_eq!(
                track.corrupted, 0,
                "every payload arrives as sent: {track:?}"
            );
            assert_eq!(
                track.foreign, 0,
                "every packet arrives on its own track: {track:?}"
            );
            assert_ne!(
                track.participant,
                participant.id(),
                "nobody receives their own tracks"
            );
            assert_eq!(track.tags.len(), 1, "one source per track: {track:?}");
        }
    }

    for participant in participants {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}
