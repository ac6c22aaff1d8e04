//! RTP packets the connection's core refuses for their padding, once it has decrypted them.
//!
//! SRTP encrypts a packet's padding with its payload, the pad length (its last byte) included,
//! so padding longer than the packet (RFC 3550, section 5.1) shows only after decryption, inside
//! the core: its parser refuses the packet, logs a warning and tells the application nothing.
//! The connection finds these packets by what does not come out of the core:
//!
//! - `handle_read` takes a datagram through the whole core at once (decryption, parsing, every
//!   interceptor; none of them keeps a packet back), and every packet the core accepts on a
//!   receiving SSRC then waits for `poll_read`: padding-only probes (which a browser sends on
//!   the media SSRC when, as here, no RTX is negotiated), and the first packets of a track
//!   (whose stream the core sets up before the interceptors see them), included. So a
//!   packet that went in with the padding bit set in its clear header, and has not come out
//!   once `poll_read` is drained, was refused after decryption.
//! - Only packets the core would hand on are watched: SRTP (not SRTCP), on a media SSRC one of
//!   the connection's receivers takes, as the core lists them (declared by the client's SDP,
//!   or bound by its RTP stream ids), so a track's packets are watched before its first one
//!   arrives. The core drops packets on any other SSRC after parsing them, RTX among them (the
//!   server negotiates none), and those would look refused. And only once the connection is
//!   connected: until the core has taken in the end of the DTLS handshake it has no SRTP keys
//!   and refuses every packet, as it does a sender's first packets when they arrive in the same
//!   batch as that end.
//! - Besides padding, the core refuses after the clear header what does not authenticate (too
//!   short for its tag, or sent from the publisher's address without its keys: the server
//!   cannot tell it from bad padding, so it counts as padding when its padding bit is set) and
//!   what SRTP's replay window refuses: a sequence number it has decrypted before, or one more
//!   than 64 behind the newest. A replay is recognised when its packet recently came out, or
//!   was recently counted, as the retransmission of an over-padded packet a sender answers a
//!   NACK with: the last [`REMEMBERED`] of those are kept. An older duplicate, or a padded packet
//!   that arrives that late, counts as padding; the duplicates a network makes arrive within
//!   milliseconds.
//!
//! The common path does no work: a datagram without the padding bit costs a bit test, and a
//! packet coming out without it another. What is noted lasts one pass, emptied by the next
//! `process`: it cannot outgrow what the worker read in that pass, and after a big pass its
//! memory is given back. The core's warning for each refused packet stays out of the log under
//! the default filter, which keeps the core at errors (`config::DEFAULT_LOG_FILTER`): the count
//! replaces it, and a publisher cannot flood the log with it.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use crate::ids::Ssrc;
use crate::media::malformed::Malformed;
use crate::rtc::connection::Connection;

/// How many packets the watch remembers having seen the core decrypt (they came out, or were
/// counted), to tell a replay of one from a new packet.
pub const REMEMBERED: usize = 128;

/// Packets noted in a pass above which the memory for them is given back afterwards.
const KEPT_CAPACITY: usize = 256;

/// The bit of an RTP header's first byte that says the packet ends in padding.
const PADDING_BIT: u8 = 0x20;

/// One RTP packet with padding: its stream and sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaddedPacket {
    /// The stream.
    pub ssrc: Ssrc,
    /// Its sequence number.
    pub sequence: u16,
}

impl PaddedPacket {
    /// The packet in `datagram`, an RTP packet as it arrives, if its header sets the padding bit.
    pub fn in_datagram(datagram: &[u8]) -> Option<Self> {
        if datagram.first()? & PADDING_BIT == 0 {
            return None;
        }
        let sequence: [u8; 2] = datagram.get(2..4)?.try_into().ok()?;
        let ssrc: [u8; 4] = datagram.get(8..12)?.try_into().ok()?;
        Some(Self {
            ssrc: Ssrc(u32::from_be_bytes(ssrc)),
            sequence: u16::from_be_bytes(sequence),
        })
    }

    /// The packet `header` heads, as it comes out of the core, if it had padding.
    pub fn of(header: &rtp::header::Header) -> Option<Self> {
        header.padding.then_some(Self {
            ssrc: Ssrc(header.ssrc),
            sequence: header.sequence_number,
        })
    }
}

/// The padded packets handed to the core and not seen coming out yet; see the module
/// documentation.
#[derive(Debug, Default)]
pub struct PaddingWatch {
    /// Noted since the last [`settle`](Self::settle).
    waiting: HashSet<PaddedPacket>,
    /// The SSRCs the core hands packets on for, read at the first note of a pass.
    media_ssrcs: Option<Vec<Ssrc>>,
    /// The latest packets that came out or were found refused, oldest first.
    remembered: VecDeque<PaddedPacket>,
}

