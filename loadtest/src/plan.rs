//! Who takes part in a run: the scenario's participants listed in one fixed order (room by
//! room, each room's publishers, then its subscribers), the share of them this machine runs
//! ([`crate::shard`]), and when each starts.

use std::time::Duration;

use crate::scenario::Scenario;
use crate::shard::Shard;
use crate::tokens::Seat;

/// One participant the scenario asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Its place in the scenario's list, the same on every shard.
    pub position: usize,
    /// The room.
    pub room: String,
    /// Its name, unique in the room: `publisher-ROOM-I` or `subscriber-ROOM-I`.
    pub name: String,
    /// Whether it publishes.
    pub publishes: bool,
    /// Remote tracks it should receive.
    pub expected_tracks: usize,
    /// Whether it is behind the scenario's impairment.
    pub impaired: bool,
}

impl Planned {
    /// When it starts, after the run's start: the ramp-up spaces the scenario's participants
    /// evenly, on every shard alike.
    pub fn start_offset(&self, scenario: &Scenario) -> Duration {
        Duration::from_secs_f64(self.position as f64 / scenario.ramp_up)
    }

    /// As far as its token is concerned.
    pub fn seat(&self) -> Seat<'_> {
        Seat {
            room: &self.room,
            name: &self.name,
            publishes: self.publishes,
        }
    }
}

/// The name of room `index` of the run `run_id`.
pub fn room_name(prefix: &str, run_id: u32, index: usize) -> String {
    format!("{prefix}-{run_id:08x}-{index}")
}

/// The participants of `scenario` that `shard` runs, in the scenario's order.
pub fn plan(scenario: &Scenario, prefix: &str, run_id: u32, shard: Shard) -> Vec<Planned> {
    let per_publisher = scenario.tracks_per_publisher();
    // Silent tracks never flow: only the connections are waited for.
    let flowing = usize::from(scenario.send_media);
    let mut everybody = Vec::with_capacity(scenario.participants());
    for room in 0..scenario.rooms {
        let room_name = room_name(prefix, run_id, room);
        let roles = (0..scenario.publishers)
            .map(|index| (true, index))
            .chain((0..scenario.subscribers).map(|index| (false, index)));
        for (in_room, (publishes, index)) in roles.enumerate() {
            let others = scenario.publishers - usize::from(publishes);
            everybody.push(Planned {
                position: everybody.len(),
                room: room_name.clone(),
                name: format!(
                    "{}-{room}-{index}",
                    if publishes { "publisher" } else { "subscriber" }
                ),
                publishes,
                expected_tracks: others * per_publisher * flowing,
                impaired: scenario.is_impaired(in_room),
            });
        }
    }
    everybody.retain(|planned| shard.runs(planned.position));
    everybody
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_together_plan_the_whole_scenario() {
        let scenario = Scenario {
            rooms: 3,
            publishers: 2,
            subscribers: 3,
            ..Scenario::default()
        };
        let whole = plan(&scenario, "load", 7, Shard::WHOLE);
        assert_eq!(whole.len(), 15);
        assert_eq!(whole[0].name, "publisher-0-0");
        assert_eq!(whole[2].name, "subscriber-0-0");
        assert_eq!(whole[5].room, "load-00000007-1");
        assert_eq!(
            whole[0].expected_tracks, 2,
            "the other publisher's video and audio"
        );
        assert_eq!(whole[2].expected_tracks, 4);
        let mut together: Vec<Planned> = (1..=2)
            .flat_map(|index| plan(&scenario, "load", 7, Shard { index, count: 2 }))
            .collect();
        together.sort_by_key(|planned| planned.position);
        assert_eq!(together, whole);
        let first = plan(&scenario, "load", 7, Shard { index: 1, count: 2 });
        assert_eq!(first.len(), 8);
        assert!(first.iter().any(|planned| planned.publishes));
        assert!(first.iter().any(|planned| !planned.publishes));
        assert_eq!(
            whole[10].start_offset(&scenario),
            Duration::from_millis(500),
            "20 a second"
        );
    }
}
