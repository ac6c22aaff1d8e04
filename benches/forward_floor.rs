//! The floor under forwarding: what sending one 1,200-byte RTP packet to one subscriber costs
//! at the very least on this machine. Per packet: number it (a new sequence number, as a
//! forwarder does for every subscriber), serialize it, protect it with SRTP, and send it with
//! one `send_to` on a loopback UDP socket. Nothing else a server does — routing, queues,
//! interceptors, RTCP — is in it.
//!
//! It uses the SRTP implementation the server uses (webrtc-rs's, through the `rtc` crate, with
//! its default crypto provider), once per protection profile that matters:
//! `SRTP_AEAD_AES_128_GCM` is what webrtc-rs negotiates first, so what Switchyard uses with
//! webrtc-rs peers; `SRTP_AEAD_AES_256_GCM` is what Janus picks with them; and
//! `SRTP_AES128_CM_HMAC_SHA1_80` is the profile every WebRTC stack supports.
//!
//! The receiving socket is drained by a thread of its own, so the kernel really delivers every
//! datagram (a full receive queue would drop them early and flatter the figure). Time is the
//! sending thread's CPU time, not wall time: it is what the server's CPU per packet is set
//! against, it includes the kernel's work for the send, and it does not grow when other work
//! shares the machine. Its inverse is the most packets one core could forward per CPU-second:
//! `docs/benchmarks.md` sets the servers' forwarded packets per CPU-second against it.
//!
//! The batched floor (`forward_floor_batched`) is the same work as a media worker batches it:
//! 32 packets for 32 different subscribers, each numbered, serialized and protected, then all
//! sent with one `sendmmsg` (the server's own `SendBatch`). Its time is per packet too.
//!
//! `cargo bench --bench forward_floor`

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rtc::crypto::RTCCryptoProvider;
use rtc::rtp;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::protection_profile::ProtectionProfile;
use switchyard::net::udp::{BATCH, SendBatch, UdpWriter};

/// The profiles measured, under the names DTLS-SRTP gives them.
const PROFILES: [(&str, ProtectionProfile); 3] = [
    ("SRTP_AEAD_AES_128_GCM", ProtectionProfile::AeadAes128Gcm),
    ("SRTP_AEAD_AES_256_GCM", ProtectionProfile::AeadAes256Gcm),
    (
        "SRTP_AES128_CM_HMAC_SHA1_80",
        ProtectionProfile::Aes128CmHmacSha1_80,
    ),
];

/// The payload of every packet: the load test's largest.
const PAYLOAD: usize = 1200;

/// The calling thread's CPU time, user and system, in nanoseconds.
fn thread_cpu_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and CLOCK_THREAD_CPUTIME_ID is a clock every
    // Linux kernel provides; clock_gettime writes nothing else.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "the thread's CPU clock");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Criterion measuring the benchmark thread's CPU time.
struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_nanos()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_nanos().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanoseconds
    }
}

/// Shows CPU nanoseconds as CPU time, and throughput per CPU-second.
struct CpuNanoseconds;

impl ValueFormatter for CpuNanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns CPU")
        } else if typical < 1e6 {
            (1e-3, "µs CPU")
        } else {
            (1e-6, "ms CPU")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match throughput {
            Throughput::Elements(count) => *count as f64,
            _ => 1.0,
        };
        for value in values {
            *value = per_iteration * 1e9 / *value;
        }
        "per CPU-second"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// Reads and discards everything that arrives on `socket` until `stop` is set.
fn drain(socket: UdpSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            // The timeout lets the thread notice `stop` when nothing arrives.
            let _ = socket.recv(&mut buffer);
        }
    })
}

/// An SRTP context for `profile`, keyed with fixed bytes (the cost does not depend on them).
fn srtp_context(profile: ProtectionProfile, crypto: &Arc<dyn RTCCryptoProvider>) -> Context {
    let key: Vec<u8> = (0..profile.key_len()).map(|byte| byte as u8).collect();
    let salt: Vec<u8> = (0..profile.salt_len())
        .map(|byte| 0x40 | byte as u8)
        .collect();
    Context::new(&key, &salt, profile, None, None, crypto.crypto()).expect("an SRTP context")
}

/// A VP8 packet with a [`PAYLOAD`]-byte payload.
fn video_packet() -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            payload_type: 96,
            sequence_number: 1,
            timestamp: 90_000,
            ssrc: 0x5357_5944,
            ..Default::default()
        },
        payload: Bytes::from(vec![0x5a; PAYLOAD]),
    }
}

