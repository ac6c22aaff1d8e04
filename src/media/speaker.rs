//! Who is speaking in a room, and who the dominant (active) speaker is, from the audio levels
//! of each participant's microphone ([`LevelWindow`]s, one per tick).
//!
//! Plain policy: time and levels in, a decision out, no clock or socket. The room calls
//! [`Detector::tick`] every [`TICK`] with what each member's meters gathered since the last
//! tick, and sends the [`Speakers`] it returns to everybody.
//!
//! The rule, and why its numbers:
//! - A **speech window** is a tick in which at least a third ([`SPEECH_SHARE`]) of a
//!   participant's packets were speech (at least as loud as −50 dBov, see
//!   `media::audio_level`). Spoken words fill most of a 200 ms window even with the gaps
//!   between syllables; a click or a keystroke fills one or two 20 ms packets of it.
//! - A participant **starts speaking** after [`ONSET`] (300 ms) of speech windows within one
//!   run, a run being speech windows less than [`HANG`] apart: two windows in a row, so a
//!   cough, a laugh or a door slamming does not light them up. Detection then takes 400 to
//!   600 ms from the first word, within the second a person notices.
//! - They **stop speaking** [`HANG`] (1 s) after their last speech window: the pauses between
//!   phrases and for breath are shorter, so the indicator does not blink through a sentence.
//! - Each participant has an **activity**: the speech share of each window times the mean
//!   loudness of its speech packets (0.6 at −50 dBov, 1 at 0 dBov), averaged exponentially
//!   with a time constant of [`ACTIVITY_TIME_CONSTANT`] (2 s). How long one speaks weighs most;
//!   loudness moves it by at most a factor of 1.6, since microphones and gain controls differ.
//! - The **active speaker** is the first person to start speaking. It passes to someone else
//!   who is speaking when the active speaker has stopped speaking, or when that person's
//!   activity is [`TAKEOVER_RATIO`] (1.5) times the active speaker's: a "yes" or a short
//!   interjection over a speaker does not take the view, and someone who takes over the
//!   conversation gets it about a second after the previous speaker's last word. Silence keeps
//!   the last active speaker, and one who leaves the room is no longer active (`None` until
//!   someone speaks).
//! - What the room is told changes at most every [`MIN_INTERVAL`] (250 ms, four times a
//!   second); a change that comes sooner waits for the next tick after it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::ParticipantId;
use crate::media::audio_level::LevelWindow;

/// How often the room reads its meters and asks the detector.
pub const TICK: Duration = Duration::from_millis(200);
/// The share of a window's packets that must be speech for the window to be speech.
pub const SPEECH_SHARE: f64 = 1.0 / 3.0;
/// Speech a participant needs, within one run, before it counts as speaking.
pub const ONSET: Duration = Duration::from_millis(300);
/// How long a participant stays speaking after its last speech window.
pub const HANG: Duration = Duration::from_secs(1);
/// The time constant of the activity average.
pub const ACTIVITY_TIME_CONSTANT: Duration = Duration::from_secs(2);
/// How much more active than the active speaker, who still speaks, another speaker must be to
/// take over.
pub const TAKEOVER_RATIO: f64 = 1.5;
/// The shortest time between two changes the room is told of.
pub const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// The longest window a tick is credited with, under [`ONSET`]: one window alone never makes a
/// speaker, however late it comes (after a pause in ticking, or a tick delayed by load).
const MAX_WINDOW: Duration = Duration::from_millis(250);

/// What the room is told: the dominant speaker and everybody speaking now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Speakers {
    /// The dominant speaker; `None` while nobody present has spoken.
    pub active: Option<ParticipantId>,
    /// Everybody speaking now, in the order the room listed them.
    pub speaking: Vec<ParticipantId>,
}

/// What the detector keeps of one participant.
#[derive(Debug, Default)]
struct Voice {
    /// Speech in the current run.
    voiced: Duration,
    /// The tick of the latest speech window.
    last_speech: Option<Instant>,
    /// The exponential average of the windows' speech share times loudness.
    activity: f64,
}

