//! How loud a published audio track is, from the RFC 6464 audio level its publisher stamps on
//! every packet (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`).
//!
//! The extension's one byte holds a voice activity flag (bit 7) and the packet's level in
//! −dBov (bits 0–6: 0 is the loudest, 127 silence). The publisher's media worker records each
//! packet's level in the track's [`AudioLevelMeter`] before the router strips the extensions;
//! the room's speaker detection (`media::speaker`) takes what the meter gathered every tick,
//! from another thread. The meter is one atomic word, so neither side ever waits.
//!
//! The voice activity flag is read but not trusted for speech: browsers set it on nearly every
//! packet (Opus without DTX marks every frame as speech), and some senders never set it. The
//! level is what every sender fills in, so a packet counts as speech by its level alone.

use std::sync::atomic::{AtomicU64, Ordering};

use rtc::rtp;

/// The extension's URI, as negotiated in SDP.
pub const AUDIO_LEVEL_URI: &str = rtc::sdp::extmap::AUDIO_LEVEL_URI;

/// The quietest level, in −dBov, that counts as speech in a packet: −50 dBov. Speech into a
/// browser's microphone (with its automatic gain control) sits between about −15 and −40 dBov;
/// a quiet room after noise suppression is below −60, and silence is 127.
pub const SPEECH_LEVEL: u8 = 50;

/// The quietest level RFC 6464 can express: digital silence.
pub const SILENCE: u8 = 127;

/// What a meter gathered between two reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelWindow {
    /// Packets that carried a level.
    pub packets: u32,
    /// Those at least as loud as [`SPEECH_LEVEL`].
    pub speech: u32,
    /// The sum, over the speech packets, of their loudness `127 − level` (0..=127 each).
    pub loudness: u32,
}

impl LevelWindow {
    /// The share of packets that were speech, 0 when none came.
    pub fn speech_share(&self) -> f64 {
        if self.packets == 0 {
            0.0
        } else {
            f64::from(self.speech) / f64::from(self.packets)
        }
    }

    /// The mean loudness of the speech packets, from 0 (silence) to 1 (0 dBov); 0 when there
    /// were none.
    pub fn speech_loudness(&self) -> f64 {
        if self.speech == 0 {
            0.0
        } else {
            f64::from(self.loudness) / (f64::from(self.speech) * f64::from(SILENCE))
        }
    }
}

// The window packed in one word, so that a packet is one atomic update and a read one swap:
// packets in the low 16 bits, speech packets in the next 16, loudness in the high 32.
const PACKETS: u64 = 1;
const SPEECH: u64 = 1 << 16;
const LOUDNESS: u64 = 1 << 32;
const FIELD: u64 = 0xffff;

/// One audio track's levels since they were last taken; see the module documentation.
#[derive(Debug, Default)]
pub struct AudioLevelMeter {
    window: AtomicU64,
}

impl AudioLevelMeter {
    /// Records the level `header` carries under the extension id `id` (the id the publisher's
    /// connection negotiated; `None` when it did not). A packet without it is not counted.
    pub fn observe(&self, header: &rtp::header::Header, id: Option<u8>) {
        let Some(id) = id else {
            return;
        };
        if !header.extension {
            return;
        }
        let Some(byte) = header
            .extensions
            .iter()
            .find(|extension| extension.id == id)
            .and_then(|extension| extension.payload.first())
        else {
            return;
        };
        self.record(byte & 0x7f);
    }

    /// Records one packet's level in −dBov (0..=127).
    pub fn record(&self, level: u8) {
        let level = level.min(SILENCE);
        let increment = if level <= SPEECH_LEVEL {
            PACKETS + SPEECH + LOUDNESS * u64::from(SILENCE - level)
        } else {
            PACKETS
        };
        // A window nobody reads stops counting instead of carrying into the next field. It is
        // read every few hundred milliseconds, 50 packets a second, far below 65 535.
        let _ = self
            .window
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |window| {
                (window & FIELD < FIELD).then(|| window + increment)
            });
    }

    /// What was recorded since the last call, which starts a new window.
    pub fn take(&self) -> LevelWindow {
        let window = self.window.swap(0, Ordering::Relaxed);
        LevelWindow {
            packets: (window & FIELD) as u32,
            speech: ((window >> 16) & FIELD) as u32,
            loudness: (window >> 32) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn header(extensions: &[(u8, &'static [u8])]) -> rtp::header::Header {
        rtp::header::Header {
            version: 2,
            extension: !extensions.is_empty(),
            extension_profile: 0xBEDE,
            extensions: extensions
                .iter()
                .map(|&(id, payload)| rtp::header::Extension {
                    id,
                    payload: Bytes::from_static(payload),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_the_level_under_the_negotiated_id_and_ignores_the_voice_flag() {
        let meter = AudioLevelMeter::default();
        // −10 dBov with the voice flag, −30 without: both speech.
        meter.observe(&header(&[(2, b"xyz"), (1, &[0x80 | 10])]), Some(1));
        meter.observe(&header(&[(1, &[30])]), Some(1));
        // Silence with the voice flag set is still silence.
        meter.observe(&header(&[(1, &[0x80 | 127])]), Some(1));
        assert_eq!(
            meter.take(),
            LevelWindow {
                packets: 3,
                speech: 2,
                loudness: (127 - 10) + (127 - 30),
            }
        );
    }

    #[test]
    fn a_packet_without_the_level_is_not_counted() {
        let meter = AudioLevelMeter::default();
        meter.observe(&header(&[(1, &[10])]), None);
        meter.observe(&header(&[(2, &[10])]), Some(1));
        meter.observe(&header(&[(1, &[])]), Some(1));
        meter.observe(&header(&[]), Some(1));
        assert_eq!(meter.take(), LevelWindow::default());
    }

    #[test]
    fn taking_starts_a_new_window() {
        let meter = AudioLevelMeter::default();
        meter.record(SPEECH_LEVEL);
        meter.record(SPEECH_LEVEL + 1);
        let first = meter.take();
        assert_eq!((first.packets, first.speech), (2, 1));
        assert_eq!(first.speech_share(), 0.5);
        assert!((first.speech_loudness() - 77.0 / 127.0).abs() < 1e-9);
        assert_eq!(meter.take(), LevelWindow::default());
        assert_eq!(LevelWindow::default().speech_share(), 0.0);
        assert_eq!(LevelWindow::default().speech_loudness(), 0.0);
    }

    #[test]
    fn a_window_nobody_reads_saturates_instead_of_overflowing() {
        let meter = AudioLevelMeter::default();
        for _ in 0..70_000 {
            meter.record(0);
        }
        let window = meter.take();
        assert_eq!(window.packets, 65_535);
        assert_eq!(window.speech, 65_535);
        assert_eq!(window.loudness, 65_535 * 127);
    }

    #[test]
    fn written_on_one_thread_and_read_on_another() {
        let meter = std::sync::Arc::new(AudioLevelMeter::default());
        let writer = {
            let meter = std::sync::Arc::clone(&meter);
            std::thread::spawn(move || {
                for index in 0..10_000u32 {
                    meter.record(if index % 2 == 0 { 20 } else { 100 });
                }
            })
        };
        let mut total = LevelWindow::default();
        let mut add = |window: LevelWindow| {
            total.packets += window.packets;
            total.speech += window.speech;
            total.loudness += window.loudness;
        };
        while !writer.is_finished() {
            add(meter.take());
        }
        writer.join().expect("the writer ends");
        add(meter.take());
        assert_eq!(total.packets, 10_000);
        assert_eq!(total.speech, 5_000);
        assert_eq!(total.loudness, 5_000 * 107);
    }
}
