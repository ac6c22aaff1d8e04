//! The router's own per-packet cost, without the network: one 1,200-byte RTP packet prepared
//! once (extension strip, keyframe check) and handed to N down-tracks (numbering rewrite,
//! header rewrite, hand-off). The hand-off goes to a sink that only counts, so the figure is
//! the router's work alone and does not move with the WebRTC stack or the machine's load; what
//! the stack adds per packet (SRTP, interceptors, the socket) is measured end to end by the
//! load test.
//!
//! `cargo bench --bench router`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtc::rtp;
use switchyard::media::downtrack::{DownTrack, PacketSink};
use switchyard::media::publication::route;
use switchyard::metrics::Metrics;
use switchyard::signal::protocol::TrackKind;

/// Counts packets, like a connection whose queue always has room.
#[derive(Default)]
struct Counter(AtomicU64);

impl PacketSink for Counter {
    fn try_send(&self, packet: rtp::Packet) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed);
        drop(packet);
        true
    }
}

fn subscribers(count: usize) -> Vec<Arc<DownTrack>> {
    let metrics = Arc::new(Metrics::default());
    (0..count)
        .map(|index| {
            let down = Arc::new(DownTrack::new(
                TrackKind::Video,
                1000 + index as u32,
                90_000,
                Arc::new(Counter::default()),
                Arc::clone(&metrics),
            ));
            down.set_payload_type(96);
            down.switch_to(1);
            down.set_ready(true);
            down
        })
        .collect()
}

fn packet(sequence_number: u16, keyframe: bool) -> rtp::Packet {
    let mut payload = vec![0u8; 1200];
    payload[0] = 0x10;
    payload[1] = if keyframe { 0x10 } else { 0x11 };
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number,
            timestamp: u32::from(sequence_number) * 3000,
            ssrc: 42,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("route a 1200-byte packet");
    group.measurement_time(Duration::from_secs(5));
    for count in [1usize, 10, 100] {
        let downs = subscribers(count);
        let template = packet(0, false);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("subscribers", count), &count, |b, _| {
            let mut sequence = 0u16;
            b.iter(|| {
                sequence = sequence.wrapping_add(1);
                let mut next = template.clone();
                next.header.sequence_number = sequence;
                if sequence == 1 {
                    next = packet(sequence, true);
                }
                route(1, TrackKind::Video, &mut next, &downs, Instant::now());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
