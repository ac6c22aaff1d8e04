//! Just enough of the VP8 RTP payload format (RFC 7741) to find keyframes.
//!
//! The router forwards payloads untouched; it only needs to know where a keyframe starts, so a
//! subscriber that joins mid-stream can begin at one instead of decoding garbage.

/// Whether `payload` is the first packet of a VP8 keyframe.
///
/// A VP8 payload starts with the payload descriptor; the first packet of a frame has `S = 1` and
/// partition index 0, and the VP8 payload header behind the descriptor has its inverse keyframe
/// bit (`P`) clear. Malformed or truncated payloads are simply "not a keyframe start".
pub fn is_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let extended = first & 0x80 != 0;
    let start_of_partition = first & 0x10 != 0;
    let partition_index = first & 0x07;
    if !start_of_partition || partition_index != 0 {
        return false;
    }
    let mut offset = 1;
    if extended {
        let Some(&control) = payload.get(offset) else {
            return false;
        };
        offset += 1;
        let has_picture_id = control & 0x80 != 0;
        let has_tl0_pic_idx = control & 0x40 != 0;
        let has_tid_or_key_idx = control & 0x30 != 0;
        if has_picture_id {
            let Some(&picture_id) = payload.get(offset) else {
                return false;
            };
            // The M bit selects a 15-bit picture id.
            offset += if picture_id & 0x80 != 0 { 2 } else { 1 };
        }
        if has_tl0_pic_idx {
            offset += 1;
        }
        if has_tid_or_key_idx {
            offset += 1;
        }
    }
    payload
        .get(offset)
        .is_some_and(|&header| header & 0x01 == 0)
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
        assert!(is_keyframe_start(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x50
        ]));
        assert!(!is_keyframe_start(&[
            0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x51
        ]));
        // X, S; I with a 7-bit picture id only.
        assert!(is_keyframe_start(&[0x90, 0x80, 0x12, 0x00]));
    }

    #[test]
    fn truncated_payloads_are_not_keyframes() {
        assert!(!is_keyframe_start(&[]));
        assert!(!is_keyframe_start(&[0x10]));
        assert!(!is_keyframe_start(&[0x90]));
        assert!(!is_keyframe_start(&[0x90, 0x80]));
        assert!(!is_keyframe_start(&[0x90, 0xe0, 0x81, 0x23, 0x05, 0x40]));
    }
}
