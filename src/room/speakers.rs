//! A room's speaker detection: a task that reads the levels of the room's audio tracks every
//! [`TICK`], asks the room's [`Detector`], and tells every member when the speakers change.
//!
//! The task runs only while there is something to follow: it starts when audio is published
//! in the room, or when the active speaker leaves, and ends once the room has no audio left
//! and has been told that nobody speaks (and that a departed active speaker is gone), or when
//! the room closes. It holds the room
//! only for the moment of a tick, so it never keeps a room alive. Each tick runs under the
//! room's lock, like every other change, so a newcomer's snapshot and the events after it
//! agree on who speaks.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Instant;

use tokio::time::MissedTickBehavior;
use tracing::debug;

use crate::ids::ParticipantId;
use crate::media::audio_level::LevelWindow;
use crate::media::speaker::{Speakers, TICK};
use crate::room::{Room, RoomEvent, RoomState};

impl Room {
    /// Starts the speaker task, unless it runs: audio was just published. Outside a Tokio
    /// runtime nothing can run it, and nothing is started.
    pub(super) fn watch_speakers(&self, state: &mut RoomState) {
        if state.speaker_task || state.closed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.speaker_task = true;
        runtime.spawn(follow_speakers(self.this.clone()));
    }

    /// Starts the speaker task for a member that left, if it was the active speaker: the room
    /// must hear that it is not any more, even when no audio is left to start the task.
    pub(super) fn speaker_left(&self, state: &mut RoomState, participant: &ParticipantId) {
        if state.speakers.told().active.as_ref() == Some(participant) {
            self.watch_speakers(state);
        }
    }

    /// One tick of the speaker task. Returns whether the task goes on; when it does not, the
    /// next audio publication starts another.
    fn tick_speakers(&self, now: Instant) -> bool {
        let mut state = self.state();
        let levels = member_levels(&state);
        let has_audio = state
            .publications
            .iter()
            .any(|publication| publication.audio_level().is_some());
        if state.closed || !(has_audio || needs_telling(state.speakers.told(), &levels)) {
            state.speaker_task = false;
            return false;
        }
        if let Some(speakers) = state.speakers.tick(now, &levels) {
            debug!(room = %self.name, ?speakers, "speakers changed");
            for member in &state.members {
                let _ = member.events.send(RoomEvent::Speakers(speakers.clone()));
            }
        }
        true
    }

    /// What the room was last told of its speakers.
    pub fn speakers(&self) -> Speakers {
        told_speakers(&self.state())
    }
}

/// What the room was last told of its speakers, without a member who has left since (the
/// task tells the others at its next tick).
pub(super) fn told_speakers(state: &RoomState) -> Speakers {
    let present = |participant: &ParticipantId| {
        state
            .members
            .iter()
            .any(|member| member.info.id == *participant)
    };
    let told = state.speakers.told();
    Speakers {
        active: told.active.clone().filter(|active| present(active)),
        speaking: told
            .speaking
            .iter()
            .filter(|participant| present(participant))
            .cloned()
            .collect(),
    }
}

/// The speaker task of the room `room`.
async fn follow_speakers(room: Weak<Room>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(room) = room.upgrade() else {
            return;
        };
        if !room.tick_speakers(Instant::now()) {
            return;
        }
    }
}

/// Every member, in the order they joined, with the levels its audio gathered since the last
/// tick: the loudest of its tracks (a microphone and a shared tab's sound), and nothing from a
/// muted one, which nobody hears. Every meter is read, so that a window always starts at the
/// previous tick.
fn member_levels(state: &RoomState) -> Vec<(ParticipantId, LevelWindow)> {
    let mut loudest: HashMap<&ParticipantId, LevelWindow> = HashMap::new();
    for publication in &state.publications {
        let Some(meter) = publication.audio_level() else {
            continue;
        };
        let window = meter.take();
        if publication.muted() {
            continue;
        }
        let entry = loudest.entry(&publication.info().participant).or_default();
        if window.speech > entry.speech || entry.packets == 0 {
            *entry = window;
        }
    }
    state
        .members
        .iter()
        .map(|member| {
            let window = loudest.get(&member.info.id).copied().unwrap_or_default();
            (member.info.id.clone(), window)
        })
        .collect()
}

