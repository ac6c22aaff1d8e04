//! The abs-send-time header extension: when a packet left the server, for the subscriber's
//! bandwidth estimator.
//!
//! A browser subscriber estimates its downlink from how the spacing of packets changes between
//! sending and arrival, and reports the estimate as REMB. Without a send time on the packets it
//! falls back to the RTP timestamps, which tell when a frame was *captured*: the publisher's
//! pacer spreads a large frame over time, the estimator reads that spread as a queue building
//! on the downlink and keeps lowering its estimate, the server passes the lower cap on to the
//! publisher, whose pacer spreads frames further, and the bitrate collapses to the minimum. With
//! the time each packet leaves the server, the estimator measures the one link it reports on.
//!
//! The value is 24 bits of seconds in 6.18 fixed point, wrapping every 64 s; only differences
//! between packets matter, so it counts from the first use in this process.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;

/// The extension's URI, as negotiated in SDP.
pub const ABS_SEND_TIME_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";

/// The extension's payload for a packet sent at `now`.
pub fn abs_send_time(now: Instant) -> Bytes {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    Bytes::copy_from_slice(&encode(now.saturating_duration_since(epoch).as_nanos()))
}

/// `nanos` as 6.18 fixed-point seconds, the low 24 bits, big-endian.
fn encode(nanos: u128) -> [u8; 3] {
    let fixed = (nanos << 18) / 1_000_000_000;
    let [.., high, middle, low] = ((fixed & 0x00FF_FFFF) as u32).to_be_bytes();
    [high, middle, low]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u128 = 1_000_000_000;

    #[test]
    fn six_bits_of_seconds_and_eighteen_of_fraction() {
        assert_eq!(encode(0), [0, 0, 0]);
        assert_eq!(encode(SECOND), [0x04, 0x00, 0x00]);
        assert_eq!(encode(SECOND / 2), [0x02, 0x00, 0x00]);
        assert_eq!(
            encode(SECOND / (1 << 18)),
            [0, 0, 0],
            "rounds down below one unit"
        );
        assert_eq!(encode(63 * SECOND), [0xFC, 0x00, 0x00]);
        assert_eq!(encode(64 * SECOND), [0, 0, 0], "wraps every 64 s");
        assert_eq!(encode(65 * SECOND + SECOND / 4), [0x05, 0x00, 0x00]);
    }

    #[test]
    fn later_packets_carry_later_times() {
        let start = Instant::now();
        let first = abs_send_time(start);
        let later = abs_send_time(start + std::time::Duration::from_millis(10));
        assert_eq!(first.len(), 3);
        assert_ne!(first, later);
    }
}
