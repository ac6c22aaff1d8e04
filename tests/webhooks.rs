//! Webhooks against a receiver started by the test: a room's events arrive in order, each
//! signed; a receiver that fails gets a bounded number of retries while the call goes on; and
//! one that never answers does not hold up the server's shutdown.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use common::{
    PATIENCE, camera_and_microphone, join, server_with, wait_for_counts, wait_for_flowing_tracks,
    wait_for_tasks,
};
use switchyard::config::WebhookTargets;
use switchyard::signal::protocol::{ServerMessage, TrackKind};
use switchyard::webhook::{Event, EventKind};
use switchyard::{Config, Counts, RunningServer};

const KEY: &str = "a webhook key of at least 32 bytes, for the tests";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    content_type: Option<String>,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn event(&self) -> Event {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "the body is an event ({error}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the receiver answers.
#[derive(Clone)]
struct Behaviour {
    status: StatusCode,
    /// Requests from this one on wait until the gate opens before they are answered.
    hold_from: Option<usize>,
}

#[derive(Clone)]
struct ReceiverState {
    behaviour: Behaviour,
    requests: watch::Sender<Vec<Received>>,
    gate: watch::Receiver<bool>,
}

/// A webhook receiver on loopback, recording every request.
struct Receiver {
    url: String,
    requests: watch::Receiver<Vec<Received>>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let (requests, requests_rx) = watch::channel(Vec::new());
        let (gate, gate_rx) = watch::channel(false);
        let state = ReceiverState {
            behaviour,
            requests,
            gate: gate_rx,
        };
        let app = Router::new()
            .route("/hooks", post(receive))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the receiver binds");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{address}/hooks"),
            requests: requests_rx,
            gate,
            task,
        }
    }

    /// Lets held requests be answered.
    fn open_gate(&self) {
        let _ = self.gate.send(true);
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.borrow().clone()
    }

    /// Waits until the requests so far satisfy `done`.
    async fn wait_until(&self, what: &str, done: impl FnMut(&Vec<Received>) -> bool) {
        let mut requests = self.requests.clone();
        tokio::time::timeout(PATIENCE, requests.wait_for(done))
            .await
            .unwrap_or_else(|_| panic!("{what}: got {:#?}", self.events()))
            .expect("the receiver runs");
    }

    fn events(&self) -> Vec<Event> {
        self.requests().iter().map(Received::event).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let mut index = 0;
    state.requests.send_modify(|requests| {
        index = requests.len();
        requests.push(Received {
            signature: header("switchyard-signature"),
            content_type: header("content-type"),
            body,
            at: Instant::now(),
        });
    });
    if state.behaviour.hold_from.is_some_and(|from| index >= from) {
        let mut gate = state.gate.clone();
        let _ = gate.wait_for(|open| *open).await;
    }
    state.behaviour.status
}

