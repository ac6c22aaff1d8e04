//! What a load test run does: how many rooms and participants, what they send, for how long,
//! over what kind of network. Built from flags, or from a named scenario in a TOML file with
//! flags overriding it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::impairment::Impairment;
use crate::synthetic::VideoShape;
use crate::view::Tile;

/// One load test run's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Number of rooms.
    pub rooms: usize,
    /// Participants per room that publish (and receive everybody else).
    pub publishers: usize,
    /// Participants per room that only receive.
    pub subscribers: usize,
    /// Video bitrate of each publisher, bits per second; 0 publishes no video.
    pub video_bitrate: u64,
    /// Whether publishers send their video in the three simulcast layers of the browser
    /// client (`crate::simulcast::LAYERS`, 2.15 Mbit/s together), each at its own bitrate
    /// rather than `video_bitrate`.
    pub simulcast: bool,
    /// The tile every participant shows each received video in, declared to the server with
    /// `view`; `None` declares nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<Tile>,
    /// Video frames per second.
    pub fps: u32,
    /// Time between the publishers' periodic keyframes.
    #[serde(with = "duration_ms")]
    pub keyframe_interval: Duration,
    /// Whether publishers also send audio.
    pub audio: bool,
    /// Whether publishers send packets at all. With `false` their tracks are negotiated and
    /// nothing is sent, as with cameras and microphones switched off: what idle connections
    /// cost.
    pub send_media: bool,
    /// Participants started per second.
    pub ramp_up: f64,
    /// How long to measure once everybody has joined.
    #[serde(with = "duration_ms")]
    pub duration: Duration,
    /// How often each participant asks for a keyframe of one of the videos it receives, to
    /// measure the keyframe response; zero never asks.
    #[serde(with = "duration_ms")]
    pub pli_interval: Duration,
    /// The network every participant is behind, or the last `impaired` of each room.
    pub impairment: Impairment,
    /// How many participants of each room are behind `impairment`: the last ones of the
    /// room's list (its subscribers from the last, then its publishers from the last); `None`:
    /// everybody. `Some(1)` with a bandwidth limit is one viewer on a weak link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impaired: Option<usize>,
    /// Participants joining and leaving while the rooms are busy, during the measurement
    /// window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
}

/// Churn: while the measurement window runs, a participant joins every `1 / rate` seconds (in
/// each room in turn), receives, stays for `stay`, and leaves, as people dropping in and out
/// of a call do. What it measures is how long joining takes while the rooms are busy: socket
/// to `joined`, and to every remote track. Churners publish nothing, so the steady
/// participants' media is measured as without them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Participants joining per second.
    pub rate: f64,
    /// How long each stays.
    #[serde(with = "duration_ms")]
    pub stay: Duration,
}

impl Churn {
    /// How many join during a window of `duration`.
    pub fn joins(&self, duration: Duration) -> usize {
        (self.rate * duration.as_secs_f64()).ceil() as usize
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            rooms: 1,
            publishers: 2,
            subscribers: 0,
            video_bitrate: 500_000,
            simulcast: false,
            tile: None,
            fps: 30,
            keyframe_interval: Duration::from_secs(3),
            audio: true,
            send_media: true,
            ramp_up: 20.0,
            duration: Duration::from_secs(10),
            pli_interval: Duration::from_secs(5),
            impairment: Impairment::default(),
            impaired: None,
            churn: None,
        }
    }
}

/// The longest run a scenario may ask for: every load loop stops by itself.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most participants one run may start.
pub const MAX_PARTICIPANTS: usize = 2000;
/// The most churners one run may start over its window.
pub const MAX_CHURN_JOINS: usize = 20_000;

impl Scenario {
    /// The video shape publishers send, if they send video.
    pub fn video(&self) -> Option<VideoShape> {
        (self.video_bitrate > 0).then_some(VideoShape {
            bitrate: self.video_bitrate,
            fps: self.fps,
            keyframe_interval: self.keyframe_interval,
            ..VideoShape::default()
        })
    }

    /// Whether the participant at `position` in its room's list (publishers first) is behind
    /// the impairment.
    pub fn is_impaired(&self, position_in_room: usize) -> bool {
        let per_room = self.publishers + self.subscribers;
        match self.impaired {
            None => true,
            Some(count) => position_in_room + count.min(per_room) >= per_room,
        }
    }

    /// Tracks each publisher sends.
    pub fn tracks_per_publisher(&self) -> usize {
        usize::from(self.video_bitrate > 0) + usize::from(self.audio)
    }