fn forward_floor(c: &mut Criterion<ThreadCpuTime>) {
    let crypto = rtc::crypto::default_provider().expect("a built-in crypto provider");
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");
    receiver
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("a read timeout");
    let destination = receiver.local_addr().expect("its address");
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = drain(receiver, Arc::clone(&stop));
    let sender = UdpSocket::bind("127.0.0.1:0").expect("a loopback socket");

    let mut group = c.benchmark_group("forward_floor");
    group.throughput(Throughput::Elements(1));
    for (name, profile) in PROFILES {
        let mut context = srtp_context(profile, &crypto);
        let mut packet = video_packet();
        group.bench_function(name, |bench| {
            bench.iter(|| {
                packet.header.sequence_number = packet.header.sequence_number.wrapping_add(1);
                let plain = packet.marshal().expect("a packet serializes");
                let protected = context
                    .encrypt_rtp_with_header(&plain, &packet.header)
                    .expect("SRTP protects it");
                sender
                    .send_to(&protected, destination)
                    .expect("loopback takes it")
            });
        });
    }
    group.finish();

    // The two halves of the floor, apart: where its time goes.
    let mut parts = c.benchmark_group("forward_floor_parts");
    parts.throughput(Throughput::Elements(1));
    let (name, profile) = PROFILES[0];
    let mut context = srtp_context(profile, &crypto);
    let mut packet = video_packet();
    parts.bench_function(format!("{name} without the send"), |bench| {
        bench.iter(|| {
            packet.header.sequence_number = packet.header.sequence_number.wrapping_add(1);
            let plain = packet.marshal().expect("a packet serializes");
            context
                .encrypt_rtp_with_header(&plain, &packet.header)
                .expect("SRTP protects it")
        });
    });
    let datagram = vec![0x5a; PAYLOAD + 12 + 16];
    parts.bench_function("send_to alone", |bench| {
        bench.iter(|| {
            sender
                .send_to(&datagram, destination)
                .expect("loopback takes it")
        });
    });
    parts.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
}

/// Subscribers in the batched floor: one `sendmmsg` worth.
const SUBSCRIBERS: usize = BATCH;

fn forward_floor_batched(c: &mut Criterion<ThreadCpuTime>) {
    let crypto = rtc::crypto::default_provider().expect("a built-in crypto provider");
    let receivers: Vec<UdpSocket> = (0..SUBSCRIBERS)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("a loopback socket"))
        .collect();
    let destinations: Vec<SocketAddr> = receivers
        .iter()
        .map(|socket| socket.local_addr().expect("its address"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = drain_all(receivers, Arc::clone(&stop));
    let sender = UdpWriter::new(
        switchyard::net::udp::bind("127.0.0.1:0".parse().expect("an address"))
            .expect("a loopback socket"),
    )
    .expect("a writer");

    let mut group = c.benchmark_group("forward_floor_batched");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    for (name, profile) in PROFILES {
        // One SRTP context and one numbering per subscriber, as each has its own.
        let mut contexts: Vec<Context> = (0..SUBSCRIBERS)
            .map(|_| srtp_context(profile, &crypto))
            .collect();
        let mut packet = video_packet();
        let mut batch = SendBatch::default();
        group.bench_function(name, |bench| {
            bench.iter(|| {
                packet.header.sequence_number = packet.header.sequence_number.wrapping_add(1);
                for (context, destination) in contexts.iter_mut().zip(&destinations) {
                    let plain = packet.marshal().expect("a packet serializes");
                    let protected = context
                        .encrypt_rtp_with_header(&plain, &packet.header)
                        .expect("SRTP protects it");
                    batch.push(*destination, protected);
                }
                // A full socket buffer leaves datagrams behind: give them up, as the worker
                // does, rather than count a send that did not happen.
                if sender.send(&mut batch).is_err() {
                    batch.discard();
                }
            });
        });
    }
    group.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
}

/// Reads and discards everything that arrives on any of `sockets` until `stop` is set.
fn drain_all(sockets: Vec<UdpSocket>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        for socket in &sockets {
            socket.set_nonblocking(true).expect("a non-blocking socket");
        }
        while !stop.load(Ordering::Relaxed) {
            let mut ready: Vec<PollFd<'_>> = sockets
                .iter()
                .map(|socket| PollFd::new(socket.as_fd(), PollFlags::POLLIN))
                .collect();
            // The timeout lets the thread notice `stop` when nothing arrives.
            if poll(&mut ready, PollTimeout::from(50u16)).is_err() {
                continue;
            }
            for socket in &sockets {
                while socket.recv(&mut buffer).is_ok() {}
            }
        }
    })
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = forward_floor, forward_floor_batched
}
criterion_main!(benches);