impl PaddingWatch {
    /// Notes `packet` on its way into the core, if it is on one of the SSRCs the core hands
    /// packets on for; `media_ssrcs` lists them, and is asked once a pass.
    pub fn note(&mut self, packet: PaddedPacket, media_ssrcs: impl FnOnce() -> Vec<Ssrc>) {
        if self
            .media_ssrcs
            .get_or_insert_with(media_ssrcs)
            .contains(&packet.ssrc)
        {
            self.waiting.insert(packet);
        }
    }

    /// Strikes off `packet`, which came out of the core.
    pub fn came_out(&mut self, packet: PaddedPacket) {
        if !self.waiting.is_empty() && self.waiting.remove(&packet) {
            remember(&mut self.remembered, packet);
        }
    }

    /// Whether nothing was noted since the last [`settle`](Self::settle).
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.media_ssrcs.is_none()
    }

    /// Ends the pass: the packets noted that never came out, each once, replays left out.
    pub fn settle(&mut self) -> Vec<PaddedPacket> {
        self.media_ssrcs = None;
        let refused: Vec<PaddedPacket> = self
            .waiting
            .drain()
            .filter(|packet| !self.remembered.contains(packet))
            .collect();
        for &packet in &refused {
            remember(&mut self.remembered, packet);
        }
        if self.waiting.capacity() > KEPT_CAPACITY {
            self.waiting = HashSet::new();
        }
        refused
    }
}

fn remember(remembered: &mut VecDeque<PaddedPacket>, packet: PaddedPacket) {
    if remembered.len() == REMEMBERED {
        remembered.pop_front();
    }
    remembered.push_back(packet);
}

impl Connection {
    /// Notes `datagram`, an SRTP packet whose clear header passed the checks, on its way into
    /// the core, if the core may refuse it for its padding (see the module documentation).
    pub(crate) fn watch_padding(&mut self, datagram: &[u8]) {
        let Some(packet) = PaddedPacket::in_datagram(datagram) else {
            return;
        };
        if !self.connected {
            return;
        }
        let pc = &mut self.pc;
        self.padding.note(packet, || receiving_ssrcs(pc));
    }

    /// Drops and counts the padded packets the core took in and did not hand on, once
    /// `poll_read` is drained.
    pub(crate) fn count_refused_padding(&mut self, now: Instant) {
        if self.padding.is_idle() {
            return;
        }
        for packet in self.padding.settle() {
            let stream = self.receiving_on(packet.ssrc);
            self.drop_malformed(Malformed::Padding, stream, now);
        }
    }
}

