//! Simulcast in the load test, against an in-process server: a synthetic publisher offers its
//! camera in three layers (`a=rid`, `a=simulcast`) and stamps each packet with its MID and
//! RID; every receiver's report says which layer it received for how long, and what it
//! received in all.
//!
//! With the server's simulcast forwarding, a receiver whose tiles are small ends up on the low
//! layer. A viewer on a weak link has its own file, `loadtest_weak_viewer.rs`, so that no other
//! test's load shares the machine with its timing.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{PATIENCE, server};
use loadtest::synthetic::VideoShape;
use loadtest::view::Tile;
use loadtest::{Impairment, Participant, ParticipantOptions, RunOptions, Scenario, TrackSpec, run};

const RIDS: [&str; 3] = ["q", "h", "f"];

fn simulcast_camera() -> Vec<TrackSpec> {
    vec![
        TrackSpec::Simulcast(VideoShape::default()),
        TrackSpec::Audio,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_publisher_s_layers_reach_a_subscriber_named_by_their_rid() {
    let server = server().await;
    let publisher = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "room", "camera")
            .with_tracks(simulcast_camera()),
    )
    .await
    .expect("the publisher joins");
    let mut options =
        ParticipantOptions::new(server.websocket_url(), "room", "viewer").with_tracks(Vec::new());
    options.tile = Some("320x180".parse().expect("a tile"));
    let subscriber = Participant::join(options)
        .await
        .expect("the subscriber joins");

    // Video arrives intact, its probes naming the layer it was sent on, for a second at least.
    subscriber
        .wait_until("a second of layered video", PATIENCE, |observed| {
            observed.received.values().any(|track| {
                track.intact > 0
                    && track.layers.time_by_rid().values().sum::<Duration>()
                        >= Duration::from_secs(1)
            })
        })
        .await
        .expect("layered video arrives");
    let observed = subscriber.observed();
    let video = observed
        .received
        .values()
        .find(|track| !track.layers.time_by_rid().is_empty())
        .expect("the video");
    assert_eq!(video.corrupted, 0);
    assert_eq!(
        video.foreign, 0,
        "the probes carry the publisher's track tag"
    );
    let received: BTreeSet<String> = video.layers.time_by_rid().into_keys().collect();
    assert!(
        received.iter().all(|rid| RIDS.contains(&rid.as_str())),
        "{received:?}"
    );
    assert_eq!(observed.views_sent, 1, "one view for the one video");

    // Before any `layers` message and without an estimate, the publisher sends every layer.
    let sent = publisher.observed();
    assert_eq!(sent.layers_sending["video0"], ["q", "h", "f"]);

    // A keyframe request from the subscriber reaches the publisher, named by one layer's SSRC.
    let mid = subscriber
        .received_mids(switchyard::signal::protocol::TrackKind::Video)
        .pop()
        .expect("a video mid");
    let before = sent.keyframe_requests.get("video0").copied().unwrap_or(0);
    subscriber.send_pli(&mid, 1);
    publisher
        .wait_until("the keyframe request", PATIENCE, |observed| {
            observed
                .keyframe_requests
                .get("video0")
                .copied()
                .unwrap_or(0)
                > before
        })
        .await
        .expect("the request reaches the publisher");
    publisher.leave().await;
    subscriber.leave().await;
}

/// Two simulcast publishers and one viewer, every video in a small tile, the viewer alone
/// behind a (generous) bandwidth limit.
fn small_simulcast_room(duration: Duration) -> Scenario {
    Scenario {
        publishers: 2,
        subscribers: 1,
        simulcast: true,
        tile: Some(Tile {
            width: 320,
            height: 180,
        }),
        impairment: Impairment {
            bandwidth: Some(50_000_000),
            ..Impairment::default()
        },
        impaired: Some(1),
        duration,
        pli_interval: Duration::ZERO,
        ..Scenario::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_run_reports_the_layers_and_bytes_each_participant_received() {
    let server = server().await;
    let report = run(RunOptions::new(
        server.websocket_url(),
        small_simulcast_room(Duration::from_secs(3)),
    ))
    .await
    .expect("the run completes");

    assert_eq!(report.participants.joined, 3, "{}", report.table());
    assert_eq!(
        report.tracks.received,
        report.tracks.expected,
        "{}",
        report.table()
    );
    assert_eq!(report.per_receiver.len(), 3);
    let impaired: Vec<&str> = report
        .per_receiver
        .iter()
        .filter(|receiver| receiver.impaired)
        .map(|receiver| receiver.name.as_str())
        .collect();
    assert_eq!(impaired, ["subscriber-0-0"], "only the last of the room");
    for receiver in &report.per_receiver {
        let videos = if receiver.name.starts_with("publisher") {
            1
        } else {
            2
        };
        assert_eq!(receiver.video_tracks, videos, "{receiver:?}");
        assert!(
            receiver.bytes > 0 && receiver.bitrate_bps > 0.0,
            "{receiver:?}"
        );
        let seconds: f64 = receiver.layer_seconds.values().sum();
        assert!(
            seconds > 0.5 * videos as f64
                && seconds <= (report.window_seconds + 0.5) * videos as f64,
            "about the window on some layer for every video: {receiver:?}, window {}",
            report.window_seconds
        );
        assert!(
            receiver
                .layer_seconds
                .keys()
                .all(|rid| RIDS.contains(&rid.as_str())),
            "{receiver:?}"
        );
    }
    assert!(!report.layer_seconds.is_empty());
    let video_tracks: Vec<_> = report
        .per_track
        .iter()
        .filter(|track| !track.layer_seconds.is_empty())
        .collect();
    assert_eq!(
        video_tracks.len(),
        4,
        "two videos for the viewer, one for each publisher"
    );

    // The table, the Markdown and the JSON say it too.
    let table = report.table();
    assert!(
        table.contains("layers     video received, share of time:"),
        "{table}"
    );
    assert!(table.contains("subscriber-0-0 (impaired)"), "{table}");
    assert!(
        table.contains("tiles      every received video shown at 320x180"),
        "{table}"
    );
    assert!(
        report
            .markdown()
            .contains("video layers received, share of time")
    );
    let json = serde_json::to_value(&report).expect("the report serializes");
    assert_eq!(json["per_receiver"].as_array().map(Vec::len), Some(3));
    assert!(json["layer_seconds"].is_object());
    assert_eq!(json["scenario"]["tile"], "320x180");
}

/// The last layer each video of `report` arrived on, by receiver name.
fn layers_at_end(report: &loadtest::Report) -> Vec<(String, Option<String>)> {
    let names: std::collections::HashMap<&str, &str> = report
        .per_receiver
        .iter()
        .map(|receiver| (receiver.receiver.as_str(), receiver.name.as_str()))
        .collect();
    report
        .per_track
        .iter()
        .filter(|track| !track.layer_seconds.is_empty())
        .map(|track| {
            (
                names
                    .get(track.receiver.as_str())
                    .copied()
                    .unwrap_or("?")
                    .to_owned(),
                track.layer_at_end.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_tiles_end_up_on_the_low_layer() {
    let server = server().await;
    let report = run(RunOptions::new(
        server.websocket_url(),
        small_simulcast_room(Duration::from_secs(5)),
    ))
    .await
    .expect("the run completes");
    let layers = layers_at_end(&report);
    assert_eq!(layers.len(), 4, "{}", report.table());
    for (receiver, layer) in layers {
        assert_eq!(
            layer.as_deref(),
            Some("q"),
            "{receiver}: {}",
            report.table()
        );
    }
}
