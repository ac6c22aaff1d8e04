//! Process-wide counts and counters, exposed at `/metrics` by `prometheus-client`.
//!
//! Gauges (rooms aside, which the registry counts itself) are held by RAII guards, so a count
//! goes down exactly when the thing it counts is dropped: a leak shows up as a count that never
//! returns to zero, which is what the lifecycle tests check.
//!
//! Each counter and gauge is a `prometheus-client` metric that dereferences to its atomic, so
//! the packet path adds to it with one `fetch_add` and nothing else.

mod cluster;
mod http;
mod ice_tcp;
mod layers;
mod process;
mod webhooks;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge as PromGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;

pub use cluster::{ClusterMetrics, PlacementResult};
pub use http::{HttpMetrics, RefusedBecause, TimedOut};
pub use ice_tcp::IceTcpMetrics;
pub use layers::{LayerMetrics, LayerSample};
pub use process::{ProcessCollector, ProcessSample};
pub use webhooks::{Delivery, WebhookMetrics};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A counter: only goes up.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter<u64, AtomicU64>);

impl Deref for Counter {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        self.0.inner()
    }
}

/// A gauge: a count of live things.
#[derive(Debug, Default, Clone)]
pub struct Level(PromGauge<i64, AtomicI64>);

impl Deref for Level {
    type Target = AtomicI64;

    fn deref(&self) -> &AtomicI64 {
        self.0.inner()
    }
}

/// Everything the server counts.
#[derive(Debug)]
pub struct Metrics {
    /// Rooms with at least one participant, set from the room registry at each scrape.
    rooms: Level,
    /// Participants currently joined to a room.
    pub participants: Level,
    /// Peer connections currently open.
    pub peers: Level,
    /// Tracks currently published.
    pub publications: Level,
    /// Publication-to-subscriber forwards currently active.
    pub subscriptions: Level,
    /// RTP packets read from publishers.
    pub packets_in: Counter,
    /// RTP payload bytes read from publishers.
    pub bytes_in: Counter,
    /// RTP packets handed to subscribers' connections.
    pub packets_out: Counter,
    /// RTP payload bytes handed to subscribers' connections.
    pub bytes_out: Counter,
    /// RTP packets a subscriber's connection refused (it went away, or its sender is gone).
    pub packets_dropped: Counter,
    /// RTP packets from publishers dropped because their header does not parse (see
    /// `media::malformed`).
    pub malformed_headers: Counter,
    /// Video packets from publishers dropped because their VP8 payload cannot be read.
    pub malformed_vp8: Counter,
    /// RTP packets from publishers the WebRTC core refused after decrypting them, for padding
    /// longer than the packet (see `rtc::padding`).
    pub malformed_padding: Counter,
    /// The family the three above belong to, one series per reason.
    malformed: MalformedFamily,
    /// Datagrams on the media port from an unknown address that were not a binding request
    /// to a ufrag the server issued.
    pub datagrams_unknown: Counter,
    /// Binding requests on the media port naming a ufrag nobody was issued.
    pub datagrams_unknown_ufrag: Counter,
    /// Datagrams the kernel refused to send, or a stalled ICE-TCP stream had no room for.
    pub datagrams_send_failed: Counter,
    /// Datagrams and forwarded packets one media worker handed to another, because the
    /// connection they are for lives there.
    pub worker_crossings: Counter,
    /// PLI and FIR received from subscribers.
    pub keyframe_requests_received: Counter,
    /// Keyframe requests the publications' tasks have decided on (sent or throttled).
    pub keyframe_requests_handled: Counter,
    /// PLI sent to publishers.
    pub plis_sent: Counter,
    /// REMB received from subscribers.
    pub rembs_received: Counter,
    /// REMB sent to publishers.
    pub rembs_sent: Counter,
    /// NACK received from subscribers (answered from the server's own history).
    pub nacks_received: Counter,
    /// Completed joins.
    pub joins: Counter,
    /// WebSocket messages refused with an `error`.
    pub signaling_errors: Counter,
    /// Join latency in seconds: from a `join` message's arrival to the participant's media
    /// connection first reaching `connected` (see `docs/deployment.md`, "Metrics").
    pub join_seconds: Histogram,
    /// The HTTP listener's connections, refusals and timeouts.
    pub http: HttpMetrics,
    /// The ICE-TCP listeners' streams and refusals.
    pub ice_tcp: IceTcpMetrics,
    /// The webhook dispatcher's queue, failed attempts and deliveries.
    pub webhooks: WebhookMetrics,
    /// A node's Redis, redirects and placements.
    pub cluster: ClusterMetrics,
    /// The layers of the published tracks, rebuilt at each scrape.
    pub layers: LayerMetrics,
    registry: Registry,
}

/// The upper bounds of the join latency buckets, in seconds. A join on a good network takes a
/// few hundred milliseconds (signaling, the client's offer, ICE and DTLS); the upper buckets
/// catch TURN fallbacks and struggling clients.
pub const JOIN_SECONDS_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0];

