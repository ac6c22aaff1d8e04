//! Publisher packets the router refuses to forward.
//!
//! A publisher's RTP is read twice: its header in the clear, before the connection's core
//! decrypts it ([`check_rtp_header`]), and its payload after ([`check_payload`]). Whatever fails
//! either check is dropped and counted (`switchyard_rtp_packets_malformed_total`, by reason), and
//! so is a packet the core itself refuses after decrypting it, for its padding (`rtc::padding`).
//!
//! What each case does, and why:
//! - **A header that does not fit its packet** (CSRCs or header extensions running past the
//!   end): the core would refuse it too, but silently; checked first, it is counted.
//! - **A header extension element that runs past its extension block, or uses the reserved
//!   id 15** (RFC 8285): the core's parser accepts these and then takes the rest of the block,
//!   or the start of the payload, for the other; the payload it hands on would be shifted.
//! - **Padding longer than the packet** (RFC 3550): encrypted, so it cannot be checked before
//!   the core, and the core's parser refuses it after decrypting: it never reaches the router.
//!   The core gives no sign of it but a log line, so the connection notes each packet whose
//!   clear header sets the padding bit and counts the ones that never come out of the core
//!   (`rtc::padding`, which also says what else the core refuses and how it is told apart).
//! - **An empty payload** (with or without the padding bit): padding, such as a sender's
//!   bandwidth probe. Forwarded: receivers count it as padding, so the numbering stays whole.
//! - **A VP8 payload whose descriptor is cut short or carries no data**: a receiver cannot read
//!   it and drops it.
//!
//! Dropping a packet leaves a gap in the subscribers' numbering, and the server does not close
//! it: renumbering around a missing piece of a frame would hand the subscriber's depacketizer an
//! incomplete frame that looks whole. The gap stays visible, so the subscriber knows the frame
//! is lost; its NACK finds nothing to retransmit, and so, for video, the connection asks the
//! publisher for a keyframe at once (through the keyframe throttle) instead of leaving each
//! subscriber to find out by itself. Audio needs no such help: a receiver conceals the gap.

use crate::media::vp8::{Descriptor, DescriptorError};
use crate::signal::protocol::TrackKind;

/// The fixed part of an RTP header.
const FIXED_HEADER: usize = 12;
/// RFC 8285's one-byte header extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285's two-byte header extension profile (with its four application bits zero, which is
/// the only form the core reads element by element).
const TWO_BYTE_PROFILE: u16 = 0x1000;
/// The one-byte extension id that ends the block (RFC 8285, section 4.2).
const RESERVED_ID: u8 = 15;

/// What is wrong with a publisher's packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// The RTP header does not fit its packet, or its header extensions do not parse.
    #[error("RTP header: {0}")]
    Header(#[from] HeaderFault),
    /// A video payload no VP8 receiver can read.
    #[error("{0}")]
    Vp8(#[from] DescriptorError),
    /// Padding longer than the packet: the core refused the packet once it had decrypted it.
    #[error("RTP padding longer than the packet")]
    Padding,
}

/// Why an RTP header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderFault {
    /// Shorter than the fixed header.
    #[error("shorter than 12 bytes")]
    TooShort,
    /// The CSRC count runs past the end of the packet.
    #[error("the CSRC list runs past the end of the packet")]
    CsrcBeyondPacket,
    /// The header extension block runs past the end of the packet.
    #[error("the header extension block runs past the end of the packet")]
    ExtensionBeyondPacket,
    /// An extension element runs past the end of its block.
    #[error("a header extension element runs past the end of its block")]
    ElementBeyondBlock,
    /// A one-byte extension element uses the reserved id 15.
    #[error("a header extension element uses the reserved id 15")]
    ReservedId,
}

/// What a well-formed payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Media.
    Media,
    /// Nothing: padding.
    Padding,
}

/// Checks the header of an RTP packet as it arrives, before its connection's core decrypts
/// it: SRTP leaves the header, its CSRCs and its extensions in the clear.
pub fn check_rtp_header(packet: &[u8]) -> Result<(), HeaderFault> {
    let first = *packet.first().ok_or(HeaderFault::TooShort)?;
    if packet.len() < FIXED_HEADER {
        return Err(HeaderFault::TooShort);
    }
    let csrc_end = FIXED_HEADER + 4 * usize::from(first & 0x0f);
    if packet.len() < csrc_end {
        return Err(HeaderFault::CsrcBeyondPacket);
    }
    if first & 0x10 == 0 {
        return Ok(());
    }
    let extension = packet
        .get(csrc_end..csrc_end + 4)
        .ok_or(HeaderFault::ExtensionBeyondPacket)?;
    let profile = u16::from_be_bytes([extension[0], extension[1]]);
    let words = usize::from(u16::from_be_bytes([extension[2], extension[3]]));
    let start = csrc_end + 4;
    let block = packet
        .get(start..start + 4 * words)
        .ok_or(HeaderFault::ExtensionBeyondPacket)?;
    match profile {
        ONE_BYTE_PROFILE => check_one_byte_elements(block),
        TWO_BYTE_PROFILE => check_two_byte_elements(block),
        // Any other profile is one opaque block, which the core takes whole.
        _ => Ok(()),
    }
}