    /// Every participant the run starts.
    pub fn participants(&self) -> usize {
        self.rooms * (self.publishers + self.subscribers)
    }

    /// Refuses shapes that cannot run or would not stop.
    pub fn validate(&self) -> Result<(), String> {
        if self.rooms == 0 || self.publishers + self.subscribers == 0 {
            return Err("a run needs at least one room with one participant".to_owned());
        }
        if self.participants() > MAX_PARTICIPANTS {
            return Err(format!("at most {MAX_PARTICIPANTS} participants per run"));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(format!(
                "duration must be between 1 ms and {MAX_DURATION:?}"
            ));
        }
        if self.fps == 0 || self.fps > 120 {
            return Err("fps must be between 1 and 120".to_owned());
        }
        if !(self.ramp_up > 0.0 && self.ramp_up.is_finite()) {
            return Err("ramp-up must be a positive number of participants per second".to_owned());
        }
        if self.simulcast && self.video_bitrate == 0 {
            return Err("simulcast needs video: a video bitrate above 0".to_owned());
        }
        if !(0.0..=1.0).contains(&self.impairment.loss) {
            return Err("loss must be between 0% and 100%".to_owned());
        }
        if let Some(churn) = &self.churn {
            if !(churn.rate > 0.0 && churn.rate.is_finite()) {
                return Err("churn rate must be a positive number of joins per second".to_owned());
            }
            if churn.stay.is_zero() || churn.stay > MAX_DURATION {
                return Err(format!(
                    "churn stay must be between 1 ms and {MAX_DURATION:?}"
                ));
            }
            if churn.joins(self.duration) > MAX_CHURN_JOINS {
                return Err(format!(
                    "at most {MAX_CHURN_JOINS} churn joins per run (rate times duration)"
                ));
            }
            if churn.rate * churn.stay.as_secs_f64() + self.participants() as f64
                > MAX_PARTICIPANTS as f64
            {
                return Err(format!(
                    "at most {MAX_PARTICIPANTS} participants at once, churners included (rate times stay)"
                ));
            }
        }
        Ok(())
    }
}

/// Reads the named scenarios of a TOML file: one table per scenario.
pub fn parse_scenarios(text: &str) -> Result<BTreeMap<String, Scenario>, String> {
    toml::from_str(text).map_err(|error| error.to_string())
}

/// Parses `20s`, `1500ms`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = split_unit(text);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 20s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit in `{text}`: use ms, s, m or h")),
    };
    if !(seconds >= 0.0 && seconds.is_finite()) {
        return Err(format!("`{text}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses `5%` or a fraction like `0.05`.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|value| value / 100.0),
        None => text.parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a percentage like 5% or 0.05"))?;
    if !(0.0..=1.0).contains(&value) {
        return Err(format!("`{text}` is not between 0% and 100%"));
    }
    Ok(value)
}

/// Parses a bitrate: `1.5M`, `800k`, `64000` (bits per second; `bps` suffix optional).
pub fn parse_bitrate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let lowered = text.to_ascii_lowercase();
    let trimmed = lowered
        .strip_suffix("bps")
        .or_else(|| lowered.strip_suffix("bit/s"))
        .unwrap_or(&lowered);
    let (number, unit) = split_unit(trimmed);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a bitrate like 1.5M or 800k"))?;
    let multiplier = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        _ => return Err(format!("unknown unit in `{text}`: use k, M or G")),
    };
    let bits = value * multiplier;
    if !(bits >= 0.0 && bits.is_finite()) {
        return Err(format!("`{text}` is not a bitrate"));
    }
    Ok(bits as u64)
}

fn split_unit(text: &str) -> (&str, &str) {
    let split = text
        .find(|character: char| character.is_ascii_alphabetic())
        .unwrap_or(text.len());
    (text[..split].trim(), text[split..].trim())
}

