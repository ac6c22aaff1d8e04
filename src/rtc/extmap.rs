//! The RTP header extension ids a client's SDP gives (`a=extmap:<id>[/<direction>] <uri>`).
//!
//! All media of a connection travel bundled in one RTP session, whose extension ids are one
//! mapping (the connection core keeps them per connection too), so one id per URI holds for
//! every track the client sends.

use crate::media::audio_level::AUDIO_LEVEL_URI;

/// The id of the RFC 6464 audio level extension in the audio sections of `sdp`, if it names
/// one there.
pub fn audio_level_id(sdp: &str) -> Option<u8> {
    let mut in_audio = false;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(media) = line.strip_prefix("m=") {
            in_audio = media.split_whitespace().next() == Some("audio");
        } else if in_audio && let Some(id) = extension_id(line, AUDIO_LEVEL_URI) {
            return Some(id);
        }
    }
    None
}

/// The id `line` maps `uri` to, if it is such an `a=extmap` line with a valid id (1..=255, as
/// the one- and two-byte header forms allow).
fn extension_id(line: &str, uri: &str) -> Option<u8> {
    let mut fields = line.strip_prefix("a=extmap:")?.split_whitespace();
    let id = fields.next()?.split('/').next()?;
    if fields.next()? != uri {
        return None;
    }
    id.parse::<u8>().ok().filter(|id| *id != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_audio_level_id_of_the_audio_sections() {
        let sdp = "v=0\r\ns=-\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n\
            a=extmap:7 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n\
            a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
            a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(audio_level_id(sdp), Some(1));
    }

    #[test]
    fn takes_a_direction_and_attributes_and_refuses_bad_ids() {
        let section = |line: &str| format!("m=audio 9 RTP/SAVPF 111\n{line}\n");
        assert_eq!(
            audio_level_id(&section(
                "a=extmap:3/sendonly urn:ietf:params:rtp-hdrext:ssrc-audio-level vad=on"
            )),
            Some(3)
        );
        for line in [
            "a=extmap:0 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:256 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:x urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "a=extmap:2 urn:ietf:params:rtp-hdrext:csrc-audio-level",
            "a=extmap:2",
        ] {
            assert_eq!(audio_level_id(&section(line)), None, "{line}");
        }
        assert_eq!(audio_level_id("v=0\r\n"), None);
    }
}