fn check_one_byte_elements(block: &[u8]) -> Result<(), HeaderFault> {
    let mut offset = 0;
    while let Some(&byte) = block.get(offset) {
        offset += 1;
        if byte == 0 {
            continue;
        }
        if byte >> 4 == RESERVED_ID {
            return Err(HeaderFault::ReservedId);
        }
        offset += usize::from(byte & 0x0f) + 1;
        if offset > block.len() {
            return Err(HeaderFault::ElementBeyondBlock);
        }
    }
    Ok(())
}

fn check_two_byte_elements(block: &[u8]) -> Result<(), HeaderFault> {
    let mut offset = 0;
    while let Some(&id) = block.get(offset) {
        offset += 1;
        if id == 0 {
            continue;
        }
        let length = *block.get(offset).ok_or(HeaderFault::ElementBeyondBlock)?;
        offset += 1 + usize::from(length);
        if offset > block.len() {
            return Err(HeaderFault::ElementBeyondBlock);
        }
    }
    Ok(())
}

/// Checks a publisher's payload of `kind`, once the core has decrypted it and taken its
/// padding off.
pub fn check_payload(kind: TrackKind, payload: &[u8]) -> Result<Payload, Malformed> {
    if payload.is_empty() {
        return Ok(Payload::Padding);
    }
    match kind {
        TrackKind::Video => {
            Descriptor::parse(payload)?;
        }
        // Any Opus packet of one byte or more has a table-of-contents byte a decoder reads.
        TrackKind::Audio => {}
    }
    Ok(Payload::Media)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(first: u8, rest: &[u8]) -> Vec<u8> {
        let mut packet = vec![first, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        packet.extend_from_slice(rest);
        packet
    }

    #[test]
    fn plain_headers_pass() {
        assert_eq!(check_rtp_header(&header(0x80, b"payload")), Ok(()));
        // Two CSRCs, then the payload.
        assert_eq!(check_rtp_header(&header(0x82, &[0; 8])), Ok(()));
    }

    #[test]
    fn headers_that_do_not_fit_are_refused() {
        assert_eq!(check_rtp_header(&[]), Err(HeaderFault::TooShort));
        assert_eq!(
            check_rtp_header(&header(0x80, &[])[..11]),
            Err(HeaderFault::TooShort)
        );
        assert_eq!(
            check_rtp_header(&header(0x8f, &[0; 56])),
            Err(HeaderFault::CsrcBeyondPacket)
        );
        assert_eq!(
            check_rtp_header(&header(0x90, &[0xbe, 0xde])),
            Err(HeaderFault::ExtensionBeyondPacket)
        );
        // Two words announced, one present.
        assert_eq!(
            check_rtp_header(&header(0x90, &[0xbe, 0xde, 0, 2, 0x10, 1, 0, 0])),
            Err(HeaderFault::ExtensionBeyondPacket)
        );
    }

    #[test]
    fn one_byte_extensions_are_walked_element_by_element() {
        // id 1 with 2 bytes, a padding byte: one word.
        let good = header(0x90, &[0xbe, 0xde, 0, 1, 0x11, 7, 8, 0, 0x10, 0x00]);
        assert_eq!(check_rtp_header(&good), Ok(()));
        // id 1 claims 4 bytes in a one-word block: its data would be taken from the payload.
        let overrun = header(0x90, &[0xbe, 0xde, 0, 1, 0x13, 7, 8, 9, 0x10, 0x00]);
        assert_eq!(
            check_rtp_header(&overrun),
            Err(HeaderFault::ElementBeyondBlock)
        );
        let reserved = header(0x90, &[0xbe, 0xde, 0, 1, 0xf0, 0, 0, 0, 0x10]);
        assert_eq!(check_rtp_header(&reserved), Err(HeaderFault::ReservedId));
    }

    #[test]
    fn two_byte_extensions_are_walked_element_by_element() {
        let good = header(0x90, &[0x10, 0x00, 0, 1, 5, 2, 7, 8, 0x10]);
        assert_eq!(check_rtp_header(&good), Ok(()));
        let overrun = header(0x90, &[0x10, 0x00, 0, 1, 5, 3, 7, 8, 0x10]);
        assert_eq!(
            check_rtp_header(&overrun),
            Err(HeaderFault::ElementBeyondBlock)
        );
        // An id as the block's last byte has no length.
        let cut = header(0x90, &[0x10, 0x00, 0, 1, 0, 0, 0, 5, 0x10]);
        assert_eq!(check_rtp_header(&cut), Err(HeaderFault::ElementBeyondBlock));
        // Another profile is opaque.
        let opaque = header(0x90, &[0x12, 0x34, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(check_rtp_header(&opaque), Ok(()));
    }

    #[test]
    fn payloads() {
        assert_eq!(check_payload(TrackKind::Video, &[]), Ok(Payload::Padding));
        assert_eq!(check_payload(TrackKind::Audio, &[]), Ok(Payload::Padding));
        assert_eq!(
            check_payload(TrackKind::Video, &[0x10, 0x00, 0x9d]),
            Ok(Payload::Media)
        );
        assert_eq!(
            check_payload(TrackKind::Video, &[0x90, 0x80]),
            Err(Malformed::Vp8(DescriptorError::Truncated))
        );
        assert_eq!(
            check_payload(TrackKind::Video, &[0x10]),
            Err(Malformed::Vp8(DescriptorError::NoData))
        );
        assert_eq!(check_payload(TrackKind::Audio, &[0x78]), Ok(Payload::Media));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use rtc::rtp;
        use rtc::shared::marshal::Unmarshal;

        /// Where the payload starts, read from the header's own length fields.
        fn header_end(packet: &[u8]) -> usize {
            let csrc_end = FIXED_HEADER + 4 * usize::from(packet[0] & 0x0f);
            if packet[0] & 0x10 == 0 {
                return csrc_end;
            }
            let words = u16::from_be_bytes([packet[csrc_end + 2], packet[csrc_end + 3]]);
            csrc_end + 4 + 4 * usize::from(words)
        }

        /// RTP headers, mostly with extensions, whose fields are often almost right.
        fn rtp_packet() -> impl Strategy<Value = Vec<u8>> {
            (
                0..16u8,
                any::<bool>(),
                prop::sample::select(vec![0xbede_u16, 0x1000, 0x1001, 0x0000]),
                0..6u16,
                prop::collection::vec(
                    prop::sample::select(vec![0x00_u8, 0x10, 0x11, 0x13, 0x1f, 0xf0, 0x05, 0x02]),
                    0..24,
                ),
                prop::collection::vec(any::<u8>(), 0..64),
            )
                .prop_map(|(csrcs, extension, profile, words, block, tail)| {
                    let mut packet = vec![0x80 | u8::from(extension) << 4 | csrcs, 96];
                    packet.extend_from_slice(&[0; 10]);
                    packet.extend(std::iter::repeat_n(7, 4 * usize::from(csrcs)));
                    if extension {
                        packet.extend_from_slice(&profile.to_be_bytes());
                        packet.extend_from_slice(&words.to_be_bytes());
                        packet.extend(block);
                    }
                    packet.extend(tail);
                    packet
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn any_bytes_are_checked_without_panicking(
                bytes in prop::collection::vec(any::<u8>(), 0..80),
                kind in prop::sample::select(vec![TrackKind::Audio, TrackKind::Video]),
            ) {
                let _ = check_rtp_header(&bytes);
                match check_payload(kind, &bytes) {
                    Ok(Payload::Padding) => prop_assert!(bytes.is_empty()),
                    Ok(Payload::Media) => prop_assert!(
                        kind == TrackKind::Audio || Descriptor::parse(&bytes).is_ok()
                    ),
                    Err(_) => prop_assert_eq!(kind, TrackKind::Video),
                }
            }

            /// What the check lets through, the core reads as it was written: the payload it
            /// hands on starts where the header says the header ends.
            #[test]
            fn a_header_that_passes_is_read_by_the_core_as_written(packet in rtp_packet()) {
                if check_rtp_header(&packet).is_ok() {
                    let mut reader = &packet[..];
                    let parsed = rtp::header::Header::unmarshal(&mut reader);
                    prop_assert!(parsed.is_ok(), "{:?}", parsed);
                    prop_assert_eq!(packet.len() - reader.len(), header_end(&packet));
                }
            }

            /// The core's own parsers take anything without panicking: a panic there would end
            /// a media worker.
            #[test]
            fn the_core_parses_any_rtp_without_panicking(
                packet in prop_oneof![rtp_packet(), prop::collection::vec(any::<u8>(), 0..80)],
            ) {
                let _ = rtp::Packet::unmarshal(&mut &packet[..]);
            }
        }
    }
}
