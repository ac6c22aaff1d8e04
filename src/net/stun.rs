//! The one thing the media port reads from a datagram before a connection owns its sender: the
//! USERNAME of a STUN binding request, whose first half is the ufrag the server issued.
//!
//! Written out rather than parsed with a STUN library because it runs for every datagram from
//! an unknown address, a flood included: it neither allocates nor copies, and stops at the
//! first thing that does not fit.

/// RFC 5389's fixed header: type, length, magic cookie, transaction id.
const HEADER_LEN: usize = 20;
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;

/// Whether `datagram` is STUN: RFC 7983's first byte (0 to 3, and a STUN type's top two bits
/// are zero) and the magic cookie.
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN && datagram[0] < 2 && datagram[4..8] == MAGIC_COOKIE
}

/// The local (server's) ufrag a binding request is addressed to: its USERNAME up to the `:`
/// (RFC 8445 7.2.2: `server-ufrag:client-ufrag`). `None` for anything else.
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&str> {
    if !is_stun(datagram) || u16::from_be_bytes([datagram[0], datagram[1]]) != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let mut attributes = datagram.get(HEADER_LEN..HEADER_LEN + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let length = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + length)?;
        if kind == USERNAME {
            let (local, _remote) = std::str::from_utf8(value).ok()?.split_once(':')?;
            return Some(local);
        }
        // Attribute values are padded to a multiple of four bytes.
        attributes = attributes.get(4 + length.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::message::{
        BINDING_REQUEST as REQUEST, BINDING_SUCCESS, Message, Setter, TransactionId,
    };
    use rtc::stun::textattrs::TextAttribute;

    fn encoded(kind: rtc::stun::message::MessageType, username: Option<&str>) -> Vec<u8> {
        let mut message = Message::new();
        let mut setters: Vec<Box<dyn Setter>> =
            vec![Box::new(kind), Box::new(TransactionId::new())];
        if let Some(username) = username {
            setters.push(Box::new(TextAttribute::new(
                ATTR_USERNAME,
                username.to_owned(),
            )));
        }
        message.build(&setters).expect("a message builds");
        message.raw
    }

    #[test]
    fn reads_the_server_ufrag_of_a_binding_request() {
        let request = encoded(REQUEST, Some("srvufrag:browser1"));
        assert!(is_stun(&request));
        assert_eq!(binding_request_ufrag(&request), Some("srvufrag"));
    }

    #[test]
    fn finds_the_username_behind_other_padded_attributes() {
        let mut message = Message::new();
        message
            .build(&[
                Box::new(REQUEST),
                Box::new(TransactionId::new()),
                Box::new(TextAttribute::new(
                    rtc::stun::attributes::ATTR_SOFTWARE,
                    "odd".to_owned(),
                )),
                Box::new(TextAttribute::new(ATTR_USERNAME, "abc:defg".to_owned())),
            ])
            .expect("a message builds");
        assert_eq!(binding_request_ufrag(&message.raw), Some("abc"));
    }

    #[test]
    fn ignores_responses_requests_without_a_username_and_other_protocols() {
        assert_eq!(
            binding_request_ufrag(&encoded(BINDING_SUCCESS, Some("a:b"))),
            None
        );
        assert_eq!(binding_request_ufrag(&encoded(REQUEST, None)), None);
        assert_eq!(
            binding_request_ufrag(&encoded(REQUEST, Some("no-colon"))),
            None
        );
        // DTLS (20..63) and RTP (128..191) never pass for STUN.
        let mut dtls = encoded(REQUEST, Some("a:b"));
        dtls[0] = 22;
        assert!(!is_stun(&dtls));
        assert_eq!(binding_request_ufrag(&[0x80; 64]), None);
    }

    #[test]
    fn survives_truncation_and_lying_lengths() {
        let request = encoded(REQUEST, Some("srvufrag:browser1"));
        for cut in 0..request.len() {
            let _ = binding_request_ufrag(&request[..cut]);
        }
        let mut lying = request.clone();
        lying[3] = 0xff;
        assert_eq!(binding_request_ufrag(&lying), None);
        let mut attribute_too_long = request;
        attribute_too_long[HEADER_LEN + 3] = 0xff;
        assert_eq!(binding_request_ufrag(&attribute_too_long), None);
    }
}
