//! Webhooks: every room event POSTed as signed JSON to the URLs in `webhooks.urls`
//! (docs/webhooks.md).
//!
//! Rooms hand their events to [`Webhooks::emit`] under their own lock, which is how a room's
//! events keep its order; `emit` never waits: it takes a place in a bounded queue, or drops the
//! event and counts it. One task, the [`Dispatcher`], signs and sends them: one at a time per
//! room and receiver ([`lanes`]), each retried on failure ([`backoff`]) a bounded number of
//! times. Nothing of this runs on a media worker or in a session.

pub mod backoff;
pub mod delivery;
pub mod dispatcher;
pub mod event;
pub mod lanes;
pub mod signature;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tracing::warn;

pub use delivery::ClientError;
pub use dispatcher::Dispatcher;
pub use event::{Event, EventKind, ParticipantRef, TrackRef};

use crate::config::WebhookConfig;
use crate::metrics::Metrics;

/// Where rooms send their events; cheap to clone. The default sends nothing.
#[derive(Clone, Default)]
pub struct Webhooks {
    queue: Option<Arc<Queue>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

struct Queue {
    events: mpsc::UnboundedSender<Queued>,
    places: Arc<Places>,
}

/// An event and the place it holds in the queue.
pub struct Queued {
    /// The event.
    pub event: Event,
    /// Given back when the event's last delivery ends.
    pub place: Place,
}

/// The queue's bound: events taken and not yet delivered or given up, at most `capacity`.
struct Places {
    taken: AtomicUsize,
    capacity: usize,
    /// Set from the first event dropped to the next one queued, so a burst of drops is logged
    /// once.
    overflowing: AtomicBool,
    metrics: Arc<Metrics>,
}

/// One place in the queue, given back on drop.
pub struct Place(Arc<Places>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
        self.0
            .metrics
            .webhooks
            .queued
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Places {
    fn take(self: &Arc<Self>) -> Option<Place> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.capacity).then_some(taken + 1)
            })
            .ok()?;
        self.metrics.webhooks.queued.fetch_add(1, Ordering::Relaxed);
        Some(Place(Arc::clone(self)))
    }
}

impl Webhooks {
    /// Starts the dispatcher for `config`, if it names receivers; without, events go nowhere
    /// and no task runs.
    pub fn start(
        config: &WebhookConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, Option<Dispatcher>), ClientError> {
        let Some(targets) = &config.targets else {
            return Ok((Self::default(), None));
        };
        let (webhooks, incoming) = Self::queue(config.queue_events, Arc::clone(&metrics));
        let dispatcher = Dispatcher::start(targets, config, metrics, incoming)?;
        Ok((webhooks, Some(dispatcher)))
    }

    /// A queue of at most `capacity` events, and its other end, where the dispatcher (or a
    /// test) takes them.
    pub(crate) fn queue(
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, mpsc::UnboundedReceiver<Queued>) {
        let (events, incoming) = mpsc::unbounded_channel();
        let places = Arc::new(Places {
            taken: AtomicUsize::new(0),
            capacity: capacity.max(1),
            overflowing: AtomicBool::new(false),
            metrics,
        });
        let webhooks = Self {
            queue: Some(Arc::new(Queue { events, places })),
        };
        (webhooks, incoming)
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Queues `event` for every receiver, without waiting: when the queue is full the event is
    /// dropped and counted.
    pub fn emit(&self, event: Event) {
        let Some(queue) = &self.queue else {
            return;
        };
        let places = &queue.places;
        let Some(place) = places.take() else {
            places
                .metrics
                .webhooks
                .dropped
                .fetch_add(1, Ordering::Relaxed);
            if !places.overflowing.swap(true, Ordering::AcqRel) {
                warn!(
                    queue_events = places.capacity,
                    "webhook events are dropped: as many as webhooks.queue_events are waiting \
                     (is a receiver down or slow?)"
                );
            }
            return;
        };
        places.overflowing.store(false, Ordering::Release);
        // Refused only once the dispatcher has stopped (shutdown): the place goes back.
        let _ = queue.events.send(Queued { event, place });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::EventId;

    fn event(sequence: u64) -> Event {
        Event {
            id: EventId::random(),
            kind: EventKind::RoomStarted,
            room: "r".to_owned(),
            sequence,
            at: 0,
            participant: None,
            track: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_a_place_comes_back() {
        let metrics = Arc::new(Metrics::default());
        let (webhooks, mut incoming) = Webhooks::queue(2, Arc::clone(&metrics));
        for sequence in 1..=3 {
            webhooks.emit(event(sequence));
        }
        assert_eq!(metrics.webhooks.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.webhooks.waiting(), 2);
        let first = incoming.try_recv().expect("the first is queued");
        assert_eq!(first.event.sequence, 1);
        drop(first);
        assert_eq!(metrics.webhooks.waiting(), 1);
        webhooks.emit(event(4));
        let sequences: Vec<u64> = std::iter::from_fn(|| incoming.try_recv().ok())
            .map(|queued| queued.event.sequence)
            .collect();
        assert_eq!(sequences, [2, 4]);
        assert_eq!(metrics.webhooks.waiting(), 0);
        assert_eq!(metrics.webhooks.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn without_receivers_nothing_is_queued() {
        let webhooks = Webhooks::default();
        assert!(!webhooks.is_enabled());
        webhooks.emit(event(1));
    }
}
