//! How a session ends: why, what the client is told last, and the close code it gets.

use std::time::Duration;

use crate::signal::protocol::{ErrorCode, ServerMessage};

/// WebSocket close codes the server uses.
pub mod close_code {
    /// The session ended normally (`leave`).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// The client broke the WebSocket protocol (an unexpected continuation frame, reserved
    /// bits or opcodes, a fragmented control frame...).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The client kept sending faster than allowed after being told `rate_limited`.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame was larger than [`MAX_FRAME_BYTES`](crate::signal::session::MAX_FRAME_BYTES).
    pub const TOO_BIG: u16 = 1009;
    /// The media connection failed, did not connect in time, or the client did not answer an
    /// offer in time.
    pub const MEDIA_FAILED: u16 = 4001;
    /// The client did not read its messages.
    pub const NOT_READING: u16 = 4002;
    /// A newer session with the same identity joined the room.
    pub const REPLACED: u16 = 4003;
    /// The client did not `join`, or did not send its first `offer`, in time.
    pub const SETUP_TIMEOUT: u16 = 4004;
    /// The socket answered no ping in time.
    pub const UNRESPONSIVE: u16 = 4005;
    /// An operator removed the participant, or closed its room, through the API.
    pub const REMOVED: u16 = 4006;
    /// The room now lives on another node of the cluster: join again.
    pub const ROOM_MOVED: u16 = 4007;
    /// The node cannot place the room now (its cluster directory is out of reach).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// How long the session waits for its last frames to reach the client and for the client to
/// close the socket in turn.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// What the client did not do in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overdue {
    /// `join`, after the socket opened.
    Join,
    /// The first `offer`, after `joined`.
    Offer,
    /// A connected media connection, after an answer gave it something to connect.
    Media,
    /// An `answer` to the server's offer.
    Answer,
    /// A pong, after a ping.
    Pong,
}

impl Overdue {
    fn error_code(self) -> ErrorCode {
        match self {
            Overdue::Join => ErrorCode::JoinTimeout,
            Overdue::Offer => ErrorCode::OfferTimeout,
            Overdue::Media => ErrorCode::MediaTimeout,
            Overdue::Answer => ErrorCode::AnswerTimeout,
            Overdue::Pong => ErrorCode::PingTimeout,
        }
    }

    fn close_code(self) -> u16 {
        match self {
            Overdue::Join | Overdue::Offer => close_code::SETUP_TIMEOUT,
            Overdue::Media | Overdue::Answer => close_code::MEDIA_FAILED,
            Overdue::Pong => close_code::UNRESPONSIVE,
        }
    }

    fn explain(self, after: Duration) -> String {
        let secs = after.as_secs_f64();
        match self {
            Overdue::Join => format!("no `join` within {secs} s of opening the socket"),
            Overdue::Offer => format!(
                "no `offer` within {secs} s of `joined`: send one right after joining, an empty \
                 one when publishing nothing"
            ),
            Overdue::Media => {
                format!("the media connection did not connect within {secs} s of its answer")
            }
            Overdue::Answer => format!("the server's offer was not answered within {secs} s"),
            Overdue::Pong => format!("no ping was answered within {secs} s"),
        }
    }

    fn close_reason(self) -> &'static str {
        match self {
            Overdue::Join => "join timeout",
            Overdue::Offer => "offer timeout",
            Overdue::Media => "media timeout",
            Overdue::Answer => "answer timeout",
            Overdue::Pong => "ping timeout",
        }
    }
}

/// Why the session ends.
#[derive(Debug)]
pub enum Ending {
    /// The client said `leave`.
    Left,
    /// The socket closed or failed.
    SocketClosed,
    /// A frame exceeded the size limit.
    FrameTooBig,
    /// A text frame was not UTF-8.
    InvalidUtf8,
    /// The client broke the WebSocket protocol.
    ProtocolViolation,
    /// The media connection failed.
    MediaFailed(String),
    /// The client stopped reading.
    NotReading,
    /// The server is shutting down.
    ShuttingDown,
    /// A newer session with the same identity took this one's place in the room.
    Replaced,
    /// An operator removed the participant through the API.
    Removed,
    /// The client kept sending after being rate limited.
    RateAbuse,
    /// The room lives on another node, at this signaling URL.
    Redirected(String),
    /// The room moved to another node while the participant was in it.
    Moved,
    /// The room could not be found or placed: the cluster's directory is out of reach.
    ClusterUnavailable(String),
    /// The client did not do something in time.
    TimedOut {
        /// What.
        overdue: Overdue,
        /// The time it had.
        after: Duration,
    },
}

/// The session's last word on the socket.
#[derive(Debug)]
pub struct Farewell {
    /// Why, for the client, when it should be told.
    pub message: Option<ServerMessage>,
    /// The close code.
    pub code: u16,
    /// The close frame's reason.
    pub reason: &'static str,
    /// The close goes ahead of whatever is still queued, which is dropped: the client is not
    /// reading it anyway, and the close would otherwise never reach it.
    pub at_once: bool,
}

impl Ending {
    /// The socket error's meaning: a frame too big, not UTF-8, a broken protocol, or a socket
    /// that is simply gone.
    pub fn from_socket_error(error: axum::Error) -> Ending {
        use tungstenite::error::{Error, ProtocolError};
        match error.into_inner().downcast_ref::<Error>() {
            Some(Error::Capacity(_)) => Ending::FrameTooBig,
            Some(Error::Utf8(_)) => Ending::InvalidUtf8,
            // The client went without a close frame: there is nobody to tell anything.
            Some(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                Ending::SocketClosed
            }
            Some(Error::Protocol(_)) => Ending::ProtocolViolation,
            _ => Ending::SocketClosed,
        }
    }

