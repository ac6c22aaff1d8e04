//! Offers and answers on a participant's one connection.
//!
//! The client's first offer carries what it publishes. From then on the server offers whenever
//! the set of tracks the participant should receive changes, one negotiation at a time: changes
//! that arrive while an offer is outstanding mark the connection dirty and go into the next one.
//! The client is the polite peer. An offer from the client that crosses one of the server's is
//! ignored; the client rolls its own back when the server's arrives and offers again later.

use std::time::{Duration, Instant};

use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tracing::debug;

use crate::rtc::connection::{Connection, Effects, MAX_PUBLISHED_TRACKS, MediaError, Notice};
use crate::rtc::sdp::{check_streams_declared, media_sections, refuse_sending};
use crate::signal::protocol::IceCandidate;

/// How long the client has to answer a server offer before the session is given up.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// The answer to an offer without media sections: a session with nothing in it.
const EMPTY_SESSION: &str = "v=0\r\no=- 0 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

/// Where the connection is in its negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the client's first offer.
    Idle,
    /// Nothing outstanding.
    Stable,
    /// The server's offer awaits the client's answer.
    AwaitingAnswer {
        /// When it went out.
        since: Instant,
    },
}

/// What to do with a client's offer, given where the negotiation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferVerdict {
    /// Apply and answer it.
    Apply,
    /// It crossed the server's outstanding offer: ignore it (the client rolls back).
    IgnoreGlare,
}

impl Phase {
    /// Glare: the server never rolls back.
    pub fn on_client_offer(self) -> OfferVerdict {
        match self {
            Phase::AwaitingAnswer { .. } => OfferVerdict::IgnoreGlare,
            Phase::Idle | Phase::Stable => OfferVerdict::Apply,
        }
    }

    /// Whether the server may start a negotiation now.
    pub fn may_offer(self) -> bool {
        self == Phase::Stable
    }

    /// When an outstanding offer is overdue.
    pub fn answer_deadline(self) -> Option<Instant> {
        match self {
            Phase::AwaitingAnswer { since } => Some(since + ANSWER_TIMEOUT),
            Phase::Idle | Phase::Stable => None,
        }
    }
}

impl Connection {
    /// When an outstanding offer is overdue, if one is outstanding.
    pub fn answer_deadline(&self) -> Option<Instant> {
        self.phase.answer_deadline()
    }

    /// Applies an offer from the client and answers it; then offers what changed meanwhile.
    pub fn on_offer(
        &mut self,
        sdp: String,
        now: Instant,
        effects: &mut Effects,
    ) -> Result<Vec<Notice>, MediaError> {
        if self.phase.on_client_offer() == OfferVerdict::IgnoreGlare {
            // The client, being polite, rolls its offer back when ours reaches it, and offers
            // again once it has answered.
            debug!("ignoring a client offer that crossed the server's");
            return Ok(Vec::new());
        }
        let (sdp, refused) = if self.publishing_allowed {
            (sdp, Vec::new())
        } else {
            // Answering the offer as if it sent nothing refuses its tracks and keeps the
            // connection, so the participant can still receive.
            refuse_sending(&sdp)
        };
        let sections = media_sections(&sdp);
        let audio_level_id = crate::rtc::extmap::audio_level_id(&sdp);
        let sending = sections.iter().filter(|section| section.sends).count();
        if sending > MAX_PUBLISHED_TRACKS {
            // Each announced track costs every subscriber a slot and a renegotiation.
            return Err(MediaError::InvalidSdp(format!(
                "an offer may send at most {MAX_PUBLISHED_TRACKS} tracks; this one sends {sending}"
            )));
        }
        check_streams_declared(&sections)
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        let mut notices = Vec::new();
        if sections.is_empty() && !self.opened {
            // A client with nothing to publish: there is nothing to apply, so the answer is an
            // empty session too, and the server's own offers take it from here.
            if !sdp.trim_start().starts_with("v=0") {
                return Err(MediaError::InvalidSdp(
                    "not a session description".to_owned(),
                ));
            }
            notices.push(Notice::Answer(EMPTY_SESSION.to_owned()));
            self.phase = Phase::Stable;
            self.negotiate(now, &mut notices, effects)?;
            return Ok(notices);
        }
        let offer = RTCSessionDescription::offer(sdp)
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        self.pc
            .set_remote_description(now, offer)
            .map_err(|error| MediaError::InvalidSdp(format!("applying the offer: {error}")))?;
        self.mark_open();
        let answer = self
            .pc
            .create_answer(None)
            .map_err(|error| MediaError::Internal(format!("creating the answer: {error}")))?;
        self.pc
            .set_local_description(now, answer.clone())
            .map_err(|error| MediaError::Internal(format!("applying the answer: {error}")))?;
        // The server's candidates are in the description; nothing more will be gathered.
        let _ = self.pc.add_local_candidate(RTCIceCandidateInit::default());
        let sdp = self
            .pc
            .local_description()
            .map_or(answer.sdp, |description| description.sdp);
        self.note_local_description(&sdp);
        notices.push(Notice::Answer(
            self.settings.public.rewrite_sdp(&sdp).into_owned(),
        ));
        if !refused.is_empty() {
            debug!(mids = ?refused, "refused the tracks of a participant that may not publish");
            notices.push(Notice::PublishRefused { mids: refused });
        }
        self.phase = Phase::Stable;
        self.remote_sections = sections;
        self.audio_level_id = audio_level_id;
        self.end_stopped_publications(&mut notices);
        self.publish_offered_tracks(&mut notices);
        self.negotiate(now, &mut notices, effects)?;
        Ok(notices)
    }

