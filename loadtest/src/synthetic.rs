//! Synthetic media: RTP payloads a receiver can check byte for byte and time to the microsecond.
//!
//! Every payload ends with a 32-byte probe: a magic number, the tag of the track it belongs to,
//! the simulcast layer it was sent on and the packet's index on that layer, the send time in
//! microseconds since the Unix epoch, and an FNV-1a hash of the whole payload (hash field
//! zeroed). A receiver that recomputes the hash knows the bytes
//! arrived exactly as sent, knows which track they came from, and can measure the latency on
//! the shared clock of one machine.
//!
//! Video payloads start with a real VP8 payload descriptor and, on the first packet of a frame,
//! a VP8 frame tag; a keyframe's also carries the start code and the frame's size, so a router
//! that looks for keyframes, or reads a layer's resolution from them, finds them where a
//! browser's would be.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

/// Marks a probe.
const MAGIC: u32 = 0x5357_5944;
/// The probe's size at the end of every payload.
pub const PROBE_LEN: usize = 32;
/// The largest payload a packet carries.
pub const MAX_PAYLOAD: usize = 1200;
/// The largest packet index a probe carries: the index shares its 8 bytes with the layer.
pub const MAX_INDEX: u64 = (1 << 56) - 1;

/// What a receiver reads back from a payload's probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The track's tag.
    pub tag: u32,
    /// The simulcast layer the packet was sent on: the ASCII letter of its RID (`b'q'`), or 0
    /// for a track sent as one stream.
    pub layer: u8,
    /// The packet's index on its track's layer, at most [`MAX_INDEX`].
    pub index: u64,
    /// When it was sent, in microseconds since the Unix epoch.
    pub sent_at_micros: u64,
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// The tag of a track, derived from its publisher and track ids so a receiver can check that a
/// packet arrived on the track it was announced for.
pub fn track_tag(participant: &str, track: &str) -> u32 {
    let hash = fnv1a(participant.as_bytes()) ^ fnv1a(track.as_bytes()).rotate_left(17);
    (hash ^ (hash >> 32)) as u32
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Checks a payload's probe: `None` if it is missing or the bytes do not hash to it.
pub fn read_probe(payload: &[u8]) -> Option<Probe> {
    let start = payload.len().checked_sub(PROBE_LEN)?;
    let probe = &payload[start..];
    let field = |range: std::ops::Range<usize>| &probe[range];
    if u32::from_be_bytes(field(0..4).try_into().ok()?) != MAGIC {
        return None;
    }
    let expected = u64::from_be_bytes(field(24..32).try_into().ok()?);
    let mut hashed = payload.to_vec();
    hashed[start + 24..].fill(0);
    if fnv1a(&hashed) != expected {
        return None;
    }
    let layer_and_index = u64::from_be_bytes(field(8..16).try_into().ok()?);
    Some(Probe {
        tag: u32::from_be_bytes(field(4..8).try_into().ok()?),
        layer: (layer_and_index >> 56) as u8,
        index: layer_and_index & MAX_INDEX,
        sent_at_micros: u64::from_be_bytes(field(16..24).try_into().ok()?),
    })
}

/// Builds a payload of `len` bytes: `head`, a filler pattern, then the probe.
pub fn payload(head: &[u8], len: usize, probe: Probe) -> Bytes {
    let len = len.max(head.len() + PROBE_LEN);
    let mut buffer = BytesMut::with_capacity(len);
    buffer.put_slice(head);
    let filler = len - head.len() - PROBE_LEN;
    for offset in 0..filler {
        buffer.put_u8((probe.index as usize).wrapping_add(offset).wrapping_mul(31) as u8);
    }
    buffer.put_u32(MAGIC);
    buffer.put_u32(probe.tag);
    buffer.put_u64((u64::from(probe.layer) << 56) | (probe.index & MAX_INDEX));
    buffer.put_u64(probe.sent_at_micros);
    buffer.put_u64(0);
    let hash = fnv1a(&buffer);
    let end = buffer.len();
    buffer[end - 8..].copy_from_slice(&hash.to_be_bytes());
    buffer.freeze()
}

/// The shape of a synthetic video stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoShape {
    /// Target bitrate, bits per second.
    pub bitrate: u64,
    /// The frame size its keyframes announce, in pixels.
    pub width: u16,
    /// Likewise.
    pub height: u16,
    /// Frames per second.
    pub fps: u32,
    /// Time between keyframes.
    pub keyframe_interval: Duration,
    /// How many of the first keyframe requests to ignore, as an encoder that is busy would, or
    /// as if the request were lost on the way: for testing that a server asks again.
    pub ignored_keyframe_requests: u32,
}

