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
