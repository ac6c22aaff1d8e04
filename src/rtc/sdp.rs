//! A summary of the media sections of a client's SDP: which tracks it sends.
//!
//! The connection core reports a remote track only when its first packet arrives, and never
//! reports that one stopped (a client removing a track only changes its section's direction),
//! so the server reads both from each offer itself: a track is announced to the room as soon
//! as the offer that sends it is answered, and ended when an offer stops sending it.

use crate::ids::Mid;
use crate::signal::protocol::TrackKind;

/// One media section of an SDP, as far as publishing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// The section's `a=mid`.
    pub mid: Mid,
    /// Audio or video, from the `m=` line; `None` for other media (data channels).
    pub kind: Option<TrackKind>,
    /// The stream id of its `a=msid`, if any.
    pub stream: Option<String>,
    /// The track id of its `a=msid`, if any.
    pub track: Option<String>,
    /// Whether the side that wrote the SDP sends media in it.
    pub sends: bool,
}

/// Lists the media sections of `sdp`, in order.
pub fn media_sections(sdp: &str) -> Vec<MediaSection> {
    let mut sections = Vec::new();
    let mut current: Option<(MediaSection, bool)> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            if let Some((section, _)) = current.take() {
                sections.push(section);
            }
            // `m=<media> <port> ...`: port 0 rejects the section.
            let rejected = media.split_whitespace().nth(1) == Some("0");
            let kind = match media.split_whitespace().next() {
                Some("audio") => Some(TrackKind::Audio),
                Some("video") => Some(TrackKind::Video),
                _ => None,
            };
            current = Some((
                MediaSection {
                    mid: Mid::default(),
                    kind,
                    stream: None,
                    track: None,
                    // RFC 3264: sendrecv is the default direction.
                    sends: !rejected,
                },
                rejected,
            ));
            continue;
        }
        let Some((section, rejected)) = current.as_mut() else {
            continue;
        };
        if let Some(mid) = line.strip_prefix("a=mid:") {
            section.mid = Mid::from(mid.trim());
        } else if let Some(msid) = line.strip_prefix("a=msid:") {
            let mut ids = msid.split_whitespace().map(str::to_owned);
            section.stream = ids.next();
            section.track = ids.next();
        } else if matches!(line, "a=sendrecv" | "a=sendonly") {
            section.sends = !*rejected;
        } else if matches!(line, "a=recvonly" | "a=inactive") {
            section.sends = false;
        }
    }
    if let Some((section, _)) = current {
        sections.push(section);
    }
    sections
}

/// Rewrites an offer so that it sends nothing: every media section that sends (`sendrecv`,
/// `sendonly`, or no direction at all, which means `sendrecv`) becomes `inactive`, and so does a
/// session-level direction. Answering the result refuses the offerer's tracks while keeping
/// every section, so the connection itself goes on. Returns the new SDP and the mids of the
/// sections that were refused.
pub fn refuse_sending(sdp: &str) -> (String, Vec<Mid>) {
    let refused: Vec<Mid> = media_sections(sdp)
        .into_iter()
        .filter(|section| section.sends)
        .map(|section| section.mid)
        .collect();
    if refused.is_empty() {
        return (sdp.to_owned(), refused);
    }
    let newline = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = Vec::new();
    // Per media section: whether it is rejected (port 0) and whether it states a direction.
    let mut section: Option<(bool, bool)> = None;
    let close_section = |lines: &mut Vec<String>, section: Option<(bool, bool)>| {
        if let Some((rejected, directed)) = section
            && !rejected
            && !directed
        {
            lines.push("a=inactive".to_owned());
        }
    };
    for line in sdp
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty())
    {
        if let Some(media) = line.strip_prefix("m=") {
            close_section(&mut lines, section.take());
            section = Some((media.split_whitespace().nth(1) == Some("0"), false));
            lines.push(line.to_owned());
            continue;
        }
        let direction = matches!(
            line,
            "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
        );
        if direction && let Some((_, directed)) = section.as_mut() {
            *directed = true;
        }
        if matches!(line, "a=sendrecv" | "a=sendonly") {
            lines.push("a=inactive".to_owned());
        } else {
            lines.push(line.to_owned());
        }
    }
    close_section(&mut lines, section);
    let mut rewritten = lines.join(newline);
    rewritten.push_str(newline);
    (rewritten, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1 2\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:s1 mic\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=msid:s1 cam\r\na=inactive\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly\r\n";

    #[test]
    fn reads_mids_tracks_and_directions() {
        assert_eq!(
            media_sections(OFFER),
            vec![
                MediaSection {
                    mid: "0".into(),
                    kind: Some(TrackKind::Audio),
                    stream: Some("s1".into()),
                    track: Some("mic".into()),
                    sends: true
                },
                MediaSection {
                    mid: "1".into(),
                    kind: Some(TrackKind::Video),
                    stream: Some("s1".into()),
                    track: Some("cam".into()),
                    sends: false
                },
                MediaSection {
                    mid: "2".into(),
                    kind: Some(TrackKind::Video),
                    stream: None,
                    track: None,
                    sends: false
                },
            ]
        );
    }

    #[test]
    fn a_data_channel_section_is_neither_audio_nor_video() {
        let sections = media_sections(
            "v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n",
        );
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].kind, None);
        assert_eq!(sections[0].track, None);
    }

    #[test]
    fn no_media_no_sections() {
        assert!(media_sections("v=0\r\ns=-\r\n").is_empty());
        assert!(media_sections("").is_empty());
    }

    #[test]
    fn refusing_sending_leaves_every_section_but_makes_it_inactive() {
        let (rewritten, refused) = refuse_sending(OFFER);
        assert_eq!(refused, vec![Mid::from("0")]);
        assert!(
            media_sections(&rewritten)
                .iter()
                .all(|section| !section.sends)
        );
        assert_eq!(media_sections(&rewritten).len(), 3);
        assert_eq!(
            rewritten,
            OFFER
                .replace("a=sendonly\r\na=msid:s1 mic", "a=inactive\r\na=msid:s1 mic")
                .replace(
                    "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=sendonly",
                    "m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive"
                )
        );
        // A section without a direction sends and receives: it gets one.
        let implicit = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=recvonly\r\n";
        let (rewritten, refused) = refuse_sending(implicit);
        assert_eq!(refused, vec![Mid::from("a")]);
        assert_eq!(
            rewritten,
            "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=inactive\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v\r\na=recvonly\r\n"
        );
        // Nothing sent, nothing changed.
        let (same, refused) = refuse_sending(&rewritten);
        assert!(refused.is_empty());
        assert_eq!(same, rewritten);
    }
}
