//! Churn: participants dropping in and out of busy rooms during the measurement window, each
//! timed from its socket opening to `joined` and to the first packet of every track of the
//! room's publishers (see [`crate::scenario::Churn`]).
//!
//! Churner `k` (from 0) joins at `k / rate` seconds into the window, in room `k mod rooms`, on
//! shard `k mod N + 1`: the shards of one run share the churn as they share the participants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::ClientError;
use crate::histogram::EncodedHistogram;
use crate::participant::{Participant, ParticipantOptions};
use crate::recorder::Recorder;
use crate::report::{ChurnReport, Failure};
use crate::scenario::Scenario;
use crate::shard::Shard;
use crate::stats::{Percentiles, new_histogram};
use crate::stop::Stop;

/// How long a churner may take to join.
const CHURN_JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a churner may take to leave.
const CHURN_LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One churner this shard runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Churner {
    /// Its place among the run's churners, from 0.
    pub position: usize,
    /// When it joins, after the window opens.
    pub offset: Duration,
    /// Its room.
    pub room: String,
    /// Its name, unique in the run.
    pub name: String,
}

/// The churners `shard` runs, in order; `room` names room `i`.
pub fn churners(scenario: &Scenario, shard: Shard, room: impl Fn(usize) -> String) -> Vec<Churner> {
    let Some(churn) = scenario.churn else {
        return Vec::new();
    };
    (0..churn.joins(scenario.duration))
        .filter(|position| shard.runs(*position))
        .map(|position| Churner {
            position,
            offset: Duration::from_secs_f64(position as f64 / churn.rate),
            room: room(position % scenario.rooms),
            name: format!("churner-{position}"),
        })
        .collect()
}

/// What the churners measured so far; shared with their tasks, so that what a churner cut off
/// by the window's end measured is kept.
#[derive(Debug, Default)]
pub struct Tally {
    started: usize,
    joined: Vec<Duration>,
    all_tracks: Vec<Duration>,
    incomplete: usize,
    failures: Vec<Failure>,
}

impl Tally {
    /// The churn section of the report.
    pub fn report(&self) -> ChurnReport {
        let histogram = |samples: &[Duration]| {
            let mut histogram = new_histogram();
            for sample in samples {
                histogram.saturating_record((sample.as_micros() as u64).max(1));
            }
            histogram
        };
        let (joined, all_tracks) = (histogram(&self.joined), histogram(&self.all_tracks));
        ChurnReport {
            started: self.started,
            joined: self.joined.len(),
            failed: self.failures.len(),
            failures: self.failures.clone(),
            incomplete: self.incomplete,
            to_joined_ms: Percentiles::from_micros(&joined),
            to_all_tracks_ms: Percentiles::from_micros(&all_tracks),
            to_joined_us: EncodedHistogram::encode(&joined),
            to_all_tracks_us: EncodedHistogram::encode(&all_tracks),
        }
    }
}

/// Runs one churner: joins, waits for every track of the room's publishers (`expected` of
/// them), stays for `stay` from its start or until `window_closed`, and leaves.
pub async fn churn_once(
    churner: Churner,
    options: Result<ParticipantOptions, Failure>,
    expected: usize,
    stay: Duration,
    recorder: Arc<Recorder>,
    tally: Arc<Mutex<Tally>>,
    mut window_closed: Stop,
) {
    let started = Instant::now();
    tally.lock().started += 1;
    let options = match options {
        Ok(options) => options,
        Err(failure) => return tally.lock().failures.push(failure),
    };
    let joined = tokio::time::timeout(CHURN_JOIN_TIMEOUT, Participant::join(options)).await;
    let participant = match joined {
        Ok(Ok(participant)) => participant,
        Ok(Err(error)) => return tally.lock().failures.push(failure(&churner, &error)),
        Err(_) => {
            let error = ClientError::Timeout(format!("`joined` within {CHURN_JOIN_TIMEOUT:?}"));
            return tally.lock().failures.push(failure(&churner, &error));
        }
    };
    let observed = participant.observed();
    let to_joined = match (observed.started_at, observed.joined_at) {
        (Some(start), Some(joined)) => joined.saturating_duration_since(start),
        _ => started.elapsed(),
    };
    recorder.joined(to_joined);
    let meter = participant.meter();
    recorder.add(meter.clone());
    tally.lock().joined.push(to_joined);

    let deadline = tokio::time::Instant::from_std(started + stay);
    let flowing = participant.wait_until(
        "every track of the room's publishers",
        deadline.saturating_duration_since(tokio::time::Instant::now()),
        |observed| observed.flowing_tracks() >= expected,
    );
    let complete = tokio::select! {
        result = flowing => result.is_ok(),
        () = window_closed.pressed() => false,
    };
    {
        let mut tally = tally.lock();
        if complete {
            let observed = participant.observed();
            let origin = observed.started_at.unwrap_or(started);
            let last_first_packet = observed
                .live_tracks()
                .filter_map(|track| track.first_packet)
                .max()
                .unwrap_or(origin);
            tally
                .all_tracks
                .push(last_first_packet.saturating_duration_since(origin));
        } else {
            tally.incomplete += 1;
        }
    }
    tokio::select! {
        () = tokio::time::sleep_until(deadline) => {}
        () = window_closed.pressed() => {}
    }
    recorder.remove(&meter);
    let _ = tokio::time::timeout(CHURN_LEAVE_TIMEOUT, participant.leave()).await;
}

fn failure(churner: &Churner, error: &ClientError) -> Failure {
    crate::joining::failure(&churner.name, &churner.room, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Churn;

    #[test]
    fn churners_are_spread_over_time_rooms_and_shards() {
        let scenario = Scenario {
            rooms: 2,
            duration: Duration::from_secs(5),
            churn: Some(Churn {
                rate: 2.0,
                stay: Duration::from_secs(1),
            }),
            ..Scenario::default()
        };
        let all = churners(&scenario, Shard::WHOLE, |room| format!("room-{room}"));
        assert_eq!(all.len(), 10);
        assert_eq!(all[3].offset, Duration::from_millis(1500));
        assert_eq!(all[3].room, "room-1");
        assert_eq!(all[4].room, "room-0");
        let second = churners(&scenario, Shard { index: 2, count: 2 }, |room| {
            format!("room-{room}")
        });
        let positions: Vec<usize> = second.iter().map(|churner| churner.position).collect();
        assert_eq!(positions, [1, 3, 5, 7, 9]);
        assert!(churners(&Scenario::default(), Shard::WHOLE, |_| String::new()).is_empty());
    }
}
