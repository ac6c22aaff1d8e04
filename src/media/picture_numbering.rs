//! VP8 picture numbering that stays continuous when a down-track changes layer.
//!
//! Each simulcast layer is its own VP8 stream with its own PictureID and TL0PICIDX sequences
//! (RFC 7741). A receiver's decoder uses them to find the frames a frame refers to; a subscriber
//! switched from one layer to another would see both jump, and could wait for frames it takes
//! for missing. So, as the sequence numbers and timestamps (`media::rewriter`), the fields are
//! mapped by a constant offset per layer, chosen at the switch so the new layer's first
//! picture follows the last one forwarded. Until the first switch the offsets are zero and the
//! payload is forwarded as it came, shared rather than copied.

use bytes::{Bytes, BytesMut};

use crate::media::vp8::Descriptor;

/// PictureIDs wrap at 15 bits.
const PICTURE_ID_SPACE: u16 = 0x8000;

/// One down-track's picture numbering; see the module documentation.
#[derive(Debug, Default)]
pub struct PictureNumbering {
    picture_offset: u16,
    tl0_offset: u8,
    /// The newest picture id and TL0PICIDX forwarded, as the subscriber saw them.
    last: Option<Forwarded>,
}

#[derive(Debug, Clone, Copy)]
struct Forwarded {
    picture_id: Option<u16>,
    tl0_pic_idx: Option<u8>,
}

impl PictureNumbering {
    /// A new layer starts with `payload`, its keyframe's first packet: its pictures follow the
    /// last one forwarded.
    pub fn restart(&mut self, payload: &[u8]) {
        let Ok(descriptor) = Descriptor::parse(payload) else {
            return;
        };
        let Some(last) = self.last else {
            return;
        };
        if let (Some(last_id), Some(id)) = (last.picture_id, descriptor.picture_id) {
            let next = last_id.wrapping_add(1) % PICTURE_ID_SPACE;
            self.picture_offset = next.wrapping_sub(id) % PICTURE_ID_SPACE;
        }
        if let (Some(last_tl0), Some(tl0)) = (last.tl0_pic_idx, descriptor.tl0_pic_idx) {
            self.tl0_offset = last_tl0.wrapping_add(1).wrapping_sub(tl0);
        }
    }

    /// The payload to forward for `payload`: the same bytes, or a copy with its picture id and
    /// TL0PICIDX moved by the offsets. Padding and payloads without a descriptor pass as they are.
    pub fn rewrite(&mut self, payload: &Bytes) -> Bytes {
        let Ok(descriptor) = Descriptor::parse(payload) else {
            return payload.clone();
        };
        let picture_id = descriptor
            .picture_id
            .map(|id| id.wrapping_add(self.picture_offset) % PICTURE_ID_SPACE);
        let tl0_pic_idx = descriptor
            .tl0_pic_idx
            .map(|tl0| tl0.wrapping_add(self.tl0_offset));
        self.note(picture_id, tl0_pic_idx);
        if self.picture_offset == 0 && self.tl0_offset == 0 {
            return payload.clone();
        }
        let mut rewritten = BytesMut::from(&payload[..]);
        descriptor.write_numbering(
            &mut rewritten,
            picture_id.unwrap_or_default(),
            tl0_pic_idx.unwrap_or_default(),
        );
        rewritten.freeze()
    }

    /// Remembers the newest numbers forwarded; a late packet does not move them back.
    fn note(&mut self, picture_id: Option<u16>, tl0_pic_idx: Option<u8>) {
        let last = self.last.get_or_insert(Forwarded {
            picture_id,
            tl0_pic_idx,
        });
        if let Some(id) = picture_id
            && last
                .picture_id
                .is_none_or(|last_id| is_newer_picture(id, last_id))
        {
            last.picture_id = Some(id);
        }
        if let Some(tl0) = tl0_pic_idx
            && last
                .tl0_pic_idx
                .is_none_or(|last_tl0| tl0.wrapping_sub(last_tl0) < 0x80)
        {
            last.tl0_pic_idx = Some(tl0);
        }
    }
}

/// Whether picture id `a` comes after (or is) `b` in the wrapping 15-bit space.
fn is_newer_picture(a: u16, b: u16) -> bool {
    a.wrapping_sub(b) % PICTURE_ID_SPACE < PICTURE_ID_SPACE / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A descriptor with a 15-bit picture id, TL0PICIDX and a temporal index, then one byte of
    /// VP8 data (a keyframe's when `key`).
    fn packet(picture_id: u16, tl0: u8, key: bool) -> Bytes {
        let [high, low] = (picture_id | 0x8000).to_be_bytes();
        Bytes::from(vec![
            0x90,
            0xe0,
            high,
            low,
            tl0,
            0x40,
            if key { 0x00 } else { 0x01 },
        ])
    }

    fn numbers(payload: &Bytes) -> (u16, u8) {
        let descriptor = Descriptor::parse(payload).expect("a descriptor");
        (
            descriptor.picture_id.expect("a picture id"),
            descriptor.tl0_pic_idx.expect("a TL0PICIDX"),
        )
    }

    #[test]
    fn the_first_layer_passes_unchanged_and_shared() {
        let mut numbering = PictureNumbering::default();
        let first = packet(100, 7, true);
        numbering.restart(&first);
        let out = numbering.rewrite(&first);
        assert_eq!(out, first);
        assert_eq!(out.as_ptr(), first.as_ptr(), "not copied");
    }

    #[test]
    fn a_new_layer_continues_where_the_old_one_stopped() {
        let mut numbering = PictureNumbering::default();
        for id in 100..=103 {
            numbering.rewrite(&packet(id, 7, id == 100));
        }
        // The next layer's keyframe has numbers of its own.
        let key = packet(32_760, 250, true);
        numbering.restart(&key);
        assert_eq!(numbers(&numbering.rewrite(&key)), (104, 8));
        assert_eq!(
            numbers(&numbering.rewrite(&packet(32_767, 251, false))),
            (111, 9)
        );
        // The layer's own picture id wraps at 15 bits, and TL0PICIDX at 8.
        assert_eq!(
            numbers(&numbering.rewrite(&packet(0, 255, false))),
            (112, 13)
        );
        assert_eq!(numbers(&numbering.rewrite(&packet(1, 0, false))), (113, 14));
    }

    #[test]
    fn a_late_packet_does_not_move_the_continuation_back() {
        let mut numbering = PictureNumbering::default();
        numbering.rewrite(&packet(50, 1, true));
        numbering.rewrite(&packet(52, 1, false));
        numbering.rewrite(&packet(51, 1, false));
        let key = packet(9, 60, true);
        numbering.restart(&key);
        assert_eq!(numbers(&numbering.rewrite(&key)), (53, 2));
    }

    #[test]
    fn payloads_without_numbers_pass() {
        let mut numbering = PictureNumbering::default();
        numbering.rewrite(&packet(10, 1, true));
        numbering.restart(&packet(500, 40, true));
        let plain = Bytes::from_static(&[0x10, 0x00, 0x9d]);
        assert_eq!(numbering.rewrite(&plain), plain);
        let padding = Bytes::new();
        assert_eq!(numbering.rewrite(&padding), padding);
    }

    #[test]
    fn wrapping_order() {
        assert!(is_newer_picture(0, 0x7fff));
        assert!(!is_newer_picture(0x7fff, 0));
        assert!(is_newer_picture(5, 5));
    }
}
