//! The `view` message, checked and turned into what the connection takes.

use crate::media::allocation::View;
use crate::rtc::allocating::ViewRequest;
use crate::signal::protocol::{MAX_VIEW_SIDE, MAX_VIEWS, TrackView};

/// Why a `view` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// No entries, or too many.
    #[error("a `view` names 1 to {MAX_VIEWS} tracks; this one names {0}")]
    Count(usize),
    /// A tile side beyond any screen.
    #[error(
        "a tile is at most {MAX_VIEW_SIDE} device pixels on a side; `{track}` is {width}x{height}"
    )]
    TooLarge {
        /// The track named.
        track: String,
        /// The width given.
        width: u32,
        /// The height given.
        height: u32,
    },
}

/// Checks a `view`'s entries; nothing is applied unless every one is sound.
pub fn view_requests(tracks: Vec<TrackView>) -> Result<Vec<ViewRequest>, ViewError> {
    if tracks.is_empty() || tracks.len() > MAX_VIEWS {
        return Err(ViewError::Count(tracks.len()));
    }
    if let Some(track) = tracks
        .iter()
        .find(|track| track.width > MAX_VIEW_SIDE || track.height > MAX_VIEW_SIDE)
    {
        return Err(ViewError::TooLarge {
            track: track.track.clone(),
            width: track.width,
            height: track.height,
        });
    }
    Ok(tracks
        .into_iter()
        .map(|track| ViewRequest {
            participant: track.participant,
            track: track.track,
            view: View {
                visible: track.visible,
                width: track.width,
                height: track.height,
            },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ParticipantId;

    fn entry(width: u32, height: u32) -> TrackView {
        TrackView {
            participant: ParticipantId::from("PA_1"),
            track: "t".to_owned(),
            width,
            height,
            visible: true,
        }
    }

    #[test]
    fn sound_views_pass_and_the_rest_are_refused() {
        let requests = view_requests(vec![entry(640, 360)]).expect("sound");
        assert_eq!(requests[0].view.width, 640);
        assert_eq!(view_requests(vec![]), Err(ViewError::Count(0)));
        assert_eq!(
            view_requests(vec![entry(640, 360); MAX_VIEWS + 1]),
            Err(ViewError::Count(MAX_VIEWS + 1))
        );
        assert!(matches!(
            view_requests(vec![entry(640, 360), entry(MAX_VIEW_SIDE + 1, 10)]),
            Err(ViewError::TooLarge { .. })
        ));
        assert!(view_requests(vec![entry(MAX_VIEW_SIDE, 0)]).is_ok());
    }
}