impl Default for VideoShape {
    fn default() -> Self {
        Self {
            bitrate: 300_000,
            width: 640,
            height: 360,
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            ignored_keyframe_requests: 0,
        }
    }
}

/// One packet of a frame, ready to be stamped with RTP numbers.
#[derive(Debug, Clone)]
pub struct FramePacket {
    /// The payload.
    pub payload: Bytes,
    /// Whether this is the frame's last packet (the RTP marker bit).
    pub last: bool,
}

/// The first bytes of a VP8 frame (RFC 6386, section 9.1): the 3-byte frame tag (bit 0, the
/// inverse key frame flag, clear on keyframes; show_frame set; a first partition size), and on
/// keyframes the start code `9d 01 2a` and the width and height, 16 bits little-endian each,
/// whose low 14 bits are the size (the top two, the scaling, stay 0).
pub fn vp8_frame_header(keyframe: bool, width: u16, height: u16) -> Vec<u8> {
    let mut header = vec![if keyframe { 0x10 } else { 0x11 }, 0x02, 0x00];
    if keyframe {
        header.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        header.extend_from_slice(&(width & 0x3fff).to_le_bytes());
        header.extend_from_slice(&(height & 0x3fff).to_le_bytes());
    }
    header
}

/// Packetizes one synthetic VP8 frame of the track tagged `tag`, on simulcast layer `layer` (0
/// for a track sent as one stream). Keyframes are three times the size of other frames, as
/// with a real encoder.
pub fn vp8_frame(
    shape: &VideoShape,
    keyframe: bool,
    tag: u32,
    layer: u8,
    next_index: &mut u64,
) -> Vec<FramePacket> {
    let per_frame = (shape.bitrate / 8 / u64::from(shape.fps.max(1))) as usize;
    let frame_bytes = if keyframe { per_frame * 3 } else { per_frame }.max(PROBE_LEN + 16);
    let body = MAX_PAYLOAD - PROBE_LEN;
    let count = frame_bytes.div_ceil(body).max(1);
    let sent_at_micros = now_micros();
    let mut packets = Vec::with_capacity(count);
    for part in 0..count {
        let mut head = Vec::with_capacity(16);
        if part == 0 {
            head.push(0x10); // S = 1, partition 0
            head.extend(vp8_frame_header(keyframe, shape.width, shape.height));
        } else {
            head.push(0x00);
        }
        let remaining = frame_bytes.saturating_sub(part * body);
        let len = remaining.min(body) + PROBE_LEN;
        let probe = Probe {
            tag,
            layer,
            index: *next_index,
            sent_at_micros,
        };
        *next_index += 1;
        packets.push(FramePacket {
            payload: payload(&head, len.max(head.len() + PROBE_LEN), probe),
            last: part + 1 == count,
        });
    }
    packets
}

/// The level a synthetic speaker's `index`-th 20 ms of audio carries (RFC 6464: −dBov, 0 the
/// loudest, 127 silence) and whether it is voice: talk spurts and pauses of a few seconds, in
/// a rhythm of its own for each track (`tag`), so that speakers overlap and take turns as in a
/// conversation, and the server has a dominant speaker to find.
pub fn speech_level(tag: u32, index: u64) -> (u8, bool) {
    // A cycle of 3 to 8 s (150 to 400 packets), talking for its first two fifths.
    let cycle = 150 + u64::from(tag % 251);
    let position = (index + u64::from(tag >> 8)) % cycle;
    if position < cycle * 2 / 5 {
        // Speech between −25 and −34 dBov, varying as a voice does.
        (25 + (position % 10) as u8, true)
    } else {
        (127, false)
    }
}

