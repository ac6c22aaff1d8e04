//! Taps the RTCP feedback a subscriber sends about the tracks it receives.
//!
//! Inbound RTCP normally ends inside the interceptor chain: receiver reports feed statistics and
//! NACKs are answered from the sender's own history. Keyframe requests and bandwidth estimates
//! are different: only the router can act on them, by asking the publisher. The core would route
//! a compound RTCP packet to one track by the first SSRC it names, which loses a REMB that
//! covers several tracks, so this interceptor copies the three kinds the router needs onto a
//! channel of its own, keyed by the SSRCs they name, and lets everything go on as before.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use tokio::sync::mpsc;

use crate::ids::Ssrc;

/// Feedback a subscriber sent about one of the streams it receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Feedback {
    /// PLI or FIR: the subscriber's decoder needs a keyframe of the stream with this SSRC.
    KeyframeRequest {
        /// The SSRC of the down-track.
        media_ssrc: Ssrc,
    },
    /// REMB: the subscriber estimates its downlink can carry `bitrate` bit/s for these SSRCs.
    BitrateEstimate {
        /// Bits per second.
        bitrate: u64,
        /// The down-track SSRCs the estimate covers.
        ssrcs: Vec<Ssrc>,
    },
    /// NACK: the subscriber lost packets (answered by the interceptors; counted here).
    Nack,
}

/// How many feedback messages may wait for the session before new ones are dropped.
pub const FEEDBACK_QUEUE: usize = 256;

/// The interceptor: passes every packet through unchanged and copies feedback to `sink`.
pub struct FeedbackTap {
    sink: mpsc::Sender<Feedback>,
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl FeedbackTap {
    /// A tap delivering to `sink`. When the receiver lags, feedback is dropped rather than
    /// queued without bound: a later PLI or REMB supersedes a lost one.
    pub fn new(sink: mpsc::Sender<Feedback>) -> Self {
        Self {
            sink,
            read_queue: VecDeque::new(),
            write_queue: VecDeque::new(),
        }
    }

    fn inspect(&self, packets: &[Box<dyn rtc::rtcp::Packet>]) {
        for packet in packets {
            let any = packet.as_any();
            let feedback = if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                Feedback::KeyframeRequest {
                    media_ssrc: Ssrc(pli.media_ssrc),
                }
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                for entry in &fir.fir {
                    let _ = self.sink.try_send(Feedback::KeyframeRequest {
                        media_ssrc: Ssrc(entry.ssrc),
                    });
                }
                continue;
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                Feedback::BitrateEstimate {
                    bitrate: remb.bitrate.max(0.0) as u64,
                    ssrcs: remb.ssrcs.iter().copied().map(Ssrc).collect(),
                }
            } else if any.is::<TransportLayerNack>() {
                Feedback::Nack
            } else {
                continue;
            };
            // Full or closed: drop; see `new`.
            let _ = self.sink.try_send(feedback);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for FeedbackTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            self.inspect(packets);
        }
        self.read_queue.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for FeedbackTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rtc::rtcp::payload_feedbacks::full_intra_request::FirEntry;

    fn tap() -> (FeedbackTap, mpsc::Receiver<Feedback>) {
        let (sink, feedback) = mpsc::channel(FEEDBACK_QUEUE);
        (FeedbackTap::new(sink), feedback)
    }

    fn drain(feedback: &mut mpsc::Receiver<Feedback>) -> Vec<Feedback> {
        std::iter::from_fn(|| feedback.try_recv().ok()).collect()
    }

    /// RTCP as it comes off the wire: the parser's output, whatever the bytes.
    fn parsed(bytes: &[u8]) -> Vec<Box<dyn rtc::rtcp::Packet>> {
        rtc::rtcp::packet::unmarshal(&mut &bytes[..]).unwrap_or_default()
    }

    /// Bytes that are often a valid compound packet of the kinds the tap reads, sometimes
    /// damaged.
    fn rtcp_bytes() -> impl Strategy<Value = Vec<u8>> {
        let packet = prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(sender_ssrc, media_ssrc)| {
                Box::new(PictureLossIndication {
                    sender_ssrc,
                    media_ssrc,
                }) as Box<dyn rtc::rtcp::Packet>
            }),
            (any::<f32>(), prop::collection::vec(any::<u32>(), 0..6)).prop_map(
                |(bitrate, ssrcs)| {
                    Box::new(ReceiverEstimatedMaximumBitrate {
                        sender_ssrc: 0,
                        bitrate,
                        ssrcs,
                    }) as Box<dyn rtc::rtcp::Packet>
                }
            ),
            prop::collection::vec((any::<u32>(), any::<u8>()), 0..4).prop_map(|entries| {
                Box::new(FullIntraRequest {
                    sender_ssrc: 0,
                    media_ssrc: 0,
                    fir: entries
                        .into_iter()
                        .map(|(ssrc, sequence_number)| FirEntry {
                            ssrc,
                            sequence_number,
                        })
                        .collect(),
                }) as Box<dyn rtc::rtcp::Packet>
            }),
        ];
        (
            prop::collection::vec(packet, 1..4),
            prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
            prop::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(packets, flip, cut)| {
                let mut bytes = rtc::rtcp::packet::marshal(&packets)
                    .map(|bytes| bytes.to_vec())
                    .unwrap_or_default();
                if let Some((at, value)) = flip.filter(|_| !bytes.is_empty()) {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                if let Some(cut) = cut.filter(|_| !bytes.is_empty()) {
                    bytes.truncate(cut.index(bytes.len()));
                }
                bytes
            })
    }