/// Counters labelled with why the packets they count were malformed.
type MalformedFamily = Family<[(&'static str, &'static str); 1], PromCounter<u64, AtomicU64>>;

impl Default for Metrics {
    fn default() -> Self {
        // Each reason's series is created here, so it shows from the start at zero, and its
        // counter is the one the packet path adds to: no label lookup per packet.
        let malformed = MalformedFamily::default();
        let reason = |reason| Counter(malformed.get_or_create_owned(&[("reason", reason)]));
        let mut metrics = Self {
            rooms: Level::default(),
            participants: Level::default(),
            peers: Level::default(),
            publications: Level::default(),
            subscriptions: Level::default(),
            packets_in: Counter::default(),
            bytes_in: Counter::default(),
            packets_out: Counter::default(),
            bytes_out: Counter::default(),
            packets_dropped: Counter::default(),
            malformed_headers: reason("rtp_header"),
            malformed_vp8: reason("vp8_descriptor"),
            malformed_padding: reason("padding"),
            malformed: malformed.clone(),
            datagrams_unknown: Counter::default(),
            datagrams_unknown_ufrag: Counter::default(),
            datagrams_send_failed: Counter::default(),
            worker_crossings: Counter::default(),
            keyframe_requests_received: Counter::default(),
            keyframe_requests_handled: Counter::default(),
            plis_sent: Counter::default(),
            rembs_received: Counter::default(),
            rembs_sent: Counter::default(),
            nacks_received: Counter::default(),
            joins: Counter::default(),
            signaling_errors: Counter::default(),
            join_seconds: Histogram::new(JOIN_SECONDS_BUCKETS),
            http: HttpMetrics::default(),
            ice_tcp: IceTcpMetrics::default(),
            webhooks: WebhookMetrics::default(),
            cluster: ClusterMetrics::default(),
            layers: LayerMetrics::default(),
            registry: Registry::default(),
        };
        metrics.registry = metrics.registry();
        metrics
    }
}

impl Metrics {
    /// The registry `/metrics` renders: the server's own series under `switchyard_`, and the
    /// standard `process_` ones. prometheus-client adds `_total` to counters' names, and a
    /// HELP text's final full stop.
    fn registry(&self) -> Registry {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("switchyard");
        let gauges = [
            ("rooms", "Rooms with at least one participant", &self.rooms),
            (
                "participants",
                "Participants joined to a room",
                &self.participants,
            ),
            ("peers", "Open peer connections", &self.peers),
            ("publications", "Published tracks", &self.publications),
            (
                "subscriptions",
                "Active forwards from a publication to a subscriber",
                &self.subscriptions,
            ),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.0.clone());
        }
        let counters = [
            (
                "rtp_packets_in",
                "RTP packets read from publishers",
                &self.packets_in,
            ),
            (
                "rtp_bytes_in",
                "RTP payload bytes read from publishers",
                &self.bytes_in,
            ),
            (
                "rtp_packets_out",
                "RTP packets forwarded to subscribers",
                &self.packets_out,
            ),
            (
                "rtp_bytes_out",
                "RTP payload bytes forwarded to subscribers",
                &self.bytes_out,
            ),
            (
                "rtp_packets_dropped",
                "RTP packets a subscriber's connection refused",
                &self.packets_dropped,
            ),
            (
                "media_datagrams_unknown",
                "Datagrams on the media port from an unknown address that were not a binding request to an issued ufrag",
                &self.datagrams_unknown,
            ),
            (
                "media_datagrams_unknown_ufrag",
                "Binding requests on the media port naming a ufrag the server never issued",
                &self.datagrams_unknown_ufrag,
            ),
            (
                "media_datagrams_send_failed",
                "Datagrams the kernel refused to send, or a stalled ICE-TCP stream had no room for",
                &self.datagrams_send_failed,
            ),
            (
                "media_worker_crossings",
                "Datagrams and forwarded packets handed from one media worker to another",
                &self.worker_crossings,
            ),
            (
                "keyframe_requests_received",
                "PLI and FIR received from subscribers",
                &self.keyframe_requests_received,
            ),
            (
                "keyframe_requests_handled",
                "Keyframe requests decided on by the throttle (sent or merged)",
                &self.keyframe_requests_handled,
            ),
            ("plis_sent", "PLI sent to publishers", &self.plis_sent),
            (
                "rembs_received",
                "REMB received from subscribers",
                &self.rembs_received,
            ),
            ("rembs_sent", "REMB sent to publishers", &self.rembs_sent),
            (
                "nacks_received",
                "NACK received from subscribers",
                &self.nacks_received,
            ),
            ("joins", "Completed joins", &self.joins),
            (
                "signaling_errors",
                "Signaling messages refused with an error",
                &self.signaling_errors,
            ),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.0.clone());
        }
        registry.register(
            "rtp_packets_malformed",
            "RTP packets from publishers dropped as malformed, by reason",
            self.malformed.clone(),
        );
        registry.register(
            "join_seconds",
            "Seconds from a join message to the participant's media connection first connected",
            self.join_seconds.clone(),
        );
        self.http.register(registry);
        self.ice_tcp.register(registry);
        self.webhooks.register(registry);
        self.cluster.register(registry);
        self.layers.register(registry);
        root
    }

    /// A snapshot of the live counts, given the number of rooms.
    pub fn counts(&self, rooms: usize) -> Counts {
        Counts {
            rooms: rooms as i64,
            participants: self.participants.load(Ordering::Relaxed),
            peers: self.peers.load(Ordering::Relaxed),
            publications: self.publications.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
        }
    }

    /// Renders every series in the OpenMetrics text format, given the number of rooms and the
    /// layers of the published tracks.
    pub fn render(&self, rooms: usize, layers: &[LayerSample]) -> String {
        self.rooms.0.set(rooms as i64);
        self.layers.set(layers);
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail; prometheus-client's encoders only pass on the
        // writer's errors.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The live counts a test or an operator checks return to zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    /// Rooms with at least one participant.
    pub rooms: i64,
    /// Participants joined to a room.
    pub participants: i64,
    /// Open peer connections.
    pub peers: i64,
    /// Published tracks.
    pub publications: i64,
    /// Active forwards from a publication to a subscriber.
    pub subscriptions: i64,
}