/// Whether what the room was told still has to change without any audio: somebody was
/// speaking, or the active speaker has left.
fn needs_telling(told: &Speakers, levels: &[(ParticipantId, LevelWindow)]) -> bool {
    !told.speaking.is_empty()
        || told
            .active
            .as_ref()
            .is_some_and(|active| !levels.iter().any(|(member, _)| member == active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_without_audio_is_told_until_nobody_speaks_and_its_active_speaker_is_present() {
        let present = [(ParticipantId::from("A"), LevelWindow::default())];
        assert!(!needs_telling(&Speakers::default(), &present));
        let active = Speakers {
            active: Some(ParticipantId::from("A")),
            speaking: vec![],
        };
        assert!(!needs_telling(&active, &present));
        assert!(needs_telling(&active, &[]));
        let speaking = Speakers {
            active: Some(ParticipantId::from("A")),
            speaking: vec![ParticipantId::from("A")],
        };
        assert!(needs_telling(&speaking, &present));
    }

    mod running {
        use std::sync::Arc;
        use std::time::{Duration, Instant};

        use tokio::sync::mpsc;

        use crate::ids::{ConnectionId, ParticipantId, WorkerIndex};
        use crate::media::publication::{Publication, TrackInfo};
        use crate::media::speaker::Speakers;
        use crate::room::{Newcomer, Registry, Room, RoomEvent};
        use crate::signal::protocol::{ParticipantInfo, TrackKind};

        fn alive() -> usize {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        }

        fn join(
            registry: &Registry,
            id: &ParticipantId,
        ) -> (Arc<Room>, mpsc::UnboundedReceiver<RoomEvent>) {
            let (events, received) = mpsc::unbounded_channel();
            let newcomer = Newcomer {
                info: ParticipantInfo {
                    id: id.clone(),
                    name: id.as_str().to_owned(),
                },
                identity: None,
                events,
            };
            let (room, _) = registry.join("standup", newcomer).expect("joins");
            (room, received)
        }

        fn microphone(of: &ParticipantId) -> Arc<Publication> {
            let info = TrackInfo {
                participant: of.clone(),
                track: "microphone".to_owned(),
                stream: "stream".to_owned(),
                kind: TrackKind::Audio,
                clock_rate: 48_000,
                mime_type: "audio/opus".to_owned(),
                screen: false,
            };
            Publication::new(
                info,
                &[],
                false,
                ConnectionId::next(WorkerIndex(0)),
                Instant::now(),
            )
        }

        /// Feeds `microphone` 20 ms packets at `level` until a `speakers` event arrives.
        async fn speak_until_told(
            microphone: Option<&Publication>,
            level: u8,
            received: &mut mpsc::UnboundedReceiver<RoomEvent>,
        ) -> Speakers {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut clock = tokio::time::interval(Duration::from_millis(20));
            loop {
                clock.tick().await;
                if let Some(meter) = microphone.and_then(Publication::audio_level) {
                    meter.record(level);
                }
                while let Ok(event) = received.try_recv() {
                    if let RoomEvent::Speakers(speakers) = event {
                        return speakers;
                    }
                }
                assert!(Instant::now() < deadline, "no speakers event came");
            }
        }

        async fn wait_for_tasks(at_most: usize) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut clock = tokio::time::interval(Duration::from_millis(20));
            while alive() > at_most {
                assert!(Instant::now() < deadline, "the speaker task did not end");
                clock.tick().await;
            }
        }

        #[tokio::test]
        async fn a_room_hears_its_speaker_and_the_task_ends_with_the_room() {
            let baseline = alive();
            let registry = Registry::default();
            let ada = ParticipantId::from("PA_ada");
            let (room, mut received) = join(&registry, &ada);
            let microphone = microphone(&ada);
            room.publish(vec![Arc::clone(&microphone)]);
            assert_eq!(alive(), baseline + 1, "the speaker task runs");
            let expected = Speakers {
                active: Some(ada.clone()),
                speaking: vec![ada.clone()],
            };
            assert_eq!(
                speak_until_told(Some(&microphone), 10, &mut received).await,
                expected
            );
            assert_eq!(room.speakers(), expected);

            registry.leave(&room, &ada);
            wait_for_tasks(baseline).await;
        }

        #[tokio::test]
        async fn an_active_speaker_who_leaves_a_room_without_audio_is_active_no_more() {
            let baseline = alive();
            let registry = Registry::default();
            let (ada, bob) = (ParticipantId::from("PA_ada"), ParticipantId::from("PA_bob"));
            let (room, _) = join(&registry, &ada);
            let (_, mut bob_hears) = join(&registry, &bob);
            let microphone = microphone(&ada);
            room.publish(vec![Arc::clone(&microphone)]);
            let speaking = speak_until_told(Some(&microphone), 10, &mut bob_hears).await;
            assert_eq!(speaking.active.as_ref(), Some(&ada));

            // Ada's microphone goes: the room hears that nobody speaks, and the task ends.
            room.unpublish(vec![Arc::clone(&microphone)]);
            let silent = speak_until_told(None, 0, &mut bob_hears).await;
            assert_eq!(
                silent,
                Speakers {
                    active: Some(ada.clone()),
                    speaking: vec![],
                }
            );
            wait_for_tasks(baseline).await;

            // Then Ada leaves: Bob hears that there is no active speaker any more, and a
            // newcomer is not told of her.
            registry.leave(&room, &ada);
            assert_eq!(room.speakers(), Speakers::default());
            assert_eq!(
                speak_until_told(None, 0, &mut bob_hears).await,
                Speakers::default()
            );
            wait_for_tasks(baseline).await;
            registry.leave(&room, &bob);
        }
    }
}