    /// What the client is told last, and how the socket closes.
    pub fn farewell(&self) -> Farewell {
        let closing = |code, reason| Farewell {
            message: None,
            code,
            reason,
            at_once: false,
        };
        let telling = |code, message: ServerMessage, reason| Farewell {
            message: Some(message),
            code,
            reason,
            at_once: false,
        };
        match self {
            Ending::Left | Ending::SocketClosed => closing(close_code::NORMAL, "bye"),
            Ending::FrameTooBig => closing(close_code::TOO_BIG, "message too big"),
            Ending::InvalidUtf8 => closing(close_code::INVALID_DATA, "text frame not UTF-8"),
            Ending::ProtocolViolation => {
                closing(close_code::PROTOCOL_ERROR, "WebSocket protocol error")
            }
            Ending::MediaFailed(reason) => telling(
                close_code::MEDIA_FAILED,
                ServerMessage::error(ErrorCode::Internal, reason.clone()),
                "media connection failed",
            ),
            Ending::NotReading => Farewell {
                at_once: true,
                ..closing(close_code::NOT_READING, "not reading")
            },
            Ending::ShuttingDown => telling(
                close_code::GOING_AWAY,
                ServerMessage::Shutdown {
                    reason: "the server is shutting down".to_owned(),
                },
                "server shutting down",
            ),
            Ending::Replaced => telling(
                close_code::REPLACED,
                ServerMessage::error(
                    ErrorCode::Replaced,
                    "a newer session with the same identity joined the room; this one has left",
                ),
                "replaced",
            ),
            Ending::Removed => telling(
                close_code::REMOVED,
                ServerMessage::error(
                    ErrorCode::Removed,
                    "an operator removed this participant from the room",
                ),
                "removed",
            ),
            Ending::RateAbuse => telling(
                close_code::POLICY_VIOLATION,
                ServerMessage::error(
                    ErrorCode::RateLimited,
                    "too many messages after being told to slow down: closing the connection",
                ),
                "too many messages",
            ),
            Ending::Redirected(url) => telling(
                close_code::NORMAL,
                ServerMessage::Redirect { url: url.clone() },
                "redirected",
            ),
            Ending::Moved => telling(
                close_code::ROOM_MOVED,
                ServerMessage::error(
                    ErrorCode::RoomMoved,
                    "this room now lives on another node of the cluster: join again to find it",
                ),
                "room moved",
            ),
            Ending::ClusterUnavailable(reason) => telling(
                close_code::TRY_AGAIN_LATER,
                ServerMessage::error(ErrorCode::ClusterUnavailable, reason.clone()),
                "cluster unavailable",
            ),
            Ending::TimedOut { overdue, after } => telling(
                overdue.close_code(),
                ServerMessage::error(overdue.error_code(), overdue.explain(*after)),
                overdue.close_reason(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_code(farewell: &Farewell) -> Option<ErrorCode> {
        match &farewell.message {
            Some(ServerMessage::Error { code, .. }) => Some(*code),
            _ => None,
        }
    }

    #[test]
    fn each_timeout_says_which_and_closes_with_its_code() {
        let cases = [
            (Overdue::Join, ErrorCode::JoinTimeout, 4004),
            (Overdue::Offer, ErrorCode::OfferTimeout, 4004),
            (Overdue::Media, ErrorCode::MediaTimeout, 4001),
            (Overdue::Answer, ErrorCode::AnswerTimeout, 4001),
            (Overdue::Pong, ErrorCode::PingTimeout, 4005),
        ];
        for (overdue, error, code) in cases {
            let farewell = Ending::TimedOut {
                overdue,
                after: Duration::from_secs(10),
            }
            .farewell();
            assert_eq!(error_code(&farewell), Some(error), "{overdue:?}");
            assert_eq!(farewell.code, code, "{overdue:?}");
            assert!(!farewell.at_once, "{overdue:?} is told in order");
        }
    }

    #[test]
    fn only_a_client_that_stops_reading_is_closed_ahead_of_its_queue() {
        let farewell = Ending::NotReading.farewell();
        assert!(farewell.at_once);
        assert_eq!(farewell.code, close_code::NOT_READING);
        assert!(farewell.message.is_none(), "it would not be read");
        for ending in [
            Ending::Left,
            Ending::Replaced,
            Ending::Removed,
            Ending::ShuttingDown,
        ] {
            assert!(!ending.farewell().at_once, "{ending:?}");
        }
    }

    #[test]
    fn socket_errors_map_to_their_close_codes() {
        use tungstenite::error::{CapacityError, Error, ProtocolError};
        let code = |error: Error| {
            Ending::from_socket_error(axum::Error::new(error))
                .farewell()
                .code
        };
        assert_eq!(code(Error::Utf8("invalid".to_owned())), 1007);
        assert_eq!(
            code(Error::Protocol(ProtocolError::UnexpectedContinueFrame)),
            1002
        );
        assert_eq!(
            code(Error::Protocol(ProtocolError::NonZeroReservedBits)),
            1002
        );
        assert_eq!(
            code(Error::Capacity(CapacityError::MessageTooLong {
                size: 2,
                max_size: 1
            })),
            1009
        );
        assert_eq!(
            code(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)),
            1000
        );
        assert_eq!(code(Error::ConnectionClosed), 1000);
    }
}
