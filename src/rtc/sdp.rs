//! A summary of the media sections of a client's SDP: which tracks it sends.
//!
//! The connection core reports a remote track only when its first packet arrives, and never
//! reports that one stopped (a client removing a track only changes its section's direction),
//! so the server reads both from each offer itself: a track is announced to the room as soon
//! as the offer that sends it is answered, and ended when an offer stops sending it.
//!
//! It also checks, before the core sees a description, that the core can tell the client's
//! streams apart ([`check_streams_declared`]).

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
    /// Whether it declares the SSRC of what it sends (`a=ssrc`).
    pub declares_ssrc: bool,
    /// Whether it declares RTP stream ids (`a=rid`), which name its streams instead.
    pub declares_rid: bool,
    /// The RTP stream ids it sends (`a=rid:<id> send`), in order: its simulcast layers.
    pub rids: Vec<String>,
    /// Whether it says its content is a presentation (`a=content:slides`, RFC 4796).
    pub slides: bool,
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
                    declares_ssrc: false,
                    declares_rid: false,
                    rids: Vec::new(),
                    slides: false,
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
        } else if line.starts_with("a=ssrc:") {
            section.declares_ssrc = true;
        } else if let Some(rid) = line.strip_prefix("a=rid:") {
            section.declares_rid = true;
            let mut fields = rid.split_whitespace();
            if let (Some(id), Some("send")) = (fields.next(), fields.next()) {
                section.rids.push(id.to_owned());
            }
        } else if let Some(content) = line.strip_prefix("a=content:") {
            section.slides = content.split(',').any(|value| value.trim() == "slides");
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

/// Media sections that send a track the connection core could not tell apart from the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "media section{plural} {mids} send{verb} a track without declaring its SSRC: the server tells \
     a client's streams apart by the `a=ssrc` lines of its SDP, or by `a=rid` with the MID and \
     RID header extensions, not by the MID header extension alone",
    plural = if self.mids.len() == 1 { "" } else { "s" },
    verb = if self.mids.len() == 1 { "s" } else { "" },
    mids = self.mids.iter().map(|mid| format!("`{mid}`")).collect::<Vec<_>>().join(", ")
)]
pub struct UndeclaredStreams {
    /// The sections' mids.
    pub mids: Vec<Mid>,
}

