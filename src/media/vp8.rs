//! Just enough of the VP8 RTP payload format (RFC 7741) to find keyframes, read the size they
//! declare, renumber pictures, and refuse payloads no receiver can read.
//!
//! The router forwards payloads as they came but for the picture numbering after a layer
//! switch (`media::picture_numbering`). It needs to know where a keyframe starts, so a
//! subscriber that joins mid-stream, or changes layer, can begin at one instead of decoding
//! garbage; a layer's resolution, to choose layers by tile size; and whether the payload
//! descriptor is whole: a receiver drops a packet whose descriptor it cannot read, so
//! forwarding one only costs the subscriber's bandwidth and a retransmission of the same.

/// A VP8 payload descriptor (RFC 7741, section 4.2), as far as the router reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// `S`: the packet starts a partition.
    pub start_of_partition: bool,
    /// `PID`: the partition the packet carries a piece of.
    pub partition_index: u8,
    /// `I`: the picture id, 7 or 15 bits.
    pub picture_id: Option<u16>,
    /// `M`: whether the picture id takes 15 bits (two bytes) rather than 7.
    pub long_picture_id: bool,
    /// `L`: the temporal level 0 picture index.
    pub tl0_pic_idx: Option<u8>,
    /// The descriptor's length in bytes: the VP8 data starts here.
    pub len: usize,
}

/// Why a payload is not a readable VP8 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// The descriptor announces more fields than the payload holds.
    #[error("the VP8 payload descriptor is cut short")]
    Truncated,
    /// The descriptor is whole but nothing follows it.
    #[error("the VP8 payload descriptor is followed by no VP8 data")]
    NoData,
}

const EXTENDED: u8 = 0x80;
const START_OF_PARTITION: u8 = 0x10;
const PARTITION_INDEX: u8 = 0x07;
const HAS_PICTURE_ID: u8 = 0x80;
const HAS_TL0_PIC_IDX: u8 = 0x40;
const HAS_TID: u8 = 0x20;
const HAS_KEY_IDX: u8 = 0x10;
const LONG_PICTURE_ID: u8 = 0x80;

impl Descriptor {
    /// Reads the descriptor at the start of a non-empty `payload`. An empty payload has no
    /// descriptor at all: it is padding, which the caller tells apart first.
    pub fn parse(payload: &[u8]) -> Result<Descriptor, DescriptorError> {
        let mut reader = Reader { payload, offset: 0 };
        let first = reader.byte()?;
        let mut descriptor = Descriptor {
            start_of_partition: first & START_OF_PARTITION != 0,
            partition_index: first & PARTITION_INDEX,
            picture_id: None,
            long_picture_id: false,
            tl0_pic_idx: None,
            len: 0,
        };
        if first & EXTENDED != 0 {
            let control = reader.byte()?;
            if control & HAS_PICTURE_ID != 0 {
                let high = reader.byte()?;
                descriptor.long_picture_id = high & LONG_PICTURE_ID != 0;
                descriptor.picture_id = Some(if descriptor.long_picture_id {
                    u16::from_be_bytes([high & !LONG_PICTURE_ID, reader.byte()?])
                } else {
                    u16::from(high)
                });
            }
            if control & HAS_TL0_PIC_IDX != 0 {
                descriptor.tl0_pic_idx = Some(reader.byte()?);
            }
            if control & (HAS_TID | HAS_KEY_IDX) != 0 {
                reader.byte()?;
            }
        }
        descriptor.len = reader.offset;
        if descriptor.len >= payload.len() {
            return Err(DescriptorError::NoData);
        }
        Ok(descriptor)
    }
}

impl Descriptor {
    /// Writes `picture_id` and `tl0_pic_idx` into `payload`, whose descriptor this is, in the
    /// fields it already has (a 7-bit picture id keeps its low 7 bits). Fields the descriptor
    /// does not carry are left out: a descriptor never changes length.
    pub fn write_numbering(&self, payload: &mut [u8], picture_id: u16, tl0_pic_idx: u8) {
        let mut offset = 2;
        if self.picture_id.is_some() {
            if self.long_picture_id {
                let [high, low] = (picture_id & 0x7fff).to_be_bytes();
                if let Some(bytes) = payload.get_mut(offset..offset + 2) {
                    bytes[0] = high | LONG_PICTURE_ID;
                    bytes[1] = low;
                }
                offset += 2;
            } else {
                if let Some(byte) = payload.get_mut(offset) {
                    *byte = (picture_id & 0x7f) as u8;
                }
                offset += 1;
            }
        }
        if self.tl0_pic_idx.is_some()
            && let Some(byte) = payload.get_mut(offset)
        {
            *byte = tl0_pic_idx;
        }
    }
}

