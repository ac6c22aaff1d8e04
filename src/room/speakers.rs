//! A room's speaker detection: a task that reads the levels of the room's audio tracks every
//! [`TICK`], asks the room's [`Detector`], and tells every member when the speakers change.
//!
//! The task runs only while there is something to follow: it starts when audio is published
//! in the room and ends once the room has no audio left and has been told that nobody speaks
//! (and that a departed active speaker is gone), or when the room closes. It holds the room
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
        if state.speaker_task {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        state.speaker_task = true;
        runtime.spawn(follow_speakers(self.this.clone()));
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
        self.state().speakers.told().clone()
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

    #[tokio::test]
    async fn a_room_hears_its_speaker_and_the_task_ends_with_the_room() {
        use std::sync::Arc;
        use std::time::Duration;

        use crate::ids::{ConnectionId, WorkerIndex};
        use crate::media::publication::{Publication, TrackInfo};
        use crate::room::{Newcomer, Registry};
        use crate::signal::protocol::{ParticipantInfo, TrackKind};

        let alive = || {
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
        };
        let baseline = alive();
        let registry = Registry::default();
        let ada = ParticipantId::from("PA_ada");
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let (room, _) = registry
            .join(
                "standup",
                Newcomer {
                    info: ParticipantInfo {
                        id: ada.clone(),
                        name: "Ada".to_owned(),
                    },
                    identity: None,
                    events,
                },
            )
            .expect("Ada joins");
        let microphone = Publication::new(
            TrackInfo {
                participant: ada.clone(),
                track: "microphone".to_owned(),
                stream: "stream".to_owned(),
                kind: TrackKind::Audio,
                clock_rate: 48_000,
                mime_type: "audio/opus".to_owned(),
                screen: false,
            },
            &[],
            false,
            ConnectionId::next(WorkerIndex(0)),
            Instant::now(),
        );
        room.publish(vec![Arc::clone(&microphone)]);
        assert_eq!(alive(), baseline + 1, "the speaker task runs");
        let meter = microphone.audio_level().expect("audio has a meter");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        let told = loop {
            clock.tick().await;
            meter.record(10);
            if let Ok(RoomEvent::Speakers(speakers)) = received.try_recv() {
                break speakers;
            }
            assert!(Instant::now() < deadline, "Ada was never heard");
        };
        let expected = Speakers {
            active: Some(ada.clone()),
            speaking: vec![ada.clone()],
        };
        assert_eq!(told, expected);
        assert_eq!(room.speakers(), expected);

        registry.leave(&room, &ada);
        while alive() > baseline {
            assert!(
                Instant::now() < deadline,
                "the speaker task outlived its room"
            );
            clock.tick().await;
        }
    }
}
