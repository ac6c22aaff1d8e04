//! `/metrics` over HTTP after a short call: valid Prometheus text, the router's packet and
//! RTCP counters moving, a join latency observed per participant, and every gauge back at
//! zero once everybody has left.

mod common;

use common::prometheus::{self, Scrape};
use common::{
    PATIENCE, camera_and_microphone, join, server, wait_for_counts, wait_for_flowing_tracks,
};
use loadtest::Participant;
use switchyard::signal::protocol::TrackKind;
use switchyard::{Counts, RunningServer};

const GAUGES: [&str; 5] = [
    "switchyard_rooms",
    "switchyard_participants",
    "switchyard_peers",
    "switchyard_publications",
    "switchyard_subscriptions",
];

async fn scrape(server: &RunningServer) -> Scrape {
    let (status, body) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    prometheus::parse(&body).unwrap_or_else(|error| panic!("{error}\n{body}"))
}

async fn video_mid_from(subscriber: &Participant, publisher: &Participant) -> String {
    let publisher_id = publisher.id().to_owned();
    subscriber
        .wait_until("video from the publisher", PATIENCE, |observed| {
            observed.live_tracks().any(|track| {
                track.participant == publisher_id
                    && track.kind == Some(TrackKind::Video)
                    && track.intact > 0
            })
        })
        .await
        .expect("video flows");
    subscriber
        .observed()
        .received
        .iter()
        .find(|(_, track)| {
            track.announced
                && track.participant == publisher_id
                && track.kind == Some(TrackKind::Video)
        })
        .map(|(mid, _)| mid.clone())
        .expect("the video's mid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_call_and_return_to_zero_after_it() {
    let server = server().await;
    let before = scrape(&server).await;
    for gauge in GAUGES {
        assert_eq!(before.value(gauge), 0.0, "{gauge} before the call");
    }
    assert_eq!(before.value("switchyard_join_seconds_count"), 0.0);

    let ada = join(&server, "metrics", "ada", camera_and_microphone()).await;
    let brian = join(&server, "metrics", "brian", camera_and_microphone()).await;
    for participant in [&ada, &brian] {
        wait_for_flowing_tracks(participant, 2).await;
    }
    let mid_at_brian = video_mid_from(&brian, &ada).await;
    // A subscriber's loss report and bandwidth estimate, as a browser sends them.
    brian.send_pli(&mid_at_brian, 1);
    brian.send_remb(&mid_at_brian, 500_000);
    let metrics = std::sync::Arc::clone(&server.context().metrics);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(20));
    while metrics
        .rembs_received
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        || metrics
            .keyframe_requests_received
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the PLI and the REMB reach the server"
        );
        ticker.tick().await;
    }

    let during = scrape(&server).await;
    assert_eq!(during.value("switchyard_rooms"), 1.0);
    assert_eq!(during.value("switchyard_participants"), 2.0);
    assert_eq!(during.value("switchyard_peers"), 2.0);
    assert_eq!(during.value("switchyard_publications"), 4.0);
    assert_eq!(during.value("switchyard_subscriptions"), 4.0);
    for counter in [
        "switchyard_rtp_packets_in_total",
        "switchyard_rtp_bytes_in_total",
        "switchyard_rtp_packets_out_total",
        "switchyard_rtp_bytes_out_total",
        "switchyard_keyframe_requests_received_total",
        "switchyard_plis_sent_total",
        "switchyard_rembs_received_total",
        "switchyard_rembs_sent_total",
    ] {
        assert!(
            during.value(counter) > 0.0,
            "{counter} is zero during a call"
        );
    }
    assert_eq!(during.value("switchyard_joins_total"), 2.0);
    // Both participants publish, so both connections came up and each join was timed.
    assert_eq!(during.value("switchyard_join_seconds_count"), 2.0);
    assert_eq!(
        during.value("switchyard_join_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    let sum = during.value("switchyard_join_seconds_sum");
    assert!(
        sum > 0.0 && sum < 2.0 * PATIENCE.as_secs_f64(),
        "join latency sum {sum}"
    );

    ada.leave().await;
    brian.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    let after = scrape(&server).await;
    for gauge in GAUGES {
        assert_eq!(after.value(gauge), 0.0, "{gauge} after everybody left");
    }
    // Counters only ever grow.
    for counter in [
        "switchyard_rtp_packets_out_total",
        "switchyard_plis_sent_total",
        "switchyard_rembs_received_total",
    ] {
        assert!(after.value(counter) >= during.value(counter), "{counter}");
    }
    assert_eq!(after.value("switchyard_join_seconds_count"), 2.0);
}
