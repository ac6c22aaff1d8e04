//! What the webhook dispatcher counts: events waiting, events dropped because too many were
//! waiting, attempts that failed, and each event's fate at each receiver.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Counter, Level};

/// How the delivery of one event to one receiver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed (or the server shut down before the next one was due).
    GivenUp,
}

impl Delivery {
    const ALL: [Self; 2] = [Self::Delivered, Self::GivenUp];

    fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::GivenUp => "given_up",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// The webhook dispatcher's series.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    /// Events waiting to be delivered, or being delivered.
    pub queued: Level,
    /// Events dropped without an attempt because `webhooks.queue_events` were waiting.
    pub dropped: Counter,
    /// Attempts that failed: an answer other than 2xx, no answer in time, no connection.
    pub attempts_failed: Counter,
    deliveries: Family<Outcome, PromCounter>,
}

impl WebhookMetrics {
    /// Counts how the delivery of an event to one receiver ended.
    pub fn delivery(&self, delivery: Delivery) {
        self.deliveries
            .get_or_create(&Outcome {
                outcome: delivery.label(),
            })
            .inc();
    }

    /// Deliveries that ended so far as `delivery`.
    pub fn deliveries(&self, delivery: Delivery) -> u64 {
        self.deliveries
            .get_or_create(&Outcome {
                outcome: delivery.label(),
            })
            .get()
    }

    /// Events waiting now.
    pub fn waiting(&self) -> i64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Registers the series under `registry` (the `switchyard_` one).
    pub(super) fn register(&self, registry: &mut Registry) {
        // Both outcomes from the start, so a dashboard sees zeros rather than nothing.
        for delivery in Delivery::ALL {
            let _ = self.deliveries.get_or_create(&Outcome {
                outcome: delivery.label(),
            });
        }
        registry.register(
            "webhook_events_queued",
            "Webhook events waiting to be delivered or being delivered",
            self.queued.0.clone(),
        );
        registry.register(
            "webhook_events_dropped",
            "Webhook events dropped without an attempt because the queue was full",
            self.dropped.0.clone(),
        );
        registry.register(
            "webhook_attempts_failed",
            "Webhook requests that failed: an answer other than 2xx, no answer in time, or no connection",
            self.attempts_failed.0.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook events to one receiver, by how their delivery ended",
            self.deliveries.clone(),
        );
    }
}
