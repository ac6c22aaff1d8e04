//! What each participant received during the measurement window: its bytes, and for its
//! videos, which simulcast layer arrived for how long, and how often the server paused one for
//! lack of downlink. With simulcast and a bandwidth budget per subscriber, this is where a
//! viewer on a weak link (`--impaired`) shows apart from the others.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use switchyard::signal::protocol::{ServerMessage, TrackKind};

use crate::participant::Observed;

/// At most this many receivers are listed in the terminal's table; the JSON has them all.
pub const TABLE_ROWS: usize = 60;

/// What one participant received during the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiverTotals {
    /// Its participant id.
    pub receiver: String,
    /// Its name in the run, e.g. `subscriber-0-3`.
    pub name: String,
    /// The room it joined.
    #[serde(default)]
    pub room: String,
    /// The signaling URL its join was accepted at: on a cluster, the node hosting its room.
    #[serde(default)]
    pub server: String,
    /// Whether it was behind the scenario's impairment.
    pub impaired: bool,
    /// Payload bytes received on all its tracks.
    pub bytes: u64,
    /// The same per second of the window, in bits.
    pub bitrate_bps: f64,
    /// Video tracks received.
    pub video_tracks: usize,
    /// Seconds of video received on each simulcast layer, by RID, summed over its videos
    /// (empty when no video arrived in layers).
    pub layer_seconds: BTreeMap<String, f64>,
    /// Times the server paused one of its videos for lack of downlink (`video_paused`).
    pub pauses: u64,
    /// Its videos paused when the window closed.
    pub paused_at_end: usize,
    /// Times the server named a new active speaker to it (`speakers`), over the whole run.
    #[serde(default)]
    pub speaker_changes: u64,
}

impl ReceiverTotals {
    /// Totals `observed` for the participant `receiver` named `name`, in `room`, over a window
    /// of `window_seconds`.
    pub fn of(
        receiver: &str,
        name: &str,
        room: &str,
        impaired: bool,
        observed: &Observed,
        window_seconds: f64,
    ) -> Self {
        let mut totals = ReceiverTotals {
            receiver: receiver.to_owned(),
            name: name.to_owned(),
            room: room.to_owned(),
            server: observed.joined_url.clone().unwrap_or_default(),
            impaired,
            ..ReceiverTotals::default()
        };
        for track in observed.received.values() {
            let window = track.in_window();
            totals.bytes += window.bytes;
            if track.kind != Some(TrackKind::Video) || track.participant.is_empty() {
                continue;
            }
            totals.video_tracks += 1;
            totals.pauses += track.pauses;
            totals.paused_at_end += usize::from(track.paused);
            for (rid, time) in window.layer_time {
                *totals.layer_seconds.entry(rid).or_default() += time.as_secs_f64();
            }
        }
        totals.bitrate_bps = totals.bytes as f64 * 8.0 / window_seconds.max(1e-9);
        totals.speaker_changes = speaker_changes(&observed.messages);
        totals
    }

    /// The layer it received longest, if its video came in layers.
    pub fn main_layer(&self) -> Option<&str> {
        self.layer_seconds
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(rid, _)| rid.as_str())
    }
}

/// Seconds of video received on each layer, by RID, over every receiver.
pub fn layer_totals<'a>(
    receivers: impl IntoIterator<Item = &'a ReceiverTotals>,
) -> BTreeMap<String, f64> {
    let mut totals = BTreeMap::new();
    for receiver in receivers {
        for (rid, seconds) in &receiver.layer_seconds {
            *totals.entry(rid.clone()).or_default() += seconds;
        }
    }
    totals
}

