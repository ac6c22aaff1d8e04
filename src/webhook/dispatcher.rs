//! The one task that delivers webhook events: it takes them from the queue in the order rooms
//! made them, serializes each once, and drives every delivery in flight itself (no task per
//! request), each lane one event at a time ([`super::lanes`]).
//!
//! At shutdown ([`Dispatcher::finish`]) it takes what is queued, delivers what it can before the
//! grace period ends, gives up any retry that would fall after it, and is stopped at the end of
//! the grace whatever a receiver is doing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::backoff::Backoff;
use super::delivery::{ClientError, Sender};
use super::event::Event;
use super::lanes::Lanes;
use super::{Place, Queued};
use crate::config::{WebhookConfig, WebhookTargets};
use crate::metrics::{Delivery, Metrics};

/// Deliveries in flight at once, over every room and receiver: enough that a slow receiver or
/// room leaves the others plenty, few enough to bound the connections a burst opens.
const MAX_IN_FLIGHT: usize = 32;

/// The running dispatcher; see the module documentation.
#[derive(Debug)]
pub struct Dispatcher {
    task: JoinHandle<()>,
    /// `Some(deadline)` once the server is shutting down.
    finish: watch::Sender<Option<Instant>>,
}

/// An event ready to send, shared by its lanes (one per receiver).
struct Job {
    event: Event,
    body: Bytes,
    /// Its place in the queue, given back when the last lane is done with it.
    _place: Place,
}

/// A room's events to one receiver.
type Lane = (usize, String);

/// What every delivery shares.
struct Shared {
    sender: Sender,
    backoff: Backoff,
    metrics: Arc<Metrics>,
    finish: watch::Receiver<Option<Instant>>,
}

impl Dispatcher {
    /// Starts the task, taking events from `incoming`.
    pub(super) fn start(
        targets: &WebhookTargets,
        config: &WebhookConfig,
        metrics: Arc<Metrics>,
        incoming: mpsc::UnboundedReceiver<Queued>,
    ) -> Result<Self, ClientError> {
        let sender = Sender::new(targets, config.timeout)?;
        let (finish, finishing) = watch::channel(None);
        let shared = Arc::new(Shared {
            sender,
            backoff: Backoff {
                attempts: config.attempts,
                first: config.first_retry,
            },
            metrics,
            finish: finishing.clone(),
        });
        let task = tokio::spawn(run(shared, incoming, finishing));
        Ok(Self { task, finish })
    }

    /// Finishes by `deadline`: what is queued is delivered if it can be before then, and the
    /// task is stopped at the deadline whatever is left.
    pub async fn finish(self, deadline: Instant) {
        let _ = self.finish.send(Some(deadline));
        let mut task = self.task;
        if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
            warn!("webhook events not delivered by the end of the grace period are dropped");
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    mut incoming: mpsc::UnboundedReceiver<Queued>,
    mut finish: watch::Receiver<Option<Instant>>,
) {
    let mut lanes: Lanes<Lane, Arc<Job>> = Lanes::new(MAX_IN_FLIGHT);
    let mut in_flight = FuturesUnordered::new();
    let mut taking = true;
    let mut finishing = false;
    loop {
        while let Some((lane, job)) = lanes.start_next() {
            in_flight.push(deliver(Arc::clone(&shared), lane, job));
        }
        if !taking && lanes.is_idle() {
            break;
        }
        tokio::select! {
            queued = incoming.recv(), if taking => match queued {
                Some(queued) => {
                    let job = Arc::new(Job::new(queued));
                    for receiver in 0..shared.sender.receivers() {
                        lanes.push((receiver, job.event.room.clone()), Arc::clone(&job));
                    }
                }
                None => taking = false,
            },
            Some(lane) = in_flight.next(), if !in_flight.is_empty() => lanes.done(&lane),
            // A deadline, or the server dropped without one: take what is queued, and no more.
            _ = finish.changed(), if !finishing => {
                finishing = true;
                incoming.close();
            }
            // Nothing queued, in flight or to come.
            else => break,
        }
    }
    debug!("webhook dispatcher stopped");
}

impl Job {
    fn new(queued: Queued) -> Self {
        let Queued { event, place } = queued;
        // An event is plain data: serializing it cannot fail.
        let body = serde_json::to_vec(&event).map_or_else(|_| Bytes::new(), Bytes::from);
        Self {
            event,
            body,
            _place: place,
        }
    }
}

/// Delivers `job` on `lane`, retrying as the backoff says; returns the lane once it is
/// delivered or given up.
async fn deliver(shared: Arc<Shared>, lane: Lane, job: Arc<Job>) -> Lane {
    let receiver = lane.0;
    let metrics = &shared.metrics.webhooks;
    let mut made = 0;
    loop {
        made += 1;
        let error = match shared.sender.attempt(receiver, &job.body).await {
            Ok(()) => {
                metrics.delivery(Delivery::Delivered);
                return lane;
            }
            Err(error) => error,
        };
        metrics.attempts_failed.fetch_add(1, Ordering::Relaxed);
        let retry = shared
            .backoff
            .retry_at(std::time::Instant::now(), made, rand::random())
            .map(Instant::from_std);
        debug!(
            receiver = shared.sender.origin(receiver),
            event = %job.event.id,
            attempt = made,
            %error,
            "webhook attempt failed"
        );
        let retried = match retry {
            Some(at) => wait_for_retry(at, shared.finish.clone()).await,
            None => false,
        };
        if !retried {
            metrics.delivery(Delivery::GivenUp);
            warn!(
                receiver = shared.sender.origin(receiver),
                event = %job.event.id,
                kind = job.event.kind.as_str(),
                room = %job.event.room,
                attempts = made,
                %error,
                "webhook event given up"
            );
            return lane;
        }
    }
}

/// Waits until `at`; `false` when the server's shutdown deadline comes first, and the retry is
/// not made.
async fn wait_for_retry(at: Instant, mut finish: watch::Receiver<Option<Instant>>) -> bool {
    loop {
        let deadline = *finish.borrow_and_update();
        if deadline.is_some_and(|deadline| deadline <= at) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => return true,
            changed = finish.changed() => {
                if changed.is_err() {
                    // The server is gone without a deadline: the retry is still made.
                    tokio::time::sleep_until(at).await;
                    return true;
                }
            }
        }
    }
}
