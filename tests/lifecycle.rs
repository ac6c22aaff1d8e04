//! Participants come and go: everybody else is told, tracks are removed by renegotiation, and
//! nothing is left behind.

mod common;

use common::{
    PATIENCE, camera_and_microphone, join, server, wait_for_counts, wait_for_flowing_tracks,
    wait_for_tasks,
};
use loadtest::{Participant, TrackSpec};
use switchyard::Counts;
use switchyard::signal::protocol::ServerMessage;

fn saw_left(participant: &Participant, who: &str) -> bool {
    participant.observed().messages.iter().any(|message| {
        matches!(message, ServerMessage::ParticipantLeft { participant } if participant == who)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_and_vanishing_participants_are_removed_everywhere() {
    let server = server().await;
    let leaver = join(&server, "exits", "leaver", camera_and_microphone()).await;
    let vanisher = join(&server, "exits", "vanisher", camera_and_microphone()).await;
    let stayers = [
        join(&server, "exits", "stayer-1", camera_and_microphone()).await,
        join(&server, "exits", "stayer-2", camera_and_microphone()).await,
    ];
    // Everybody, not only those who stay: the counts below include the subscriptions of the
    // two who go.
    for participant in [&leaver, &vanisher].into_iter().chain(&stayers) {
        wait_for_flowing_tracks(participant, 6).await;
    }
    assert_eq!(
        server.counts(),
        Counts {
            rooms: 1,
            participants: 4,
            peers: 4,
            publications: 8,
            subscriptions: 24
        }
    );

    let (leaver_id, vanisher_id) = (leaver.id().to_owned(), vanisher.id().to_owned());
    let answered_before: Vec<usize> = stayers
        .iter()
        .map(|stayer| stayer.observed().answers_sent.len())
        .collect();
    leaver.leave().await;
    vanisher.vanish().await;

    for (stayer, answered_before) in stayers.iter().zip(answered_before) {
        stayer
            .wait_until(
                "both departures, their tracks renegotiated away",
                PATIENCE,
                |observed| {
                    observed.live_tracks().count() == 2
                        && observed.live_tracks().all(|track| {
                            track.participant != leaver_id && track.participant != vanisher_id
                        })
                        && observed.answers_sent.len() > answered_before
                },
            )
            .await
            .expect("the departed participants' tracks are removed");
        assert!(saw_left(stayer, &leaver_id));
        assert!(saw_left(stayer, &vanisher_id));
        let unpublished = stayer
            .observed()
            .messages
            .iter()
            .filter(|message| matches!(message, ServerMessage::TrackUnpublished { .. }))
            .count();
        assert_eq!(unpublished, 4, "each departed track is unpublished once");
    }
    wait_for_counts(
        &server,
        Counts {
            rooms: 1,
            participants: 2,
            peers: 2,
            publications: 4,
            subscriptions: 4,
        },
    )
    .await;

    for stayer in stayers {
        stayer.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_slot_carries_the_next_track() {
    let server = server().await;
    let watcher = join(&server, "reuse", "watcher", vec![]).await;
    let first = join(
        &server,
        "reuse",
        "first",
        vec![TrackSpec::Video(Default::default())],
    )
    .await;
    watcher
        .wait_until("the first track", PATIENCE, |observed| {
            observed.live_tracks().any(|track| track.intact > 0)
        })
        .await
        .expect("video flows");
    let first_mid = watcher
        .observed()
        .received
        .keys()
        .next()
        .cloned()
        .expect("a mid");
    first.leave().await;
    watcher
        .wait_until("the first track to go", PATIENCE, |observed| {
            observed.live_tracks().count() == 0
        })
        .await
        .expect("the track is unpublished");

    let second = join(
        &server,
        "reuse",
        "second",
        vec![TrackSpec::Video(Default::default())],
    )
    .await;
    let second_id = second.id().to_owned();
    watcher
        .wait_until("the second track on the same mid", PATIENCE, |observed| {
            observed.received.len() == 1
                && observed.received.get(&first_mid).is_some_and(|track| {
                    track.announced && track.participant == second_id && track.tags.len() == 2
                })
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: {:#?}", watcher.observed().received));
    let track = &watcher.observed().received[&first_mid];
    assert_eq!(track.corrupted, 0);

    second.leave().await;
    watcher.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_participants_join_and_leave_five_times() {
    let server = server().await;
    // The HTTP server's own task, plus the one axum's graceful shutdown spawns on the first
    // connection: that is all that may be left after each round.
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
        + 1;
    for round in 0..5 {
        let mut participants = Vec::new();
        for index in 0..20 {
            participants.push(
                join(
                    &server,
                    "churn",
                    &format!("p{round}-{index}"),
                    vec![TrackSpec::Audio],
                )
                .await,
            );
        }
        for participant in &participants {
            participant
                .wait_until("nineteen live tracks", PATIENCE, |observed| {
                    observed.flowing_tracks() == 19
                })
                .await
                .unwrap_or_else(|error| {
                    let observed = participant.observed();
                    let tracks: Vec<_> = observed
                        .received
                        .iter()
                        .map(|(mid, track)| {
                            (mid.clone(), track.announced, track.packets, track.intact)
                        })
                        .collect();
                    panic!(
                        "round {round}: {}: {error}; state {:?}; tracks {tracks:?}",
                        participant.id(),
                        observed.connection_state
                    )
                });
        }
        assert_eq!(
            server.counts(),
            Counts {
                rooms: 1,
                participants: 20,
                peers: 20,
                publications: 20,
                subscriptions: 380
            }
        );
        // Half say goodbye, half just disappear.
        for (index, participant) in participants.into_iter().enumerate() {
            if index % 2 == 0 {
                participant.leave().await;
            } else {
                participant.vanish().await;
            }
        }
        wait_for_counts(&server, Counts::default()).await;
        // Every task started for the round's participants, on either side, has ended.
        wait_for_tasks(baseline).await;
    }
}