    /// Applies the client's answer to the server's offer, starts forwarding the tracks it
    /// accepted, and offers what changed meanwhile.
    pub fn on_answer(
        &mut self,
        sdp: String,
        now: Instant,
        effects: &mut Effects,
    ) -> Result<Vec<Notice>, MediaError> {
        if self.phase.answer_deadline().is_none() {
            return Err(MediaError::UnexpectedAnswer);
        }
        check_streams_declared(&media_sections(&sdp))
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|error| MediaError::InvalidSdp(error.to_string()))?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(|error| MediaError::InvalidSdp(format!("applying the answer: {error}")))?;
        debug!("applied the client's answer");
        self.phase = Phase::Stable;
        self.free.append(&mut self.retiring);
        self.activate_answered_subscriptions(now, effects);
        let mut notices = Vec::new();
        self.negotiate(now, &mut notices, effects)?;
        Ok(notices)
    }

    /// Starts the next negotiation if anything changed and none is outstanding. A participant
    /// that has published nothing gets its connection opened here, with the server's first
    /// offer.
    pub fn negotiate(
        &mut self,
        now: Instant,
        notices: &mut Vec<Notice>,
        effects: &mut Effects,
    ) -> Result<(), MediaError> {
        if !self.phase.may_offer() || !self.dirty {
            return Ok(());
        }
        self.dirty = false;
        if !self.opened && self.wanted.is_empty() {
            return Ok(());
        }
        let mut changed = self.retire_unwanted_subscriptions(notices, effects)?;
        let added = self.add_wanted_subscriptions()?;
        changed |= !added.is_empty();
        if !changed {
            return Ok(());
        }
        let offer = self
            .pc
            .create_offer(None)
            .map_err(|error| MediaError::Internal(format!("creating an offer: {error}")))?;
        self.pc
            .set_local_description(now, offer.clone())
            .map_err(|error| MediaError::Internal(format!("applying the offer: {error}")))?;
        let _ = self.pc.add_local_candidate(RTCIceCandidateInit::default());
        self.mark_open();
        self.announce_subscriptions(&added, notices);
        let sdp = self
            .pc
            .local_description()
            .map_or(offer.sdp, |description| description.sdp);
        self.note_local_description(&sdp);
        notices.push(Notice::Offer(
            self.settings.public.rewrite_sdp(&sdp).into_owned(),
        ));
        debug!(
            subscriptions = self.subscriptions.len(),
            "offered the client a renegotiation"
        );
        self.phase = Phase::AwaitingAnswer { since: now };
        Ok(())
    }

    /// Adds a trickled candidate from the client.
    pub fn on_candidate(&mut self, candidate: IceCandidate) -> Result<(), MediaError> {
        if !self.opened {
            return Err(MediaError::InvalidCandidate(
                "there is no connection yet: send an offer first".to_owned(),
            ));
        }
        if candidate.candidate.is_empty() {
            // End of candidates: nothing to add.
            return Ok(());
        }
        if let Some(mid) = candidate.sdp_mid.as_deref().filter(|mid| !mid.is_empty())
            && !self
                .remote_sections
                .iter()
                .any(|section| section.mid.as_str() == mid)
        {
            return Err(MediaError::InvalidCandidate(format!(
                "no media section with mid `{mid}`"
            )));
        }
        if let Some(index) = candidate.sdp_m_line_index
            && candidate.sdp_mid.is_none()
            && usize::from(index) >= self.remote_sections.len().max(1)
        {
            return Err(MediaError::InvalidCandidate(format!(
                "no media section with index {index}"
            )));
        }
        self.pc
            .add_remote_candidate(RTCIceCandidateInit {
                candidate: candidate.candidate,
                sdp_mid: candidate.sdp_mid,
                sdp_mline_index: candidate.sdp_m_line_index,
                username_fragment: candidate.username_fragment,
                url: None,
            })
            .map_err(|error| MediaError::InvalidCandidate(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_offer_crossing_the_server_s_is_ignored() {
        let now = Instant::now();
        assert_eq!(Phase::Idle.on_client_offer(), OfferVerdict::Apply);
        assert_eq!(Phase::Stable.on_client_offer(), OfferVerdict::Apply);
        assert_eq!(
            Phase::AwaitingAnswer { since: now }.on_client_offer(),
            OfferVerdict::IgnoreGlare
        );
    }

    #[test]
    fn the_server_offers_only_when_nothing_is_outstanding() {
        let now = Instant::now();
        assert!(Phase::Stable.may_offer());
        assert!(
            !Phase::Idle.may_offer(),
            "the client's first offer comes first"
        );
        assert!(!Phase::AwaitingAnswer { since: now }.may_offer());
    }

    #[test]
    fn an_outstanding_offer_falls_due_after_the_answer_timeout() {
        let now = Instant::now();
        assert_eq!(Phase::Stable.answer_deadline(), None);
        assert_eq!(
            Phase::AwaitingAnswer { since: now }.answer_deadline(),
            Some(now + ANSWER_TIMEOUT)
        );
    }
}