/// Checks the signature the way docs/webhooks.md tells a receiver to, independently of the
/// server's code: HMAC-SHA256 of `<t>.<body>`, and `t` close to now.
fn assert_signed(request: &Received) {
    let header = request
        .signature
        .as_deref()
        .expect("a Switchyard-Signature");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("`t=...,v1=...`: {header}"));
    let t: u64 = t.parse().expect("seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert!(now.abs_diff(t) <= 300, "a fresh timestamp: {t} at {now}");
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(&request.body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(v1, expected, "the signature of {:?}", request.body);
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
}

fn config_for(receiver: &Receiver) -> Config {
    let mut config = Config::loopback();
    config.webhooks.targets = Some(WebhookTargets {
        urls: vec![receiver.url.parse().expect("a URL")],
        key: KEY.to_owned(),
    });
    config
}

fn kinds(events: &[Event]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

fn about(event: &Event) -> &str {
    event
        .participant
        .as_ref()
        .map_or("", |participant| participant.id.as_str())
}

async fn scrape(server: &RunningServer) -> common::prometheus::Scrape {
    let (status, text) = common::http::get(server.local_addr(), "/metrics")
        .await
        .expect("/metrics answers");
    assert_eq!(status, 200);
    common::prometheus::parse(&text).expect("valid OpenMetrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_publish_leave_sequence_gives_every_kind_in_order_each_signed() {
    let receiver = Receiver::start(Behaviour {
        status: StatusCode::NO_CONTENT,
        hold_from: None,
    })
    .await;
    let server = server_with(config_for(&receiver)).await;
    let watcher = join(&server, "hooks", "watcher", vec![]).await;
    let ada = join(&server, "hooks", "ada", camera_and_microphone()).await;
    wait_for_flowing_tracks(&watcher, 2).await;
    let (watcher_id, ada_id) = (watcher.id().to_owned(), ada.id().to_owned());
    ada.leave().await;
    watcher
        .wait_until("ada to leave", PATIENCE, |observed| {
            observed.messages.iter().any(|message| {
                matches!(message, ServerMessage::ParticipantLeft { participant } if *participant == ada_id)
            })
        })
        .await
        .expect("ada leaves");
    watcher.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    receiver
        .wait_until("room_finished", |requests| {
            requests
                .iter()
                .any(|request| request.event().kind == EventKind::RoomFinished)
        })
        .await;

    let requests = receiver.requests();
    requests.iter().for_each(assert_signed);
    let events = receiver.events();
    use EventKind::*;
    assert_eq!(
        kinds(&events),
        [
            RoomStarted,
            ParticipantJoined,
            ParticipantJoined,
            TrackPublished,
            TrackPublished,
            TrackUnpublished,
            TrackUnpublished,
            ParticipantLeft,
            ParticipantLeft,
            RoomFinished,
        ],
        "{events:#?}"
    );
    let sequences: Vec<u64> = events.iter().map(|event| event.sequence).collect();
    assert_eq!(sequences, (1..=10).collect::<Vec<_>>());
    let ids: HashSet<_> = events.iter().map(|event| event.id.clone()).collect();
    assert_eq!(ids.len(), events.len(), "each event once, with its own id");
    assert!(events.iter().all(|event| event.room == "hooks"));
    assert!(
        events.windows(2).all(|pair| pair[0].at <= pair[1].at),
        "times in order"
    );
    let who: Vec<&str> = events.iter().map(about).collect();
    assert_eq!(
        who,
        [
            "",
            &watcher_id,
            &ada_id,
            &ada_id,
            &ada_id,
            &ada_id,
            &ada_id,
            &ada_id,
            &watcher_id,
            ""
        ]
    );
    let names: Vec<&str> = events[1..3]
        .iter()
        .filter_map(|event| Some(event.participant.as_ref()?.name.as_str()))
        .collect();
    assert_eq!(names, ["watcher", "ada"]);
    assert!(
        events[1..9].iter().all(|event| event
            .participant
            .as_ref()
            .is_some_and(|p| p.identity.is_none())),
        "no identities on an open server"
    );
    let tracks = |kind: EventKind| -> HashMap<String, TrackKind> {
        events
            .iter()
            .filter(|event| event.kind == kind)
            .map(|event| {
                let track = event.track.as_ref().expect("a track");
                (track.id.clone(), track.kind)
            })
            .collect()
    };
    let published = tracks(TrackPublished);
    assert_eq!(
        published.values().copied().collect::<HashSet<_>>(),
        HashSet::from([TrackKind::Audio, TrackKind::Video])
    );
    assert_eq!(tracks(TrackUnpublished), published);
    assert!(
        events
            .iter()
            .filter(|event| !matches!(event.kind, TrackPublished | TrackUnpublished))
            .all(|event| event.track.is_none())
    );

    let scrape = scrape(&server).await;
    assert_eq!(
        scrape.value("switchyard_webhook_deliveries_total{outcome=\"delivered\"}"),
        10.0
    );
    assert_eq!(
        scrape.value("switchyard_webhook_attempts_failed_total"),
        0.0
    );
    assert_eq!(scrape.value("switchyard_webhook_events_queued"), 0.0);
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_bounded_retries_while_the_call_goes_on() {
    // The first request is held until the test has seen the call carry on without it.
    let receiver = Receiver::start(Behaviour {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        hold_from: Some(0),
    })
    .await;
    let mut config = config_for(&receiver);
    config.webhooks.attempts = 3;
    config.webhooks.first_retry = Duration::from_millis(100);
    config.webhooks.timeout = Duration::from_secs(60);
    let server = server_with(config).await;

    let ada = join(&server, "retries", "ada", camera_and_microphone()).await;
    receiver
        .wait_until("the first attempt", |requests| !requests.is_empty())
        .await;
    // The dispatcher is stuck on `room_started`; signaling and media are not.
    let watcher = join(&server, "retries", "watcher", vec![]).await;
    wait_for_flowing_tracks(&watcher, 2).await;
    let packets = watcher.received_packets();
    ada.send_raw(r#"{"type": "chat", "text": "still here"}"#);
    watcher
        .wait_until("the chat message", PATIENCE, |observed| {
            observed.messages.iter().any(
                |message| matches!(message, ServerMessage::Chat { text, .. } if text == "still here"),
            )
        })
        .await
        .expect("signaling answers");
    watcher
        .wait_until("more packets", PATIENCE, |observed| {
            observed
                .received
                .values()
                .map(|track| track.packets)
                .sum::<u64>()
                > packets + 50
        })
        .await
        .expect("media keeps flowing");
    assert_eq!(
        receiver.requests().len(),
        1,
        "all of that while the first attempt was still unanswered"
    );
    assert!(
        server.context().metrics.webhooks.waiting() >= 4,
        "room_started, two joins and two tracks are queued"
    );

    receiver.open_gate();
    ada.leave().await;
    watcher.leave().await;
    wait_for_counts(&server, Counts::default()).await;
    receiver
        .wait_until("room_finished three times", |requests| {
            requests
                .iter()
                .filter(|request| request.event().kind == EventKind::RoomFinished)
                .count()
                == 3
        })
        .await;

    let requests = receiver.requests();
    requests.iter().for_each(assert_signed);
    // Each event was tried exactly three times, its attempts together and in the room's
    // order, each retry after its wait.
    let mut attempts: Vec<(Event, Vec<Instant>)> = Vec::new();
    for request in &requests {
        let event = request.event();
        match attempts.last_mut() {
            Some((last, times)) if last.id == event.id => times.push(request.at),
            _ => {
                assert!(
                    attempts.iter().all(|(earlier, _)| earlier.id != event.id),
                    "an event's attempts come together: {event:?}"
                );
                attempts.push((event, vec![request.at]));
            }
        }
    }
    let sequences: Vec<u64> = attempts.iter().map(|(event, _)| event.sequence).collect();
    let events = sequences.len();
    assert_eq!(sequences, (1..=events as u64).collect::<Vec<_>>());
    assert_eq!(
        attempts.first().map(|(event, _)| event.kind),
        Some(EventKind::RoomStarted)
    );
    assert_eq!(
        attempts.last().map(|(event, _)| event.kind),
        Some(EventKind::RoomFinished)
    );
    for (event, times) in &attempts {
        assert_eq!(times.len(), 3, "three attempts of {event:?}");
        // 100 ms, then 200 ms, each at least three quarters of itself.
        assert!(
            times[1] - times[0] >= Duration::from_millis(75),
            "{event:?}"
        );
        assert!(
            times[2] - times[1] >= Duration::from_millis(150),
            "{event:?}"
        );
    }
    let all_kinds: HashSet<EventKind> = attempts.iter().map(|(event, _)| event.kind).collect();
    assert_eq!(all_kinds, HashSet::from(EventKind::ALL));

    let scrape = scrape(&server).await;
    assert_eq!(
        scrape.value("switchyard_webhook_deliveries_total{outcome=\"given_up\"}"),
        events as f64
    );
    assert_eq!(
        scrape.value("switchyard_webhook_deliveries_total{outcome=\"delivered\"}"),
        0.0
    );
    assert_eq!(
        scrape.value("switchyard_webhook_attempts_failed_total"),
        (3 * events) as f64
    );
    assert_eq!(scrape.value("switchyard_webhook_events_queued"), 0.0);
    assert_eq!(scrape.value("switchyard_webhook_events_dropped_total"), 0.0);
    server.shutdown().await.expect("the server shuts down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_hold_up_the_shutdown() {
    let receiver = Receiver::start(Behaviour {
        status: StatusCode::OK,
        hold_from: Some(0),
    })
    .await;
    // Everything on the runtime before the server starts, the receiver included.
    let baseline = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let grace = Duration::from_secs(1);
    let mut config = config_for(&receiver);
    config.shutdown_grace = grace;
    config.webhooks.timeout = Duration::from_secs(60);
    let server = server_with(config).await;
    let watcher = join(&server, "stuck", "watcher", vec![]).await;
    receiver
        .wait_until("the first attempt", |requests| !requests.is_empty())
        .await;

    let context = Arc::clone(server.context());
    let began = Instant::now();
    server.shutdown().await.expect("the server shuts down");
    let took = began.elapsed();
    assert!(
        took < grace + Duration::from_millis(500),
        "the shutdown took {took:?} with a grace of {grace:?}"
    );
    assert_eq!(context.metrics.webhooks.waiting(), 0, "the queue is let go");
    assert_eq!(receiver.requests().len(), 1, "no attempt after the grace");
    drop(context);

    receiver.open_gate();
    watcher.vanish().await;
    wait_for_tasks(baseline).await;
}