impl Voice {
    fn hear(&mut self, window: &LevelWindow, duration: Duration, now: Instant) {
        let share = window.speech_share();
        if share >= SPEECH_SHARE {
            if !self.heard_within(HANG, now) {
                self.voiced = Duration::ZERO;
            }
            self.voiced += duration;
            self.last_speech = Some(now);
        }
        let weight = 1.0 - (-duration.as_secs_f64() / ACTIVITY_TIME_CONSTANT.as_secs_f64()).exp();
        self.activity += weight * (share * window.speech_loudness() - self.activity);
    }

    fn heard_within(&self, span: Duration, now: Instant) -> bool {
        self.last_speech
            .is_some_and(|last| now.saturating_duration_since(last) < span)
    }

    fn is_speaking(&self, now: Instant) -> bool {
        self.voiced >= ONSET && self.heard_within(HANG, now)
    }
}

/// A room's speaker detection; see the module documentation.
#[derive(Debug, Default)]
pub struct Detector {
    voices: HashMap<ParticipantId, Voice>,
    active: Option<ParticipantId>,
    last_tick: Option<Instant>,
    told: Speakers,
    told_at: Option<Instant>,
}

impl Detector {
    /// What the room was last told.
    pub fn told(&self) -> &Speakers {
        &self.told
    }