/// Serde support for durations written as strings (`"20s"`) or milliseconds (`20000`).
pub mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes whole milliseconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(duration.as_millis() as u64)
    }

    /// Reads `"20s"`-style strings or milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Millis(u64),
            Text(String),
        }
        match Written::deserialize(deserializer)? {
            Written::Millis(millis) => Ok(Duration::from_millis(millis)),
            Written::Text(text) => super::parse_duration(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn fractions_and_bitrates() {
        assert_eq!(parse_fraction("5%"), Ok(0.05));
        assert_eq!(parse_fraction("0.03"), Ok(0.03));
        assert!(parse_fraction("150%").is_err());
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("64000"), Ok(64_000));
        assert_eq!(parse_bitrate("2Mbps"), Ok(2_000_000));
        assert!(parse_bitrate("fast").is_err());
    }

    #[test]
    fn named_scenarios_from_toml() {
        let scenarios = parse_scenarios(
            r#"
            [room-of-ten]
            publishers = 10
            video_bitrate = 1500000
            duration = "30s"

            [lossy]
            publishers = 4
            impairment = { loss = 0.03, delay = "20ms" }

            [churn]
            publishers = 4
            churn = { rate = 2.0, stay = "5s" }
            "#,
        )
        .unwrap();
        let ten = &scenarios["room-of-ten"];
        assert_eq!(ten.publishers, 10);
        assert_eq!(ten.duration, Duration::from_secs(30));
        assert_eq!(ten.rooms, 1, "unnamed keys keep their defaults");
        let lossy = &scenarios["lossy"];
        assert_eq!(lossy.impairment.loss, 0.03);
        assert_eq!(lossy.impairment.delay, Duration::from_millis(20));
        let churn = scenarios["churn"].churn.expect("churn");
        assert_eq!(churn.rate, 2.0);
        assert_eq!(churn.stay, Duration::from_secs(5));
        assert_eq!(churn.joins(Duration::from_secs(10)), 20);
        assert!(parse_scenarios("[x]\nno_such_key = 1").is_err());
        assert!(
            parse_scenarios("[x]\nchurn = { rate = 1.0 }").is_err(),
            "stay is needed"
        );
    }

    #[test]
    fn validation_bounds_every_run() {
        assert!(Scenario::default().validate().is_ok());
        let endless = Scenario {
            duration: Duration::from_secs(100_000),
            ..Default::default()
        };
        assert!(endless.validate().is_err());
        let empty = Scenario {
            publishers: 0,
            ..Default::default()
        };
        assert!(empty.validate().is_err());
        let endless_churn = Scenario {
            churn: Some(Churn {
                rate: 1000.0,
                stay: Duration::from_secs(1),
            }),
            duration: Duration::from_secs(60),
            ..Default::default()
        };
        assert!(endless_churn.validate().is_err());
        let simulcast_without_video = Scenario {
            simulcast: true,
            video_bitrate: 0,
            ..Default::default()
        };
        assert!(simulcast_without_video.validate().is_err());
    }

    #[test]
    fn the_impairment_applies_to_the_last_of_each_room() {
        let everybody = Scenario {
            publishers: 3,
            subscribers: 2,
            ..Default::default()
        };
        assert!((0..5).all(|position| everybody.is_impaired(position)));
        let one = Scenario {
            impaired: Some(1),
            ..everybody.clone()
        };
        assert_eq!(
            (0..5)
                .map(|position| one.is_impaired(position))
                .collect::<Vec<_>>(),
            [false, false, false, false, true],
            "the last subscriber"
        );
        let too_many = Scenario {
            impaired: Some(9),
            ..everybody.clone()
        };
        assert!((0..5).all(|position| too_many.is_impaired(position)));
        let none = Scenario {
            impaired: Some(0),
            ..everybody
        };
        assert!(!(0..5).any(|position| none.is_impaired(position)));
    }

    #[test]
    fn the_simulcast_room_of_25_is_the_room_of_25_in_layers_on_a_grid() {
        let scenarios = parse_scenarios(include_str!("../scenarios.toml")).unwrap();
        for scenario in scenarios.values() {
            assert!(scenario.validate().is_ok(), "{scenario:?}");
        }
        let plain = &scenarios["room-of-25"];
        let simulcast = &scenarios["room-of-25-simulcast"];
        assert!(!plain.simulcast && simulcast.simulcast);
        assert_eq!(
            simulcast.tile,
            Some(Tile::of_grid(
                Tile {
                    width: 1920,
                    height: 1080
                },
                5,
                5
            ))
        );
        assert_eq!(
            &Scenario {
                simulcast: false,
                tile: None,
                ..simulcast.clone()
            },
            plain
        );
    }

    #[test]
    fn simulcast_rooms_from_toml() {
        let scenarios = parse_scenarios(
            r#"
            [grid]
            publishers = 25
            simulcast = true
            tile = "384x216"
            impaired = 1
            impairment = { bandwidth = 600000 }
            "#,
        )
        .unwrap();
        let grid = &scenarios["grid"];
        assert!(grid.simulcast);
        assert_eq!(grid.tile, Some("384x216".parse().unwrap()));
        assert_eq!(grid.impaired, Some(1));
        assert!(parse_scenarios("[x]\ntile = \"big\"").is_err());
    }
}
