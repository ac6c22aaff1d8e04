//! Per-subscriber RTP numbering.
//!
//! Every subscriber sees each forwarded track on its own SSRC, with its own sequence numbers and
//! timestamps. A [`Rewriter`] maps the numbers of whichever publication currently feeds a
//! down-track into that down-track's space by a constant offset, so loss and reordering upstream
//! stay visible downstream (the subscriber can still NACK a gap), and a change of source
//! continues the numbering instead of restarting it: the subscriber's jitter buffer and the
//! server's own retransmission history never see a sequence number twice.

use std::time::Instant;

use crate::ids::PublicationKey;

/// Rewrites sequence numbers and timestamps from the current source into one continuous space.
#[derive(Debug)]
pub struct Rewriter {
    clock_rate: u32,
    source: Option<Source>,
    last: Option<Emitted>,
    initial_sequence: u16,
    initial_timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Source {
    key: PublicationKey,
    offsets: Option<Offsets>,
}

#[derive(Debug, Clone, Copy)]
struct Offsets {
    sequence: u16,
    timestamp: u32,
    first_sequence: u16,
}

#[derive(Debug, Clone, Copy)]
struct Emitted {
    sequence: u16,
    timestamp: u32,
    at: Instant,
}

/// The numbers a packet goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    /// The outgoing sequence number.
    pub sequence: u16,
    /// The outgoing RTP timestamp.
    pub timestamp: u32,
}

impl Rewriter {
    /// A rewriter for a track with `clock_rate`, whose first packet ever goes out with the given
    /// (normally random) sequence number and timestamp.
    pub fn new(clock_rate: u32, initial_sequence: u16, initial_timestamp: u32) -> Self {
        Self {
            clock_rate,
            source: None,
            last: None,
            initial_sequence,
            initial_timestamp,
        }
    }

    /// Makes `key` the source. Its numbering starts at the first packet passed to
    /// [`rewrite`](Self::rewrite) with `can_start` set.
    pub fn switch_to(&mut self, key: PublicationKey) {
        self.source = Some(Source { key, offsets: None });
    }

    /// Stops forwarding: every packet is refused until the next [`switch_to`](Self::switch_to).
    pub fn detach(&mut self) {
        self.source = None;
    }

    /// The source currently feeding this rewriter.
    pub fn source(&self) -> Option<PublicationKey> {
        self.source.map(|source| source.key)
    }

    /// Maps one packet of source `key`, or refuses it: a packet of another source, a packet
    /// before the source has started (`can_start` is how the caller says "a decoder can begin
    /// here", e.g. at a keyframe), or one older than the packet the source started with.
    pub fn rewrite(
        &mut self,
        key: PublicationKey,
        sequence: u16,
        timestamp: u32,
        can_start: bool,
        now: Instant,
    ) -> Option<Rewritten> {
        let source = self.source.as_mut().filter(|source| source.key == key)?;
        let offsets = match source.offsets {
            Some(offsets) => {
                if is_older(sequence, offsets.first_sequence) {
                    return None;
                }
                offsets
            }
            None => {
                if !can_start {
                    return None;
                }
                let (out_sequence, out_timestamp) = match self.last {
                    Some(last) => {
                        let elapsed = now.saturating_duration_since(last.at);
                        let ticks = (elapsed.as_secs_f64() * f64::from(self.clock_rate)) as u64;
                        let ticks = ticks.clamp(1, u64::from(u32::MAX / 2)) as u32;
                        (
                            last.sequence.wrapping_add(1),
                            last.timestamp.wrapping_add(ticks),
                        )
                    }
                    None => (self.initial_sequence, self.initial_timestamp),
                };
                let offsets = Offsets {
                    sequence: out_sequence.wrapping_sub(sequence),
                    timestamp: out_timestamp.wrapping_sub(timestamp),
                    first_sequence: sequence,
                };
                source.offsets = Some(offsets);
                offsets
            }
        };
        let rewritten = Rewritten {
            sequence: sequence.wrapping_add(offsets.sequence),
            timestamp: timestamp.wrapping_add(offsets.timestamp),
        };
        let is_newest = self
            .last
            .is_none_or(|last| !is_older(rewritten.sequence, last.sequence));
        if is_newest {
            self.last = Some(Emitted {
                sequence: rewritten.sequence,
                timestamp: rewritten.timestamp,
                at: now,
            });
        }
        Some(rewritten)
    }
}