/// Checks that every audio or video section that sends a track (names one in `a=msid`) says
/// how to recognise its packets: by the SSRCs it declares, or by RTP stream ids.
///
/// The connection core learns which section a packet belongs to from its SSRC. A section that
/// declares none is taken on trust only while the connection has a single media section, and
/// only through its first packet; otherwise the core fails to apply the description at all,
/// which a client could then use to end its own connection in a confusing way. RTP stream ids
/// (simulcast) are matched by the MID and RID header extensions, which the core reads; the MID
/// extension alone (RFC 8843, section 9.2) it does not.
pub fn check_streams_declared(sections: &[MediaSection]) -> Result<(), UndeclaredStreams> {
    let mids: Vec<Mid> = sections
        .iter()
        .filter(|section| {
            section.sends
                && section.kind.is_some()
                && section.track.is_some()
                && !section.declares_ssrc
                && !section.declares_rid
        })
        .map(|section| section.mid.clone())
        .collect();
    if mids.is_empty() {
        Ok(())
    } else {
        Err(UndeclaredStreams { mids })
    }
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
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\na=msid:s1 mic\r\na=ssrc:11 cname:c\r\n\
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
                    sends: true,
                    declares_ssrc: true,
                    declares_rid: false,
                    rids: vec![],
                    slides: false,
                },
                MediaSection {
                    mid: "1".into(),
                    kind: Some(TrackKind::Video),
                    stream: Some("s1".into()),
                    track: Some("cam".into()),
                    sends: false,
                    declares_ssrc: false,
                    declares_rid: false,
                    rids: vec![],
                    slides: false,
                },
                MediaSection {
                    mid: "2".into(),
                    kind: Some(TrackKind::Video),
                    stream: None,
                    track: None,
                    sends: false,
                    declares_ssrc: false,
                    declares_rid: false,
                    rids: vec![],
                    slides: false,
                },
            ]
        );
    }

    #[test]
    fn reads_simulcast_layers_and_presentations() {
        let offer = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=sendonly\r\n\
            a=msid:s cam\r\na=rid:q send\r\na=rid:h send\r\na=rid:f send\r\n\
            a=rid:x recv\r\na=simulcast:send q;h;f\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendonly\r\na=msid:s2 screen\r\n\
            a=content:slides\r\na=ssrc:5 cname:c\r\n";
        let sections = media_sections(offer);
        assert_eq!(sections[0].rids, vec!["q", "h", "f"]);
        assert!(sections[0].declares_rid && !sections[0].slides);
        assert!(sections[1].rids.is_empty() && sections[1].slides);
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

    /// A section sending `track` with the given extra lines.
    fn sending(mid: &str, kind: &str, lines: &str) -> String {
        format!(
            "m={kind} 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:{mid}\r\na=sendonly\r\na=msid:s t{mid}\r\n{lines}"
        )
    }

    #[test]
    fn sending_sections_must_declare_their_ssrcs_or_rids() {
        let check = |sdp: String| check_streams_declared(&media_sections(&sdp));
        assert_eq!(check(OFFER.to_owned()), Ok(()));
        assert_eq!(check(sending("0", "video", "a=ssrc:5 cname:x\r\n")), Ok(()));
        assert_eq!(
            check(sending(
                "0",
                "video",
                "a=rid:h send\r\na=simulcast:send h\r\n"
            )),
            Ok(())
        );
        let error = check(format!(
            "v=0\r\n{}{}{}",
            sending("0", "video", ""),
            sending("1", "audio", "a=ssrc-group:FID 1 2\r\n"),
            sending("2", "audio", "a=ssrc:7 cname:x\r\n"),
        ))
        .expect_err("two sections declare no SSRC");
        assert_eq!(error.mids, vec![Mid::from("0"), Mid::from("1")]);
        let message = error.to_string();
        assert!(
            message.starts_with("media sections `0`, `1` send a track without declaring its SSRC"),
            "{message}"
        );
        assert!(message.contains("`a=ssrc`"), "{message}");
        // One section alone is refused too: the core would take it on trust only until the
        // server adds a section of its own.
        assert_eq!(
            check(sending("a", "audio", "")).map_err(|error| error.to_string()),
            Err(
                "media section `a` sends a track without declaring its SSRC: the server tells \
                 a client's streams apart by the `a=ssrc` lines of its SDP, or by `a=rid` with \
                 the MID and RID header extensions, not by the MID header extension alone"
                    .to_owned()
            )
        );
    }

    #[test]
    fn sections_that_send_no_track_need_no_ssrc() {
        let check = |sdp: &str| check_streams_declared(&media_sections(sdp));
        // Receiving, inactive, rejected, a data channel, or no track named.
        assert_eq!(
            check(
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\na=recvonly\r\na=msid:s t\r\n\
                 m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\na=msid:s t\r\n\
                 m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:s t\r\n\
                 m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:3\r\n\
                 m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:4\r\na=sendrecv\r\n"
            ),
            Ok(())
        );
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

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Lines an offer is made of, right and wrong, in any order.
        fn line() -> impl Strategy<Value = String> {
            prop_oneof![
                prop::sample::select(vec![
                    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                    "m=video 9 UDP/TLS/RTP/SAVPF 96",
                    "m=video 0 UDP/TLS/RTP/SAVPF 96",
                    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
                    "m=",
                    "m=audio",
                    "a=sendrecv",
                    "a=sendonly",
                    "a=recvonly",
                    "a=inactive",
                    "a=msid:s t",
                    "a=msid:",
                    "a=msid:only-a-stream",
                    "a=ssrc:1 cname:x",
                    "a=ssrc-group:FID 1 2",
                    "a=rid:h send",
                    "a=mid:",
                    "a=mid:0",
                    "a=mid:1",
                    "v=0",
                    "",
                ])
                .prop_map(str::to_owned),
                "[ -~]{0,20}",
                any::<String>(),
            ]
        }

        fn sdp() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(line(), 0..30),
                prop::sample::select(vec!["\r\n", "\n"]),
            )
                .prop_map(|(lines, newline)| lines.join(newline))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Any text is read without panicking; refusing to send leaves every section in
            /// place, sending nothing, and needs no SSRC; refusing twice changes nothing more.
            #[test]
            fn refusing_to_send_keeps_the_sections_and_sends_nothing(sdp in sdp()) {
                let sections = media_sections(&sdp);
                let (refused, mids) = refuse_sending(&sdp);
                let after = media_sections(&refused);
                prop_assert_eq!(after.len(), sections.len());
                prop_assert!(after.iter().all(|section| !section.sends));
                prop_assert_eq!(
                    after.iter().map(|section| &section.mid).collect::<Vec<_>>(),
                    sections.iter().map(|section| &section.mid).collect::<Vec<_>>()
                );
                prop_assert_eq!(
                    mids,
                    sections
                        .iter()
                        .filter(|section| section.sends)
                        .map(|section| section.mid.clone())
                        .collect::<Vec<_>>()
                );
                prop_assert_eq!(check_streams_declared(&after), Ok(()));
                let (again, none) = refuse_sending(&refused);
                prop_assert!(none.is_empty());
                prop_assert_eq!(media_sections(&again), after);
            }

            /// Only sections that send a named audio or video track without an SSRC or RID
            /// are refused, and all of them are.
            #[test]
            fn undeclared_streams_are_exactly_those_sent_without_ssrc_or_rid(sdp in sdp()) {
                let sections = media_sections(&sdp);
                let undeclared: Vec<Mid> = sections
                    .iter()
                    .filter(|s| s.sends && s.kind.is_some() && s.track.is_some())
                    .filter(|s| !s.declares_ssrc && !s.declares_rid)
                    .map(|s| s.mid.clone())
                    .collect();
                match check_streams_declared(&sections) {
                    Ok(()) => prop_assert!(undeclared.is_empty()),
                    Err(error) => {
                        prop_assert!(error.to_string().contains("`a=ssrc`"));
                        prop_assert_eq!(error.mids, undeclared);
                    }
                }
            }
        }
    }
}
