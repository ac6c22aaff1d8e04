//! What the ICE-TCP listeners count: the streams they hold, those they refused, by which cap
//! refused them, and those closed for sending no packet in time.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Counter, Level};
use crate::net::admission::Refusal;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

impl Reason {
    const ALL: [Refusal; 2] = [Refusal::PerSource, Refusal::Total];

    fn of(refusal: Refusal) -> Self {
        Self {
            reason: match refusal {
                // `media.tcp_streams_per_ip`.
                Refusal::PerSource => "per_ip",
                // `media.max_tcp_streams`.
                Refusal::Total => "total",
            },
        }
    }
}

/// The ICE-TCP listeners' series.
#[derive(Debug, Default)]
pub struct IceTcpMetrics {
    /// ICE-TCP streams open on the media TCP port.
    pub streams: Level,
    /// Streams closed for delivering no whole packet within the first-packet timeout.
    pub first_packet_timeouts: Counter,
    refused: Family<Reason, PromCounter>,
}

impl IceTcpMetrics {
    /// Counts a stream closed at once for `refusal`.
    pub fn refused(&self, refusal: Refusal) {
        self.refused.get_or_create(&Reason::of(refusal)).inc();
    }

    /// Streams refused so far for `refusal`.
    pub fn refusals(&self, refusal: Refusal) -> u64 {
        self.refused.get_or_create(&Reason::of(refusal)).get()
    }

    /// Streams open now.
    pub fn open_streams(&self) -> i64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// Registers the series under `registry` (the `switchyard_` one).
    pub(super) fn register(&self, registry: &mut Registry) {
        // Both reasons from the start, so a dashboard sees zeros rather than nothing.
        for refusal in Reason::ALL {
            let _ = self.refused.get_or_create(&Reason::of(refusal));
        }
        registry.register(
            "ice_tcp_streams",
            "ICE-TCP streams open on the media TCP port",
            self.streams.0.clone(),
        );
        registry.register(
            "ice_tcp_refused",
            "ICE-TCP streams closed as soon as they were accepted, by the cap that refused them",
            self.refused.clone(),
        );
        registry.register(
            "ice_tcp_first_packet_timeouts",
            "ICE-TCP streams closed for delivering no whole packet within 10 s of being accepted",
            self.first_packet_timeouts.0.clone(),
        );
    }
}