/// The width and height a VP8 keyframe's first packet declares (RFC 6386, section 9.1), or
/// `None` for any other packet.
pub fn keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    if !is_keyframe_start(payload) {
        return None;
    }
    let descriptor = Descriptor::parse(payload).ok()?;
    // A 3-byte frame tag, the start code, then 14-bit width and height with 2-bit scales.
    let header = payload.get(descriptor.len..descriptor.len + 10)?;
    if header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([header[6], header[7]]) & 0x3fff;
    let height = u16::from_le_bytes([header[8], header[9]]) & 0x3fff;
    (width > 0 && height > 0).then_some((width, height))
}

struct Reader<'a> {
    payload: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, DescriptorError> {
        let byte = *self
            .payload
            .get(self.offset)
            .ok_or(DescriptorError::Truncated)?;
        self.offset += 1;
        Ok(byte)
    }
}

/// Whether `payload` is the first packet of a VP8 keyframe.
///
/// The first packet of a frame has `S = 1` and partition index 0, and the VP8 payload header
/// behind the descriptor has its inverse keyframe bit (`P`) clear. Malformed or truncated
/// payloads are simply "not a keyframe start".
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    Descriptor::parse(payload).is_ok_and(|descriptor| {
        descriptor.start_of_partition
            && descriptor.partition_index == 0
            && payload
                .get(descriptor.len)
                .is_some_and(|&header| header & 0x01 == 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_descriptor() {
        assert!(is_keyframe_start(&[0x10, 0x00, 0x9d, 0x01, 0x2a]));
        // Interframe: P bit set.
        assert!(!is_keyframe_start(&[0x10, 0x01]));
        // Not the start of the partition.
        assert!(!is_keyframe_start(&[0x00, 0x00]));
        // Start of a later partition.
        assert!(!is_keyframe_start(&[0x11, 0x00]));
    }

    #[test]
    fn extended_descriptor_as_browsers_send_it() {
        // X, S; I with a 15-bit picture id; L; T.
        let payload = [0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x50];
        assert!(is_keyframe_start(&payload));
        assert_eq!(
            Descriptor::parse(&payload),
            Ok(Descriptor {
                start_of_partition: true,
                partition_index: 0,
                picture_id: Some(0x0123),
                long_picture_id: true,
                tl0_pic_idx: Some(0x05),
                len: 6,
            })
        );
        assert!(!is_keyframe_start(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x51
        ]));
        // X, S; I with a 7-bit picture id only.
        assert!(is_keyframe_start(&[0x90, 0x80, 0x12, 0x00]));
        assert_eq!(
            Descriptor::parse(&[0x90, 0x80, 0x12, 0x00]).map(|d| d.picture_id),
            Ok(Some(0x12))
        );
    }

    #[test]
    fn truncated_payloads_are_refused_and_not_keyframes() {
        for payload in [
            &[0x90][..],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x81],
            &[0x90, 0x40],
            &[0x90, 0x30],
        ] {
            assert_eq!(
                Descriptor::parse(payload),
                Err(DescriptorError::Truncated),
                "{payload:?}"
            );
            assert!(!is_keyframe_start(payload));
        }
        for payload in [
            &[0x10][..],
            &[0x90, 0x80, 0x12],
            &[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40],
        ] {
            assert_eq!(
                Descriptor::parse(payload),
                Err(DescriptorError::NoData),
                "{payload:?}"
            );
            assert!(!is_keyframe_start(payload));
        }
        assert!(!is_keyframe_start(&[]));
    }

    #[test]
    fn a_keyframe_declares_its_size() {
        // X, S; I (15 bits); then a keyframe tag, the start code, 1280 x 720.
        let payload = [
            0x90, 0x80, 0x81, 0x23, 0x50, 0x9a, 0x01, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02,
            0x00,
        ];
        assert_eq!(keyframe_size(&payload), Some((1280, 720)));
        let mut delta = payload;
        delta[4] |= 0x01;
        assert_eq!(keyframe_size(&delta), None, "not a keyframe");
        assert_eq!(keyframe_size(&payload[..12]), None, "cut short");
        let mut no_start_code = payload;
        no_start_code[8] = 0;
        assert_eq!(keyframe_size(&no_start_code), None);
    }

    #[test]
    fn numbering_is_written_in_place() {
        let mut long = [0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x50];
        let descriptor = Descriptor::parse(&long).expect("a descriptor");
        descriptor.write_numbering(&mut long, 0x7ffe, 0xab);
        let written = Descriptor::parse(&long).expect("still a descriptor");
        assert_eq!(written.picture_id, Some(0x7ffe));
        assert_eq!(written.tl0_pic_idx, Some(0xab));
        assert_eq!(written.len, descriptor.len);
        assert_eq!(long[5..], [0x40, 0x50], "the temporal index and data stay");

        let mut short = [0x90, 0x80, 0x12, 0x00];
        let descriptor = Descriptor::parse(&short).expect("a descriptor");
        descriptor.write_numbering(&mut short, 0x1ff, 9);
        assert_eq!(
            short,
            [0x90, 0x80, 0x7f, 0x00],
            "7 bits kept, no TL0PICIDX to write"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The fields of a descriptor, as a sender chooses them.
        #[derive(Debug, Clone)]
        struct Fields {
            start: bool,
            partition: u8,
            picture_id: Option<u16>,
            long_picture_id: bool,
            tl0: Option<u8>,
            tid_or_key_idx: Option<u8>,
        }

        fn fields() -> impl Strategy<Value = Fields> {
            (
                any::<bool>(),
                0..8u8,
                prop::option::of(any::<u16>()),
                any::<bool>(),
                prop::option::of(any::<u8>()),
                prop::option::of(any::<u8>()),
            )
                .prop_map(
                    |(start, partition, picture_id, long_picture_id, tl0, tid_or_key_idx)| Fields {
                        start,
                        partition,
                        picture_id: picture_id.map(|id| {
                            if long_picture_id {
                                id & 0x7fff
                            } else {
                                id & 0x7f
                            }
                        }),
                        long_picture_id,
                        tl0,
                        tid_or_key_idx,
                    },
                )
        }

        /// The bytes RFC 7741 gives `fields`.
        fn encode(fields: &Fields) -> Vec<u8> {
            let extended = fields.picture_id.is_some()
                || fields.tl0.is_some()
                || fields.tid_or_key_idx.is_some();
            let mut bytes =
                vec![u8::from(extended) << 7 | u8::from(fields.start) << 4 | fields.partition];
            if extended {
                bytes.push(
                    u8::from(fields.picture_id.is_some()) << 7
                        | u8::from(fields.tl0.is_some()) << 6
                        | u8::from(fields.tid_or_key_idx.is_some()) << 5,
                );
                match fields.picture_id {
                    Some(id) if fields.long_picture_id => {
                        bytes.extend_from_slice(&(id | 0x8000).to_be_bytes());
                    }
                    Some(id) => bytes.push(id as u8),
                    None => {}
                }
                bytes.extend(fields.tl0);
                bytes.extend(fields.tid_or_key_idx);
            }
            bytes
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn any_bytes_parse_without_panicking_and_stay_in_bounds(
                payload in prop::collection::vec(any::<u8>(), 0..40),
            ) {
                match Descriptor::parse(&payload) {
                    Ok(descriptor) => {
                        prop_assert!(descriptor.len >= 1);
                        prop_assert!(descriptor.len < payload.len());
                    }
                    Err(_) => prop_assert!(!is_keyframe_start(&payload)),
                }
                if is_keyframe_start(&payload) {
                    let descriptor = Descriptor::parse(&payload);
                    prop_assert!(descriptor.is_ok_and(|d| d.start_of_partition && d.partition_index == 0));
                }
            }

            #[test]
            fn a_descriptor_reads_back_as_written(
                fields in fields(),
                data in prop::collection::vec(any::<u8>(), 1..20),
            ) {
                let descriptor = encode(&fields);
                let mut payload = descriptor.clone();
                payload.extend_from_slice(&data);
                let parsed = Descriptor::parse(&payload).expect("a whole descriptor with data");
                prop_assert_eq!(parsed, Descriptor {
                    start_of_partition: fields.start,
                    partition_index: fields.partition,
                    picture_id: fields.picture_id,
                    long_picture_id: fields.picture_id.is_some() && fields.long_picture_id,
                    tl0_pic_idx: fields.tl0,
                    len: descriptor.len(),
                });
                prop_assert_eq!(
                    is_keyframe_start(&payload),
                    fields.start && fields.partition == 0 && data[0] & 0x01 == 0
                );
                // Cut anywhere before its data, it is refused.
                for cut in 0..=descriptor.len() {
                    let expected = if cut == descriptor.len() {
                        DescriptorError::NoData
                    } else {
                        DescriptorError::Truncated
                    };
                    prop_assert_eq!(Descriptor::parse(&payload[..cut]), Err(expected));
                }
            }
        }
    }
}