    /// Takes one window per participant in the room (an empty window for one that sent no
    /// audio), in the room's order, and returns what to tell the room if it changed and may
    /// be told now. A participant missing from `levels` has left and is forgotten.
    pub fn tick(
        &mut self,
        now: Instant,
        levels: &[(ParticipantId, LevelWindow)],
    ) -> Option<Speakers> {
        let duration = self
            .last_tick
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last))
            .min(MAX_WINDOW);
        self.last_tick = Some(now);
        // Those missing from `levels` are dropped with the old map.
        let mut previous = std::mem::take(&mut self.voices);
        for (participant, window) in levels {
            let mut voice = previous.remove(participant).unwrap_or_default();
            voice.hear(window, duration, now);
            self.voices.insert(participant.clone(), voice);
        }
        let speaking: Vec<ParticipantId> = levels
            .iter()
            .map(|(participant, _)| participant)
            .filter(|participant| self.voices[*participant].is_speaking(now))
            .cloned()
            .collect();
        self.choose_active(&speaking, now);
        let current = Speakers {
            active: self.active.clone(),
            speaking,
        };
        let may_tell = self
            .told_at
            .is_none_or(|told| now.saturating_duration_since(told) >= MIN_INTERVAL);
        if current == self.told || !may_tell {
            return None;
        }
        self.told = current.clone();
        self.told_at = Some(now);
        Some(current)
    }

    fn choose_active(&mut self, speaking: &[ParticipantId], now: Instant) {
        let incumbent = self
            .active
            .as_ref()
            .and_then(|active| self.voices.get(active));
        if self.active.is_some() && incumbent.is_none() {
            // The active speaker left.
            self.active = None;
        }
        let activity = |participant: &ParticipantId| self.voices[participant].activity;
        let Some(challenger) = speaking
            .iter()
            .filter(|participant| Some(*participant) != self.active.as_ref())
            .max_by(|a, b| activity(a).total_cmp(&activity(b)))
        else {
            return;
        };
        let takes_over = match incumbent {
            None => true,
            Some(incumbent) => {
                !incumbent.is_speaking(now)
                    || activity(challenger) >= TAKEOVER_RATIO * incumbent.activity
            }
        };
        if takes_over {
            self.active = Some(challenger.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::audio_level::{AudioLevelMeter, SILENCE};

    /// Ten 20 ms packets of one level, as a microphone sends in a 200 ms tick.
    fn window(level: u8) -> LevelWindow {
        let meter = AudioLevelMeter::default();
        for _ in 0..10 {
            meter.record(level);
        }
        meter.take()
    }

    const LOUD: u8 = 10;
    const QUIET: u8 = 45;

    /// A room of participants `A`, `B` and `C`, ticked by hand.
    struct Room {
        detector: Detector,
        start: Instant,
        now: Instant,
        told: Vec<(Duration, Speakers)>,
    }

    impl Room {
        fn new() -> Self {
            let start = Instant::now();
            Self {
                detector: Detector::default(),
                start,
                now: start,
                told: Vec::new(),
            }
        }

        /// Ticks every 200 ms for `span`, with these levels of `A`, `B` and `C`.
        fn run(&mut self, span: Duration, levels: [Option<u8>; 3]) {
            let end = self.now + span;
            while self.now < end {
                self.now += TICK;
                let windows: Vec<(ParticipantId, LevelWindow)> = ["A", "B", "C"]
                    .into_iter()
                    .zip(levels)
                    .map(|(name, level)| {
                        (
                            ParticipantId::from(name),
                            level.map_or_else(LevelWindow::default, window),
                        )
                    })
                    .collect();
                if let Some(speakers) = self.detector.tick(self.now, &windows) {
                    self.told.push((self.now - self.start, speakers));
                }
            }
        }

        fn current(&self) -> &Speakers {
            self.detector.told()
        }

        fn active(&self) -> Option<&str> {
            self.current().active.as_ref().map(ParticipantId::as_str)
        }

        fn speaking(&self) -> Vec<&str> {
            self.current()
                .speaking
                .iter()
                .map(ParticipantId::as_str)
                .collect()
        }
    }

    fn secs(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    const SILENT: [Option<u8>; 3] = [Some(SILENCE), Some(SILENCE), Some(SILENCE)];

    #[test]
    fn a_silent_room_says_nothing() {
        let mut room = Room::new();
        room.run(secs(5.0), SILENT);
        room.run(secs(5.0), [None, None, None]);
        assert!(room.told.is_empty());
        assert_eq!(room.active(), None);
    }

    #[test]
    fn a_speaker_becomes_active_within_two_windows_and_stays_through_pauses() {
        let mut room = Room::new();
        room.run(secs(1.0), SILENT);
        room.run(TICK, [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), None, "one window is not enough");
        room.run(TICK, [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), Some("A"));
        assert_eq!(room.speaking(), vec!["A"]);
        assert_eq!(room.told.len(), 1);
        assert_eq!(room.told[0].0, secs(1.4));

        // A breath between phrases does not end the speech.
        room.run(secs(0.6), SILENT);
        room.run(secs(1.0), [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.told.len(), 1, "{:?}", room.told);

        // Silence ends it after a second, and keeps A active.
        room.run(secs(1.0), SILENT);
        assert_eq!(room.speaking(), Vec::<&str>::new());
        assert_eq!(room.active(), Some("A"));
        room.run(secs(10.0), SILENT);
        assert_eq!(room.active(), Some("A"));
        assert_eq!(room.told.len(), 2);
    }

    #[test]
    fn a_cough_or_a_click_is_not_speech() {
        let mut room = Room::new();
        for _ in 0..5 {
            room.run(TICK, [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
            room.run(secs(1.4), SILENT);
        }
        // Three loud packets of ten in every window: under a third.
        let clicks = {
            let meter = AudioLevelMeter::default();
            for index in 0..10 {
                meter.record(if index < 3 { LOUD } else { SILENCE });
            }
            meter.take()
        };
        for _ in 0..20 {
            room.now += TICK;
            let levels = [
                (ParticipantId::from("A"), clicks),
                (ParticipantId::from("B"), window(SILENCE)),
            ];
            assert_eq!(room.detector.tick(room.now, &levels), None);
        }
        assert!(room.told.is_empty(), "{:?}", room.told);
    }

    #[test]
    fn when_the_speaker_stops_and_another_speaks_the_other_takes_over() {
        let mut room = Room::new();
        room.run(secs(10.0), [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), Some("A"));
        let handover = room.now;
        room.run(secs(3.0), [Some(SILENCE), Some(LOUD), Some(SILENCE)]);
        assert_eq!(room.active(), Some("B"));
        assert_eq!(room.speaking(), vec!["B"]);
        let (at, _) = room
            .told
            .iter()
            .find(|(_, speakers)| speakers.active.as_ref().map(ParticipantId::as_str) == Some("B"))
            .expect("B became active");
        let after = *at - (handover - room.start);
        assert!(
            after <= secs(1.2),
            "B took over {after:?} after A's last word"
        );
    }

    #[test]
    fn an_interjection_does_not_take_the_active_speaker_s_place() {
        let mut room = Room::new();
        room.run(secs(5.0), [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        // B says "right, yes" for 600 ms, louder even, while A goes on.
        room.run(secs(0.6), [Some(LOUD), Some(0), Some(SILENCE)]);
        assert_eq!(room.speaking(), vec!["A", "B"]);
        room.run(secs(3.0), [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), Some("A"));
        assert_eq!(room.speaking(), vec!["A"]);
        assert!(
            room.told.iter().all(|(_, speakers)| speakers
                .active
                .as_ref()
                .map(ParticipantId::as_str)
                == Some("A")),
            "{:?}",
            room.told
        );
    }

    #[test]
    fn a_speaker_who_speaks_clearly_more_takes_over_while_the_other_murmurs() {
        let mut room = Room::new();
        room.run(secs(2.0), [Some(QUIET), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), Some("A"));
        // A keeps murmuring a word now and then; B talks, loud and steadily.
        for _ in 0..6 {
            room.run(TICK, [Some(QUIET), Some(LOUD), Some(SILENCE)]);
            room.run(secs(0.6), [Some(SILENCE), Some(LOUD), Some(SILENCE)]);
        }
        assert_eq!(room.active(), Some("B"));
        assert_eq!(room.speaking(), vec!["A", "B"]);
    }

    #[test]
    fn the_room_is_told_at_most_four_times_a_second() {
        let mut room = Room::new();
        let mut now = room.start;
        let mut told = Vec::new();
        // Ticks every 50 ms, with speakers coming and going as fast as the rule lets them.
        for step in 0..400u32 {
            now += Duration::from_millis(50);
            let phase = (step / 30) % 3;
            let levels: Vec<(ParticipantId, LevelWindow)> = ["A", "B", "C"]
                .into_iter()
                .enumerate()
                .map(|(index, name)| {
                    let level = if index as u32 == phase { LOUD } else { SILENCE };
                    (ParticipantId::from(name), window(level))
                })
                .collect();
            if room.detector.tick(now, &levels).is_some() {
                told.push(now);
            }
        }
        assert!(told.len() > 5, "{told:?}");
        assert!(
            told.windows(2)
                .all(|pair| pair[1] - pair[0] >= MIN_INTERVAL),
            "{told:?}"
        );
    }

    #[test]
    fn an_active_speaker_who_leaves_is_active_no_more() {
        let mut room = Room::new();
        room.run(secs(2.0), [Some(LOUD), Some(SILENCE), Some(SILENCE)]);
        assert_eq!(room.active(), Some("A"));
        room.now += TICK;
        let rest = [
            (ParticipantId::from("B"), window(SILENCE)),
            (ParticipantId::from("C"), window(SILENCE)),
        ];
        assert_eq!(
            room.detector.tick(room.now, &rest),
            Some(Speakers::default())
        );
        // The next to speak is active at once, from the moment they count as speaking.
        room.now += TICK;
        let levels = [
            (ParticipantId::from("B"), window(SILENCE)),
            (ParticipantId::from("C"), window(LOUD)),
        ];
        assert_eq!(room.detector.tick(room.now, &levels), None);
        room.now += TICK;
        assert_eq!(
            room.detector.tick(room.now, &levels),
            Some(Speakers {
                active: Some(ParticipantId::from("C")),
                speaking: vec![ParticipantId::from("C")],
            })
        );
    }

    #[test]
    fn a_long_pause_in_ticking_is_not_taken_for_speech() {
        let mut detector = Detector::default();
        let start = Instant::now();
        let loud = [(ParticipantId::from("A"), window(LOUD))];
        assert_eq!(detector.tick(start, &loud), None);
        // Ticking resumes after a minute: the late window counts as one window, not a minute.
        assert_eq!(detector.tick(start + secs(60.0), &loud), None);
        assert!(detector.told().speaking.is_empty());
        // The next one makes two.
        assert_eq!(
            detector.tick(start + secs(60.2), &loud),
            Some(Speakers {
                active: Some(ParticipantId::from("A")),
                speaking: vec![ParticipantId::from("A")],
            })
        );
    }
}
