//! When a run starts: at once, or at a wall-clock time (`--start-at`) that the shards of one
//! run share. The start time also names the run's rooms, so shards started with the same one
//! meet in the same rooms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses `--start-at`: Unix seconds (`1767600000`, as `date +%s` prints), or `+30s`-style
/// time from now.
pub fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if let Some(offset) = text.strip_prefix('+') {
        return crate::scenario::parse_duration(offset).map(|offset| SystemTime::now() + offset);
    }
    let seconds: f64 = text.parse().map_err(|_| {
        format!("`{text}` is not a start time: give Unix seconds (date +%s) or +DURATION")
    })?;
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("`{text}` is not a start time"));
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(seconds))
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64())
}

/// The run's id, in its room names: from the shared start time, or random for a run on its
/// own.
pub fn run_id(start_at: Option<SystemTime>) -> u32 {
    match start_at {
        Some(start) => {
            let millis = (unix_seconds(start) * 1000.0).round() as u64;
            (millis ^ (millis >> 32)) as u32
        }
        None => rand::random(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times() {
        assert_eq!(
            parse_start_at("1767600000"),
            Ok(UNIX_EPOCH + Duration::from_secs(1_767_600_000))
        );
        let soon = parse_start_at("+30s").expect("relative");
        let ahead = soon
            .duration_since(SystemTime::now())
            .expect("in the future");
        assert!(ahead > Duration::from_secs(29) && ahead <= Duration::from_secs(30));
        for bad in ["tomorrow", "-5", "0", "+soon"] {
            assert!(parse_start_at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_sharing_a_start_share_the_run_id() {
        let start = parse_start_at("1767600000.5").expect("a time");
        assert_eq!(run_id(Some(start)), run_id(Some(start)));
        assert_ne!(
            run_id(Some(start)),
            run_id(Some(start + Duration::from_secs(1)))
        );
    }
}
