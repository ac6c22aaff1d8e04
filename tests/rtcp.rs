//! The router's RTCP: keyframes for new subscribers, throttled keyframe requests, REMB
//! aggregation.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{PATIENCE, camera_and_microphone, join, server, wait_for_counts};
use loadtest::synthetic::VideoShape;
use loadtest::{Observed, Participant, TrackSpec};
use switchyard::Counts;
use switchyard::signal::protocol::TrackKind;
use webrtc::peer_connection::RTCPeerConnectionState;

fn video_mid(observed: &Observed, publisher: &str) -> Option<String> {
    observed
        .received
        .iter()
        .find(|(_, track)| {
            track.announced
                && track.participant == publisher
                && track.kind == Some(TrackKind::Video)
        })
        .map(|(mid, _)| mid.clone())
}

fn video_requests(observed: &Observed) -> u64 {
    observed
        .keyframe_requests
        .get("video0")
        .copied()
        .unwrap_or(0)
}

async fn receives_video_from(subscriber: &Participant, publisher: &Participant) -> String {
    let publisher_id = publisher.id().to_owned();
    subscriber
        .wait_until("video packets from the publisher", PATIENCE, |observed| {
            video_mid(observed, &publisher_id).is_some_and(|mid| observed.received[&mid].intact > 0)
        })
        .await
        .expect("video flows");
    video_mid(&subscriber.observed(), &publisher_id).expect("announced")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_tracks_and_publishers_get_a_pli_within_a_second() {
    let server = server().await;
    let ada = join(&server, "late", "ada", camera_and_microphone()).await;
    let brian = join(&server, "late", "brian", camera_and_microphone()).await;
    receives_video_from(&ada, &brian).await;
    receives_video_from(&brian, &ada).await;
    let before = [
        video_requests(&ada.observed()),
        video_requests(&brian.observed()),
    ];

    let chen = join(&server, "late", "chen", vec![]).await;
    chen.wait_until("both publishers' tracks", PATIENCE, |observed| {
        observed.flowing_tracks() == 4
            && observed
                .live_tracks()
                .filter(|track| track.keyframes > 0)
                .count()
                == 2
    })
    .await
    .expect("the late joiner receives everything, starting at a keyframe");
    let answered = *chen
        .observed()
        .answers_sent
        .first()
        .expect("chen answered an offer");

    for (publisher, before) in [&ada, &brian].into_iter().zip(before) {
        publisher
            .wait_until("a PLI for the new subscriber", PATIENCE, |observed| {
                video_requests(observed) > before
            })
            .await
            .expect("the publisher is asked for a keyframe");
        let observed = publisher.observed();
        let arrived = observed.keyframe_requests_at[observed.keyframe_requests_at.len() - 1];
        let delay = arrived.saturating_duration_since(answered);
        assert!(
            delay <= Duration::from_secs(1),
            "PLI {delay:?} after the subscription started"
        );
    }
    for participant in [ada, brian, chen] {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_whose_keyframe_does_not_come_is_asked_for_again() {
    let server = server().await;
    // A publisher that lets the first keyframe request go unanswered, and whose own periodic
    // keyframe is far beyond the test's patience: only a second request starts the subscriber.
    let shape = VideoShape {
        keyframe_interval: Duration::from_secs(600),
        ignored_keyframe_requests: 1,
        ..VideoShape::default()
    };
    let publisher = join(&server, "deaf", "pub", vec![TrackSpec::Video(shape)]).await;
    publisher
        .wait_until("connected", PATIENCE, |observed| {
            observed.connection_state == Some(RTCPeerConnectionState::Connected)
        })
        .await
        .expect("the publisher connects");

    let subscriber = join(&server, "deaf", "sub", vec![]).await;
    receives_video_from(&subscriber, &publisher).await;
    let observed = publisher.observed();
    assert!(
        video_requests(&observed) >= 2,
        "the unanswered request was followed by another ({} requests)",
        video_requests(&observed)
    );
    let requests = &observed.keyframe_requests_at;
    let gap = requests[1].saturating_duration_since(requests[0]);
    assert!(
        gap >= Duration::from_millis(400),
        "the second request waited for the first's keyframe ({gap:?})"
    );

    publisher.leave().await;
    subscriber.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_plis_reaches_the_publisher_as_one() {
    let server = server().await;
    let metrics = std::sync::Arc::clone(&server.context().metrics);
    let publisher = join(
        &server,
        "burst",
        "pub",
        vec![TrackSpec::Video(Default::default())],
    )
    .await;
    let subscriber = join(&server, "burst", "sub", vec![]).await;
    let mid = receives_video_from(&subscriber, &publisher).await;
    publisher
        .wait_until("the subscription-start PLI", PATIENCE, |observed| {
            video_requests(observed) >= 1
        })
        .await
        .expect("a PLI when the subscription started");
    // Let the throttle window of that PLI close, so the burst's first request goes through.
    publisher
        .wait_until("the throttle window to pass", PATIENCE, |observed| {
            observed
                .keyframe_requests_at
                .last()
                .is_some_and(|last| last.elapsed() > Duration::from_millis(600))
        })
        .await
        .expect("time passes while media flows");

    let handled = metrics.keyframe_requests_handled.load(Ordering::Relaxed);
    let sent = metrics.plis_sent.load(Ordering::Relaxed);
    let received = video_requests(&publisher.observed());
    let started = Instant::now();
    subscriber.send_pli(&mid, 10);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metrics.keyframe_requests_handled.load(Ordering::Relaxed) < handled + 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ten PLIs reach the router"
        );
        tokio::task::yield_now().await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "the burst fit in one throttle window ({:?}), so the check below means something",
        started.elapsed()
    );
    assert_eq!(metrics.plis_sent.load(Ordering::Relaxed) - sent, 1);
    publisher
        .wait_until("the one PLI", PATIENCE, |observed| {
            video_requests(observed) == received + 1
        })
        .await
        .expect("the publisher gets one PLI");

    publisher.leave().await;
    subscriber.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_weakest_subscriber_no_longer_lowers_the_publishers_cap() {
    let server = server().await;
    let publisher = join(
        &server,
        "remb",
        "pub",
        vec![TrackSpec::Video(Default::default())],
    )
    .await;
    let strong = join(&server, "remb", "strong", vec![]).await;
    let weak = join(&server, "remb", "weak", vec![]).await;
    let strong_mid = receives_video_from(&strong, &publisher).await;
    let weak_mid = receives_video_from(&weak, &publisher).await;

    strong.send_remb(&strong_mid, 1_000_000);
    publisher
        .wait_until("a REMB of 1 Mbit/s", Duration::from_secs(3), |observed| {
            observed.rembs.last() == Some(&1_000_000)
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: got {:?}", publisher.observed().rembs));
    weak.send_remb(&weak_mid, 300_000);
    let metrics = &server.context().metrics;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metrics.rembs_received.load(Ordering::Relaxed) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server counted both subscribers' REMBs"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The cap is repeated about once a second: the next ones still follow the strong
    // subscriber, whose video the weak one's allocation does without instead.
    let seen = publisher.observed().rembs.len();
    publisher
        .wait_until("two more REMBs", Duration::from_secs(4), |observed| {
            observed.rembs.len() >= seen + 2
        })
        .await
        .unwrap_or_else(|error| panic!("{error}: got {:?}", publisher.observed().rembs));
    let rembs = publisher.observed().rembs;
    assert!(
        rembs[seen..].iter().all(|bitrate| *bitrate == 1_000_000),
        "the weak subscriber lowered the cap: {rembs:?}"
    );

    for participant in [publisher, strong, weak] {
        participant.leave().await;
    }
    wait_for_counts(&server, Counts::default()).await;
}