/// `q 12% / h 30% / f 58%`: each layer's share of the time, lowest layer first.
pub fn layer_shares(seconds: &BTreeMap<String, f64>) -> String {
    let total: f64 = seconds.values().sum();
    if total <= 0.0 {
        return "n/a".to_owned();
    }
    let mut rids: Vec<&String> = seconds.keys().collect();
    rids.sort_by_key(|rid| layer_rank(rid));
    rids.iter()
        .map(|rid| format!("{rid} {:.0}%", seconds[*rid] / total * 100.0))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Orders RIDs lowest layer first: the browser client's `q`, `h`, `f`, then any others.
pub fn layer_rank(rid: &str) -> (usize, String) {
    let known = ["q", "h", "f"].iter().position(|known| *known == rid);
    (known.unwrap_or(3), rid.to_owned())
}

/// The per-receiver table: name, bytes, bitrate, seconds on each layer, pauses.
pub fn table(receivers: &[ReceiverTotals]) -> String {
    let mut rids: Vec<String> = layer_totals(receivers).into_keys().collect();
    rids.sort_by_key(|rid| layer_rank(rid));
    let mut out = String::new();
    let _ = write!(out, "{:<28}{:>10}{:>10}", "receiver", "MB", "kbit/s");
    for rid in &rids {
        let _ = write!(out, "{:>9}", format!("{rid} s"));
    }
    let _ = writeln!(out, "{:>8}", "pauses");
    for receiver in receivers.iter().take(TABLE_ROWS) {
        let name = if receiver.impaired {
            format!("{} (impaired)", receiver.name)
        } else {
            receiver.name.clone()
        };
        let _ = write!(
            out,
            "{name:<28}{:>10.2}{:>10.0}",
            receiver.bytes as f64 / 1e6,
            receiver.bitrate_bps / 1000.0
        );
        for rid in &rids {
            let seconds = receiver.layer_seconds.get(rid).copied().unwrap_or(0.0);
            let _ = write!(out, "{seconds:>9.1}");
        }
        let _ = writeln!(out, "{:>8}", receiver.pauses);
    }
    if receivers.len() > TABLE_ROWS {
        let _ = writeln!(
            out,
            "... and {} more (the JSON report lists every one)",
            receivers.len() - TABLE_ROWS
        );
    }
    out
}

/// How many times `messages` name an active speaker other than the one before.
fn speaker_changes(messages: &[ServerMessage]) -> u64 {
    let mut active = None;
    let mut changes = 0;
    for message in messages {
        if let ServerMessage::Speakers { active: now, .. } = message
            && now.is_some()
            && *now != active
        {
            changes += 1;
            active.clone_from(now);
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::participant::{ReceivedTrack, WindowMark};

    #[test]
    fn speaker_changes_count_each_new_active_speaker_once() {
        let speakers = |active: Option<&str>| ServerMessage::Speakers {
            active: active.map(Into::into),
            speaking: Vec::new(),
        };
        let messages = [
            speakers(None),
            speakers(Some("PA_1")),
            speakers(Some("PA_1")),
            ServerMessage::Shutdown {
                reason: String::new(),
            },
            speakers(Some("PA_2")),
            speakers(None),
            speakers(Some("PA_1")),
        ];
        assert_eq!(speaker_changes(&messages), 3);
        assert_eq!(speaker_changes(&[]), 0);
    }

    #[test]
    fn totals_count_the_window_only_and_sum_the_layers_of_every_video() {
        let start = Instant::now();
        let mut observed = Observed::default();
        for (mid, first, second) in [("0", b'q', b'f'), ("1", b'h', b'h')] {
            let mut track = ReceivedTrack {
                participant: format!("PA_{mid}"),
                track: "video0".to_owned(),
                kind: Some(TrackKind::Video),
                announced: true,
                ..ReceivedTrack::default()
            };
            // 1 s on the first layer, then 2 s on the second, ten packets a second.
            for step in 0..=30u64 {
                let layer = if step < 10 { first } else { second };
                let _ =
                    track
                        .layers
                        .on_packet(layer, step, start + Duration::from_millis(100 * step));
            }
            track.bytes = 5_000;
            track.window.opened = Some(WindowMark {
                bytes: 1_000,
                ..WindowMark::default()
            });
            observed.received.insert(mid.to_owned(), track);
        }
        let audio = ReceivedTrack {
            participant: "PA_0".to_owned(),
            kind: Some(TrackKind::Audio),
            bytes: 500,
            ..ReceivedTrack::default()
        };
        observed.received.insert("2".to_owned(), audio);
        observed.received.get_mut("1").unwrap().pauses = 2;
        observed.received.get_mut("1").unwrap().paused = true;

        let totals = ReceiverTotals::of("PA_9", "subscriber-0-0", "room-1", true, &observed, 2.0);
        assert_eq!(totals.bytes, 4_000 + 4_000 + 500);
        assert_eq!(totals.bitrate_bps, 8_500.0 * 8.0 / 2.0);
        assert_eq!(totals.video_tracks, 2);
        assert_eq!((totals.pauses, totals.paused_at_end), (2, 1));
        let seconds = |rid: &str| totals.layer_seconds.get(rid).copied().unwrap_or(0.0);
        assert!((seconds("q") - 1.0).abs() < 1e-6, "{totals:?}");
        assert!((seconds("f") - 2.0).abs() < 1e-6);
        assert!((seconds("h") - 3.0).abs() < 1e-6);
        assert_eq!(totals.main_layer(), Some("h"));
        assert_eq!(layer_shares(&totals.layer_seconds), "q 17% / h 50% / f 33%");
        let text = table(std::slice::from_ref(&totals));
        assert!(text.contains("subscriber-0-0 (impaired)"), "{text}");
        assert!(text.contains("q s") && text.contains("f s"), "{text}");
    }

    #[test]
    fn videos_sent_as_one_stream_have_no_layers() {
        let totals = ReceiverTotals::default();
        assert_eq!(totals.main_layer(), None);
        assert_eq!(layer_shares(&layer_totals([&totals])), "n/a");
    }
}