/// Whether `a` comes before `b` in RTP's wrapping sequence space.
fn is_older(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rewriter() -> Rewriter {
        Rewriter::new(90_000, 1000, 50_000)
    }

    #[test]
    fn refuses_everything_without_a_source() {
        let mut rewriter = rewriter();
        assert_eq!(
            rewriter.rewrite(PublicationKey(1), 5, 5, true, Instant::now()),
            None
        );
    }

    #[test]
    fn starts_at_the_initial_numbers_and_keeps_gaps() {
        let now = Instant::now();
        let mut rewriter = rewriter();
        rewriter.switch_to(PublicationKey(7));
        assert_eq!(
            rewriter.rewrite(PublicationKey(7), 300, 9000, false, now),
            None,
            "waits for a start"
        );
        let first = rewriter
            .rewrite(PublicationKey(7), 301, 9000, true, now)
            .unwrap();
        assert_eq!(
            first,
            Rewritten {
                sequence: 1000,
                timestamp: 50_000
            }
        );
        let gap = rewriter
            .rewrite(PublicationKey(7), 304, 12_000, false, now)
            .unwrap();
        assert_eq!(
            gap,
            Rewritten {
                sequence: 1003,
                timestamp: 53_000
            }
        );
        // A late retransmission fills the gap with the number the subscriber is missing.
        let late = rewriter
            .rewrite(PublicationKey(7), 302, 9000, false, now)
            .unwrap();
        assert_eq!(late.sequence, 1001);
        // Anything before the start would collide with numbers the subscriber never saw.
        assert_eq!(
            rewriter.rewrite(PublicationKey(7), 300, 9000, false, now),
            None
        );
    }

    #[test]
    fn refuses_a_stale_source() {
        let now = Instant::now();
        let mut rewriter = rewriter();
        rewriter.switch_to(PublicationKey(1));
        rewriter
            .rewrite(PublicationKey(1), 10, 10, true, now)
            .unwrap();
        rewriter.switch_to(PublicationKey(2));
        assert_eq!(rewriter.rewrite(PublicationKey(1), 11, 10, true, now), None);
        rewriter.detach();
        assert_eq!(rewriter.rewrite(PublicationKey(2), 11, 10, true, now), None);
    }

    #[test]
    fn a_new_source_continues_the_numbering() {
        let start = Instant::now();
        let mut rewriter = rewriter();
        rewriter.switch_to(PublicationKey(1));
        rewriter
            .rewrite(PublicationKey(1), 65_534, 4_000_000_000, true, start)
            .unwrap();
        let wrapped = rewriter
            .rewrite(PublicationKey(1), 1, 4_000_003_000, false, start)
            .unwrap();
        assert_eq!(wrapped.sequence, 1003, "wraps with the source");

        rewriter.switch_to(PublicationKey(2));
        let later = start + Duration::from_millis(100);
        let next = rewriter
            .rewrite(PublicationKey(2), 40_000, 123, true, later)
            .unwrap();
        assert_eq!(next.sequence, 1004);
        assert_eq!(next.timestamp, wrapped.timestamp.wrapping_add(9000));
    }

    #[test]
    fn wrapping_order() {
        assert!(is_older(1, 2));
        assert!(is_older(65_535, 0));
        assert!(!is_older(0, 65_535));
        assert!(!is_older(5, 5));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// One source's stretch of packets: where its numbering starts, how many it sends,
        /// which of them reach the rewriter (the rest are lost upstream or dropped by the
        /// router), and how long after the previous stretch it starts.
        #[derive(Debug, Clone)]
        struct Stretch {
            sequence: u16,
            timestamp: u32,
            kept: Vec<bool>,
            pause_ms: u64,
        }

        fn stretch() -> impl Strategy<Value = Stretch> {
            (
                any::<u16>(),
                any::<u32>(),
                prop::collection::vec(any::<bool>(), 1..60),
                0..2_000u64,
            )
                .prop_map(|(sequence, timestamp, kept, pause_ms)| Stretch {
                    sequence,
                    timestamp,
                    kept,
                    pause_ms,
                })
        }

        proptest! {
            /// Within a source the subscriber sees exactly the publisher's gaps (so it can NACK
            /// them, and a dropped packet is never papered over); a new source continues one
            /// after the last number sent, its timestamps after the pause; no number repeats.
            #[test]
            fn numbering_follows_the_source_and_continues_across_sources(
                initial_sequence in any::<u16>(),
                initial_timestamp in any::<u32>(),
                stretches in prop::collection::vec(stretch(), 1..6),
            ) {
                let mut rewriter = Rewriter::new(90_000, initial_sequence, initial_timestamp);
                let mut now = Instant::now();
                let mut last: Option<(u16, u32)> = None;
                let mut last_at = now;
                let mut sent = 0usize;
                for (index, stretch) in stretches.iter().enumerate() {
                    let key = PublicationKey(index as u64 + 1);
                    rewriter.switch_to(key);
                    now += Duration::from_millis(stretch.pause_ms);
                    let mut previous_in: Option<(u16, u32)> = None;
                    for (offset, kept) in stretch.kept.iter().enumerate() {
                        if !kept {
                            continue;
                        }
                        let sequence = stretch.sequence.wrapping_add(offset as u16);
                        let timestamp = stretch.timestamp.wrapping_add(offset as u32 * 3000);
                        let out = rewriter
                            .rewrite(key, sequence, timestamp, previous_in.is_none(), now)
                            .expect("a packet of the current source after its start");
                        match (previous_in, last) {
                            (Some((in_seq, in_ts)), Some((out_seq, out_ts))) => {
                                prop_assert_eq!(
                                    out.sequence.wrapping_sub(out_seq),
                                    sequence.wrapping_sub(in_seq)
                                );
                                prop_assert_eq!(
                                    out.timestamp.wrapping_sub(out_ts),
                                    timestamp.wrapping_sub(in_ts)
                                );
                            }
                            (None, Some((out_seq, out_ts))) => {
                                prop_assert_eq!(out.sequence, out_seq.wrapping_add(1));
                                let ticks = out.timestamp.wrapping_sub(out_ts);
                                let paused = now.duration_since(last_at);
                                let expected = (paused.as_millis() as u64 * 90).max(1);
                                prop_assert!(
                                    u64::from(ticks).abs_diff(expected) <= 1,
                                    "{} ticks after a pause of {:?}", ticks, paused
                                );
                            }
                            (_, None) => {
                                prop_assert_eq!(out.sequence, initial_sequence);
                                prop_assert_eq!(out.timestamp, initial_timestamp);
                            }
                        }
                        previous_in = Some((sequence, timestamp));
                        last = Some((out.sequence, out.timestamp));
                        last_at = now;
                        sent += 1;
                    }
                }
                let offered = stretches.iter().flat_map(|s| &s.kept).filter(|k| **k).count();
                prop_assert_eq!(sent, offered);
            }

            /// A packet of any other source, or of the current one before it could start, is
            /// never numbered.
            #[test]
            fn nothing_is_numbered_outside_its_source(
                sequence in any::<u16>(),
                timestamp in any::<u32>(),
                other in 2..u64::MAX,
            ) {
                let now = Instant::now();
                let mut rewriter = Rewriter::new(90_000, 0, 0);
                prop_assert_eq!(rewriter.rewrite(PublicationKey(1), sequence, timestamp, true, now), None);
                rewriter.switch_to(PublicationKey(1));
                prop_assert_eq!(rewriter.rewrite(PublicationKey(1), sequence, timestamp, false, now), None);
                prop_assert_eq!(rewriter.rewrite(PublicationKey(other), sequence, timestamp, true, now), None);
                prop_assert!(rewriter.rewrite(PublicationKey(1), sequence, timestamp, true, now).is_some());
                let before = sequence.wrapping_sub(1);
                prop_assert_eq!(rewriter.rewrite(PublicationKey(1), before, timestamp, false, now), None);
            }
        }
    }
}