/// The SSRCs the core hands packets on for: those of its receiving transceivers' tracks.
fn receiving_ssrcs(pc: &mut RTCPeerConnection) -> Vec<Ssrc> {
    let transceivers = pc.get_transceivers().count();
    let mut ssrcs = Vec::new();
    for index in 0..transceivers {
        if let Some(receiver) = pc.rtp_receiver(RTCRtpReceiverId::from(index)) {
            ssrcs.extend(receiver.track().ssrcs().map(Ssrc));
        }
    }
    ssrcs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, sequence: u16) -> PaddedPacket {
        PaddedPacket {
            ssrc: Ssrc(ssrc),
            sequence,
        }
    }

    fn media() -> Vec<Ssrc> {
        vec![Ssrc(7), Ssrc(8)]
    }

    #[test]
    fn the_clear_header_says_whether_a_packet_is_padded() {
        let mut datagram = vec![
            0xa0, 96, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0xff,
        ];
        assert_eq!(
            PaddedPacket::in_datagram(&datagram),
            Some(packet(0xdead_beef, 0x1234))
        );
        datagram[0] = 0x80;
        assert_eq!(PaddedPacket::in_datagram(&datagram), None);
        // Too short to name its stream: nothing to watch (the header check refuses it first).
        assert_eq!(PaddedPacket::in_datagram(&[0xa0, 96, 0, 1, 0, 0]), None);
        assert_eq!(PaddedPacket::in_datagram(&[]), None);
    }

    #[test]
    fn a_header_coming_out_says_whether_its_packet_was_padded() {
        let mut header = rtp::header::Header {
            ssrc: 7,
            sequence_number: 9,
            ..Default::default()
        };
        assert_eq!(PaddedPacket::of(&header), None);
        header.padding = true;
        assert_eq!(PaddedPacket::of(&header), Some(packet(7, 9)));
    }

    #[test]
    fn a_packet_that_comes_out_was_accepted_and_one_that_does_not_was_refused() {
        let mut watch = PaddingWatch::default();
        watch.note(packet(7, 1), media);
        watch.note(packet(7, 2), media);
        watch.note(packet(8, 1), media);
        watch.came_out(packet(7, 1));
        watch.came_out(packet(8, 1));
        assert_eq!(watch.settle(), vec![packet(7, 2)]);
        assert!(watch.is_idle());
        // The next pass starts empty.
        watch.note(packet(7, 3), media);
        watch.came_out(packet(7, 3));
        assert_eq!(watch.settle(), vec![]);
    }

    #[test]
    fn only_the_streams_the_core_hands_on_are_watched() {
        let mut watch = PaddingWatch::default();
        // An RTX or unknown SSRC: the core drops such packets itself, so they never come out.
        watch.note(packet(99, 1), media);
        assert_eq!(watch.settle(), vec![]);
    }

    #[test]
    fn the_core_is_asked_for_its_streams_once_a_pass() {
        let mut watch = PaddingWatch::default();
        let mut asked = 0;
        for sequence in 0..10 {
            watch.note(packet(7, sequence), || {
                asked += 1;
                media()
            });
        }
        assert_eq!(asked, 1);
        assert!(!watch.is_idle());
        assert_eq!(watch.settle().len(), 10);
        // A pass whose padded packets were all on other streams still ends.
        watch.note(packet(99, 1), media);
        assert!(!watch.is_idle());
        assert_eq!(watch.settle(), vec![]);
        assert!(watch.is_idle());
        watch.note(packet(7, 20), || {
            asked += 1;
            media()
        });
        assert_eq!(asked, 2, "asked again in the next pass");
    }

    #[test]
    fn a_packet_coming_out_unnoted_changes_nothing() {
        let mut watch = PaddingWatch::default();
        watch.came_out(packet(7, 1));
        assert!(watch.is_idle());
        watch.note(packet(7, 2), media);
        watch.came_out(packet(7, 1));
        assert_eq!(watch.settle(), vec![packet(7, 2)]);
    }

    #[test]
    fn a_replay_of_a_packet_that_came_out_is_not_counted() {
        let mut watch = PaddingWatch::default();
        watch.note(packet(7, 1), media);
        watch.came_out(packet(7, 1));
        assert_eq!(watch.settle(), vec![]);
        // SRTP refuses the duplicate of a packet it decrypted.
        watch.note(packet(7, 1), media);
        assert_eq!(watch.settle(), vec![]);
        // A duplicate in the same pass as its original: one of them comes out.
        watch.note(packet(7, 2), media);
        watch.note(packet(7, 2), media);
        watch.came_out(packet(7, 2));
        assert_eq!(watch.settle(), vec![]);
    }

    #[test]
    fn a_refused_packet_is_counted_once_however_often_it_is_sent_again() {
        let mut watch = PaddingWatch::default();
        watch.note(packet(7, 5), media);
        watch.note(packet(7, 5), media);
        assert_eq!(watch.settle(), vec![packet(7, 5)]);
        // Its retransmissions, answering NACKs for the gap it left.
        for _ in 0..3 {
            watch.note(packet(7, 5), media);
            assert_eq!(watch.settle(), vec![]);
        }
    }

    #[test]
    fn the_memory_for_replays_is_bounded() {
        let mut watch = PaddingWatch::default();
        watch.note(packet(7, 0), media);
        watch.came_out(packet(7, 0));
        watch.settle();
        for sequence in 1..=REMEMBERED as u16 {
            watch.note(packet(7, sequence), media);
            watch.came_out(packet(7, sequence));
        }
        watch.settle();
        assert_eq!(watch.remembered.len(), REMEMBERED);
        // The first has been forgotten: a copy of it now counts.
        watch.note(packet(7, 0), media);
        assert_eq!(watch.settle(), vec![packet(7, 0)]);
        // The latest are still known.
        watch.note(packet(7, REMEMBERED as u16), media);
        assert_eq!(watch.settle(), vec![]);
    }

    #[test]
    fn a_flood_of_padded_packets_leaves_no_memory_behind() {
        let mut watch = PaddingWatch::default();
        for sequence in 0..10_000 {
            watch.note(packet(7, sequence), media);
        }
        assert_eq!(watch.settle().len(), 10_000);
        assert!(watch.waiting.capacity() <= KEPT_CAPACITY);
        assert_eq!(watch.remembered.len(), REMEMBERED);
    }

    /// The core logs a warning, target `rtc::peer_connection::handler`, for every packet it
    /// refuses; the default filter keeps it out of the log, or a publisher could flood it.
    #[test]
    fn the_default_log_filter_leaves_out_the_core_s_warning_per_refused_packet() {
        use tracing_subscriber::layer::SubscriberExt;
        let filter = tracing_subscriber::EnvFilter::new(crate::config::DEFAULT_LOG_FILTER);
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::enabled!(
                target: "rtc::peer_connection::handler",
                tracing::Level::WARN
            ));
            assert!(tracing::enabled!(
                target: "rtc::peer_connection::handler",
                tracing::Level::ERROR
            ));
            assert!(tracing::enabled!(target: "switchyard", tracing::Level::INFO));
        });
    }
}