    #[test]
    fn copies_keyframe_requests_and_estimates_and_counts_nacks() {
        let (tap, mut feedback) = tap();
        let packets: Vec<Box<dyn rtc::rtcp::Packet>> = vec![
            Box::new(PictureLossIndication {
                sender_ssrc: 1,
                media_ssrc: 7,
            }),
            Box::new(FullIntraRequest {
                sender_ssrc: 1,
                media_ssrc: 0,
                fir: vec![
                    FirEntry {
                        ssrc: 8,
                        sequence_number: 1,
                    },
                    FirEntry {
                        ssrc: 9,
                        sequence_number: 1,
                    },
                ],
            }),
            Box::new(ReceiverEstimatedMaximumBitrate {
                sender_ssrc: 1,
                bitrate: f32::NAN,
                ssrcs: vec![7],
            }),
            Box::new(TransportLayerNack::default()),
        ];
        tap.inspect(&packets);
        assert_eq!(
            drain(&mut feedback),
            vec![
                Feedback::KeyframeRequest {
                    media_ssrc: Ssrc(7)
                },
                Feedback::KeyframeRequest {
                    media_ssrc: Ssrc(8)
                },
                Feedback::KeyframeRequest {
                    media_ssrc: Ssrc(9)
                },
                Feedback::BitrateEstimate {
                    bitrate: 0,
                    ssrcs: vec![Ssrc(7)]
                },
                Feedback::Nack,
            ]
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The core's RTCP parser, which reads every subscriber's RTCP, takes any bytes
        /// without panicking, and the tap takes whatever it parses.
        #[test]
        fn any_rtcp_is_parsed_and_tapped_without_panicking(
            bytes in prop_oneof![rtcp_bytes(), prop::collection::vec(any::<u8>(), 0..96)],
        ) {
            let (tap, mut feedback) = tap();
            let packets = parsed(&bytes);
            tap.inspect(&packets);
            let copied = drain(&mut feedback);
            prop_assert!(copied.len() <= FEEDBACK_QUEUE);
        }

        /// What a subscriber asks for arrives as it asked: the stream of each keyframe request,
        /// the streams and a finite, non-negative bitrate of each estimate.
        #[test]
        fn requests_and_estimates_survive_the_wire(bytes in rtcp_bytes()) {
            let packets = parsed(&bytes);
            let (tap, mut feedback) = tap();
            tap.inspect(&packets);
            let mut copied = drain(&mut feedback).into_iter();
            for packet in &packets {
                let any = packet.as_any();
                if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    prop_assert_eq!(
                        copied.next(),
                        Some(Feedback::KeyframeRequest { media_ssrc: Ssrc(pli.media_ssrc) })
                    );
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                    for entry in &fir.fir {
                        prop_assert_eq!(
                            copied.next(),
                            Some(Feedback::KeyframeRequest { media_ssrc: Ssrc(entry.ssrc) })
                        );
                    }
                } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                    let Some(Feedback::BitrateEstimate { bitrate, ssrcs }) = copied.next() else {
                        return Err(TestCaseError::fail("an estimate"));
                    };
                    prop_assert_eq!(ssrcs, remb.ssrcs.iter().copied().map(Ssrc).collect::<Vec<_>>());
                    if remb.bitrate.is_finite() && remb.bitrate >= 0.0 {
                        prop_assert_eq!(bitrate, remb.bitrate as u64);
                    }
                } else if any.is::<TransportLayerNack>() {
                    prop_assert_eq!(copied.next(), Some(Feedback::Nack));
                }
            }
            prop_assert_eq!(copied.next(), None);
        }
    }
}
