//! The media connection's DTLS handshake survives the loss of a whole flight, whichever side
//! loses it, even when the other side repeats its own flight before the lost one is sent again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{camera_and_microphone, join, server, wait_for_counts, wait_for_flowing_tracks};
use loadtest::impairment::{Dropper, Way};
use loadtest::{Participant, ParticipantOptions};
use switchyard::Counts;

/// DTLS record content type of a handshake record (RFC 6347 4.1).
const HANDSHAKE_RECORD: u8 = 22;
/// Where the first handshake message's type sits in a datagram: after the 13-byte record
/// header.
const MESSAGE_TYPE_OFFSET: usize = 13;
/// Handshake message types (RFC 5246 7.4).
const SERVER_HELLO: u8 = 2;
const CERTIFICATE: u8 = 11;

/// Loses the first `times` datagrams going `way` whose first record starts a handshake message
/// of type `message`; counts what it lost in `lost`.
fn lose_flight(way: Way, message: u8, times: usize, lost: Arc<AtomicUsize>) -> Dropper {
    Dropper::new(move |going, bytes| {
        let starts_flight = going == way
            && bytes.first() == Some(&HANDSHAKE_RECORD)
            && bytes.get(MESSAGE_TYPE_OFFSET) == Some(&message);
        starts_flight
            && lost
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |count| {
                    (count < times).then_some(count + 1)
                })
                .is_ok()
    })
}

/// Brian joins Ada's room through a network that loses `dropper`'s datagrams; both must see
/// and hear each other.
async fn joins_despite(dropper: Dropper, lost: &AtomicUsize) {
    let server = server().await;
    let ada = join(&server, "handshake", "ada", camera_and_microphone()).await;
    let brian = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "handshake", "brian")
            .with_tracks(camera_and_microphone())
            .with_dropper(dropper),
    )
    .await
    .expect("brian joins");

    wait_for_flowing_tracks(&brian, 2).await;
    wait_for_flowing_tracks(&ada, 2).await;
    assert_eq!(lost.load(Ordering::SeqCst), 2, "the flight was lost twice");

    brian.leave().await;
    ada.leave().await;
    wait_for_counts(&server, Counts::default()).await;
}

// The server takes the DTLS client's part when it answers an offer (a publishing browser's, or
// the synthetic participant's here) and the server's part when a browser answers its offer.
// The participant runs the same DTLS code as the server, so between them both parts are tried.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sends_its_lost_final_flight_again_though_the_peer_repeats_its_own() {
    // The server's Certificate ... Finished flight is lost twice; meanwhile the participant
    // repeats its ServerHello flight, as a browser does after tens of milliseconds.
    let lost = Arc::new(AtomicUsize::new(0));
    let dropper = lose_flight(Way::Incoming, CERTIFICATE, 2, Arc::clone(&lost));
    joins_despite(dropper, &lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_server_hello_flight_is_sent_again_though_the_peer_repeats_its_own() {
    // The participant's ServerHello flight is lost twice; meanwhile the server repeats its
    // ClientHello.
    let lost = Arc::new(AtomicUsize::new(0));
    let dropper = lose_flight(Way::Outgoing, SERVER_HELLO, 2, Arc::clone(&lost));
    joins_despite(dropper, &lost).await;
}