/// One synthetic Opus packet of 20 ms (about 64 kbit/s of payload).
pub fn opus_packet(tag: u32, index: u64) -> Bytes {
    payload(
        &[0x78],
        160,
        Probe {
            tag,
            layer: 0,
            index,
            sent_at_micros: now_micros(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synthetic_speaker_talks_about_two_fifths_of_the_time_in_spurts() {
        for tag in [0, 7, 0xdead_beef, u32::MAX] {
            let levels: Vec<(u8, bool)> =
                (0..2_000).map(|index| speech_level(tag, index)).collect();
            let talking = levels.iter().filter(|(_, voice)| *voice).count();
            assert!((600..=1_000).contains(&talking), "{tag}: {talking}");
            // Spurts, not a flicker: the voice flag changes a few times in 40 s.
            let changes = levels
                .windows(2)
                .filter(|pair| pair[0].1 != pair[1].1)
                .count();
            assert!((6..=30).contains(&changes), "{tag}: {changes}");
            for (level, voice) in levels {
                assert!(if voice {
                    (25..35).contains(&level)
                } else {
                    level == 127
                });
            }
        }
        assert_ne!(
            (0..400)
                .map(|index| speech_level(1, index).1)
                .collect::<Vec<_>>(),
            (0..400)
                .map(|index| speech_level(99_999, index).1)
                .collect::<Vec<_>>(),
            "each track has its own rhythm"
        );
    }

    #[test]
    fn probes_round_trip_and_catch_corruption() {
        let probe = Probe {
            tag: 7,
            layer: 0,
            index: 42,
            sent_at_micros: 1234,
        };
        let bytes = payload(&[1, 2, 3], 200, probe);
        assert_eq!(bytes.len(), 200);
        assert_eq!(read_probe(&bytes), Some(probe));
        let layered = Probe {
            layer: b'h',
            index: MAX_INDEX,
            ..probe
        };
        assert_eq!(read_probe(&payload(&[], 64, layered)), Some(layered));
        let mut corrupted = bytes.to_vec();
        corrupted[10] ^= 1;
        assert_eq!(read_probe(&corrupted), None);
        assert_eq!(read_probe(&bytes[1..]), None);
        assert_eq!(read_probe(&[]), None);
    }

    #[test]
    fn frames_split_at_the_payload_limit_and_mark_keyframes() {
        let shape = VideoShape {
            bitrate: 1_500_000,
            fps: 30,
            keyframe_interval: Duration::from_secs(1),
            ..VideoShape::default()
        };
        let mut index = 0;
        let key = vp8_frame(&shape, true, 1, 0, &mut index);
        assert!(key.len() > 1);
        assert!(key.iter().all(|packet| packet.payload.len() <= MAX_PAYLOAD));
        assert!(key.last().unwrap().last);
        assert_eq!(key[0].payload[0], 0x10);
        assert_eq!(key[0].payload[1] & 0x01, 0, "keyframe");
        assert_eq!(key[1].payload[0], 0x00, "continuation");
        let delta = vp8_frame(&shape, false, 1, 0, &mut index);
        assert_eq!(delta[0].payload[1] & 0x01, 1, "interframe");
        assert_eq!(index as usize, key.len() + delta.len());
        for packet in key.iter().chain(&delta) {
            assert!(read_probe(&packet.payload).is_some());
        }
    }

    #[test]
    fn keyframes_announce_their_size_and_layer() {
        let shape = VideoShape {
            bitrate: 150_000,
            width: 320,
            height: 180,
            ..VideoShape::default()
        };
        let mut index = 0;
        let key = vp8_frame(&shape, true, 9, b'q', &mut index);
        // Payload descriptor, then the frame tag with the inverse key bit clear.
        let frame = &key[0].payload[1..];
        assert_eq!(frame[0] & 0x01, 0);
        assert_eq!(&frame[3..6], &[0x9d, 0x01, 0x2a]);
        assert_eq!(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff, 320);
        assert_eq!(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff, 180);
        assert!(switchyard::media::vp8::is_keyframe_start(&key[0].payload));
        let probe = read_probe(&key[0].payload).expect("intact");
        assert_eq!((probe.tag, probe.layer, probe.index), (9, b'q', 0));
        let delta = vp8_frame(&shape, false, 9, b'q', &mut index);
        assert!(!switchyard::media::vp8::is_keyframe_start(
            &delta[0].payload
        ));
        assert_eq!(
            vp8_frame_header(false, 320, 180).len(),
            3,
            "no size on interframes"
        );
    }

    #[test]
    fn tags_depend_on_publisher_and_track() {
        assert_ne!(track_tag("a", "video"), track_tag("b", "video"));
        assert_ne!(track_tag("a", "video"), track_tag("a", "audio"));
        assert_eq!(track_tag("a", "video"), track_tag("a", "video"));
    }
}
