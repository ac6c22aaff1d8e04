//! Adaptive stream from the subscriber's side: the tile each received video is shown in, told
//! to the server with the `view` message (docs/signaling.md), so it sends no layer larger than
//! the tile needs.
//!
//! A synthetic subscriber shows every received video in a tile of one size, as a grid of equal
//! tiles does. It declares each video once it is announced, coalescing what is announced
//! close together into one message, at most [`VIEW_INTERVAL`] apart, as the browser client
//! does.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The most entries one `view` message carries.
pub const MAX_VIEW_ENTRIES: usize = 64;
/// The least time between two `view` messages: at most 4 a second.
pub const VIEW_INTERVAL: Duration = Duration::from_millis(250);
/// The largest tile side the protocol allows, device pixels.
pub const MAX_TILE_SIDE: u32 = 16_384;

/// The rendered size of a tile, in device pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl Tile {
    /// The tile of each cell of a `columns` × `rows` grid on a `screen`.
    pub fn of_grid(screen: Tile, columns: u32, rows: u32) -> Tile {
        Tile {
            width: screen.width / columns.max(1),
            height: screen.height / rows.max(1),
        }
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Tile {
    type Err = String;

    /// Parses `384x216`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wrong = || format!("`{text}` is not a tile size like 384x216");
        let (width, height) = text.trim().split_once(['x', 'X']).ok_or_else(wrong)?;
        let side = |side: &str| {
            side.trim()
                .parse::<u32>()
                .ok()
                .filter(|side| *side <= MAX_TILE_SIDE)
                .ok_or_else(wrong)
        };
        Ok(Tile {
            width: side(width)?,
            height: side(height)?,
        })
    }
}

impl Serialize for Tile {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Tile {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One received video and the tile it is shown in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileView {
    /// The publisher, as in `track_published`.
    pub participant: String,
    /// The publisher's track id, as in `track_published`.
    pub track: String,
    /// The tile.
    pub tile: Tile,
    /// Whether the tile is on screen.
    pub visible: bool,
}

/// The `view` messages declaring `views`, at most [`MAX_VIEW_ENTRIES`] entries each.
pub fn view_messages(views: &[TileView]) -> Vec<String> {
    views
        .chunks(MAX_VIEW_ENTRIES)
        .map(|chunk| {
            let tracks: Vec<_> = chunk
                .iter()
                .map(|view| {
                    json!({
                        "participant": view.participant,
                        "track": view.track,
                        "width": view.tile.width,
                        "height": view.tile.height,
                        "visible": view.visible,
                    })
                })
                .collect();
            json!({"type": "view", "tracks": tracks}).to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_parse_and_print() {
        let tile: Tile = "384x216".parse().unwrap();
        assert_eq!(
            tile,
            Tile {
                width: 384,
                height: 216
            }
        );
        assert_eq!(tile.to_string(), "384x216");
        assert!("384".parse::<Tile>().is_err());
        assert!("wide x tall".parse::<Tile>().is_err());
        assert!("20000x10".parse::<Tile>().is_err());
        let screen = Tile {
            width: 1920,
            height: 1080,
        };
        assert_eq!(Tile::of_grid(screen, 5, 5), tile);
        assert_eq!(
            serde_json::to_string(&tile).unwrap(),
            "\"384x216\"",
            "scenarios write it as a string"
        );
        assert_eq!(
            serde_json::from_str::<Tile>("\"640x360\"").unwrap().width,
            640
        );
    }

    #[test]
    fn views_are_sent_in_messages_of_at_most_64_entries() {
        let views: Vec<TileView> = (0..70)
            .map(|index| TileView {
                participant: format!("PA_{index}"),
                track: format!("video{index}"),
                tile: Tile {
                    width: 384,
                    height: 216,
                },
                visible: true,
            })
            .collect();
        let messages = view_messages(&views);
        assert_eq!(messages.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&messages[0]).unwrap();
        assert_eq!(first["type"], "view");
        assert_eq!(first["tracks"].as_array().unwrap().len(), 64);
        assert_eq!(
            first["tracks"][0],
            json!({"participant": "PA_0", "track": "video0", "width": 384, "height": 216, "visible": true})
        );
        let second: serde_json::Value = serde_json::from_str(&messages[1]).unwrap();
        assert_eq!(second["tracks"].as_array().unwrap().len(), 6);
        assert!(view_messages(&[]).is_empty());
    }

    #[test]
    fn the_server_reads_the_view_message() {
        let view = TileView {
            participant: "PA_0b1c2d3e4f50".to_owned(),
            track: "video0".to_owned(),
            tile: Tile {
                width: 384,
                height: 216,
            },
            visible: true,
        };
        let text = &view_messages(std::slice::from_ref(&view))[0];
        match switchyard::signal::protocol::ClientMessage::parse(text) {
            Ok(switchyard::signal::protocol::ClientMessage::View { tracks }) => {
                assert_eq!(tracks.len(), 1);
                assert_eq!(tracks[0].participant.to_string(), view.participant);
                assert_eq!((tracks[0].width, tracks[0].height), (384, 216));
                assert!(tracks[0].visible);
            }
            other => panic!("not a view: {other:?}"),
        }
    }
}