impl Counts {
    /// Whether nothing at all is live.
    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// Which gauge a [`GaugeGuard`] holds.
#[derive(Debug, Clone, Copy)]
pub enum Gauge {
    /// [`Metrics::participants`].
    Participants,
    /// [`Metrics::peers`].
    Peers,
    /// [`Metrics::publications`].
    Publications,
    /// [`Metrics::subscriptions`].
    Subscriptions,
}

/// Adds one to a gauge while it lives.
#[derive(Debug)]
pub struct GaugeGuard {
    level: Level,
}

impl GaugeGuard {
    /// Increments `gauge` until the guard is dropped.
    pub fn new(metrics: &Arc<Metrics>, gauge: Gauge) -> Self {
        let level = match gauge {
            Gauge::Participants => &metrics.participants,
            Gauge::Peers => &metrics.peers,
            Gauge::Publications => &metrics.publications,
            Gauge::Subscriptions => &metrics.subscriptions,
        };
        level.0.inc();
        Self {
            level: level.clone(),
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.level.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_return_gauges_to_zero() {
        let metrics = Arc::new(Metrics::default());
        let a = GaugeGuard::new(&metrics, Gauge::Peers);
        let b = GaugeGuard::new(&metrics, Gauge::Peers);
        assert_eq!(metrics.counts(0).peers, 2);
        drop(a);
        drop(b);
        assert!(metrics.counts(0).is_zero());
    }

    #[test]
    fn the_text_names_every_series() {
        let metrics = Metrics::default();
        metrics.packets_out.fetch_add(3, Ordering::Relaxed);
        metrics.malformed_vp8.fetch_add(1, Ordering::Relaxed);
        metrics.join_seconds.observe(0.3);
        metrics.http.refused(RefusedBecause::PerIp);
        metrics
            .ice_tcp
            .refused(crate::net::admission::Refusal::Total);
        metrics.webhooks.delivery(Delivery::GivenUp);
        let text = metrics.render(1, &[]);
        for line in [
            "switchyard_rooms 1",
            "switchyard_rtp_packets_out_total 3",
            "switchyard_rtp_packets_malformed_total{reason=\"vp8_descriptor\"} 1",
            "switchyard_rtp_packets_malformed_total{reason=\"rtp_header\"} 0",
            "switchyard_rtp_packets_malformed_total{reason=\"padding\"} 0",
            "# TYPE switchyard_rembs_received counter",
            "# TYPE switchyard_join_seconds histogram",
            "switchyard_join_seconds_bucket{le=\"0.5\"} 1",
            "switchyard_join_seconds_count 1",
            "switchyard_http_connections 0",
            "switchyard_unjoined_sockets 0",
            "switchyard_connections_refused_total{reason=\"per_ip\"} 1",
            "switchyard_connections_refused_total{reason=\"origin\"} 0",
            "switchyard_http_timeouts_total{phase=\"header\"} 0",
            "switchyard_ice_tcp_streams 0",
            "switchyard_ice_tcp_refused_total{reason=\"per_ip\"} 0",
            "switchyard_ice_tcp_refused_total{reason=\"total\"} 1",
            "switchyard_webhook_events_queued 0",
            "switchyard_webhook_events_dropped_total 0",
            "switchyard_webhook_attempts_failed_total 0",
            "switchyard_webhook_deliveries_total{outcome=\"delivered\"} 0",
            "switchyard_webhook_deliveries_total{outcome=\"given_up\"} 1",
            "# TYPE process_cpu_seconds counter",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "`{line}` in:\n{text}");
        }
    }
}
