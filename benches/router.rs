//! The router's own per-packet cost, without the network: one 1,200-byte RTP packet prepared
//! once (extension strip, keyframe check) and rewritten for N down-tracks (numbering and
//! header rewrite). The rewritten packets are dropped instead of written, so the figure is
//! the router's work alone and does not move with the WebRTC stack or the machine's load; what
//! the stack adds per packet (SRTP, interceptors, the socket) is measured end to end by the
//! load test.
//!
//! `cargo bench --bench router`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rtc::rtp;
use switchyard::ids::{
    ConnectionId, LayerIndex, ParticipantId, Ssrc, TransceiverIndex, WorkerIndex,
};
use switchyard::media::downtrack::DownTrack;
use switchyard::media::publication::{Publication, TrackInfo};
use switchyard::signal::protocol::TrackKind;

fn publication_with_subscribers(count: usize) -> Arc<Publication> {
    let publication = Publication::new(
        TrackInfo {
            participant: ParticipantId::from("PA_bench"),
            track: "camera".to_owned(),
            stream: "stream".to_owned(),
            kind: TrackKind::Video,
            clock_rate: 90_000,
            mime_type: "video/VP8".to_owned(),
            screen: false,
        },
        &[],
        false,
        ConnectionId::next(WorkerIndex(0)),
        Instant::now(),
    );
    for index in 0..count {
        let down = Arc::new(DownTrack::new(
            TrackKind::Video,
            Ssrc(1000 + index as u32),
            90_000,
            ConnectionId::next(WorkerIndex(0)),
            TransceiverIndex(index),
        ));
        down.set_payload_type(96);
        down.switch_to(publication.key());
        down.set_ready(true);
        publication.attach(down);
    }
    publication
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
        let publication = publication_with_subscribers(count);
        let template = packet(0, false);
        let mut out = Vec::with_capacity(count);
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
                let routed = publication.route(next, LayerIndex(0), Instant::now(), &mut out);
                debug_assert!(routed.is_ok());
                out.clear();
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
