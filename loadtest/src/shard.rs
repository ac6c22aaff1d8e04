//! Several load machines: `--shard I/N` runs the I-th of N shares of a scenario.
//!
//! The scenario's participants are listed in one order on every machine: room by room, each
//! room's publishers first, then its subscribers. Participant `k` of that list (from 0) runs on
//! shard `k mod N + 1`, so every shard gets a fair share of every room and of every role, within
//! one participant, and the shards together run exactly the scenario. Each participant starts at
//! the moment it would in a run on one machine (the start time plus `k` over the ramp-up rate),
//! so the ramp-up of the whole is the scenario's. `loadtest merge` puts the shards' reports
//! back together ([`crate::merge`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One share of a scenario: the `index`-th of `count`, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shard {
    /// Which share, from 1.
    pub index: u32,
    /// How many shares.
    pub count: u32,
}

impl Shard {
    /// The whole scenario, on one machine.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Whether participant `position` of the scenario's list runs on this shard.
    pub fn runs(&self, position: usize) -> bool {
        position % self.count as usize == (self.index - 1) as usize
    }

    /// Whether this is the whole scenario.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a shard like 1/3 (the first of three)");
        let (index, count) = text.trim().split_once('/').ok_or_else(invalid)?;
        let index: u32 = index.trim().parse().map_err(|_| invalid())?;
        let count: u32 = count.trim().parse().map_err(|_| invalid())?;
        if count == 0 || index == 0 || index > count {
            return Err(format!(
                "`{text}`: the shard must be between 1/N and N/N, with N at least 1"
            ));
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!(" 1 / 1 ".parse(), Ok(Shard::WHOLE));
        for bad in ["0/3", "4/3", "1/0", "1", "a/b", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_split_every_participant_exactly_once_and_evenly() {
        let count = 3;
        let shards: Vec<Shard> = (1..=count).map(|index| Shard { index, count }).collect();
        let mut sizes = vec![0; shards.len()];
        for position in 0..100 {
            let owners: Vec<usize> = (0..shards.len())
                .filter(|shard| shards[*shard].runs(position))
                .collect();
            assert_eq!(owners.len(), 1, "participant {position}");
            sizes[owners[0]] += 1;
        }
        assert_eq!(sizes, [34, 33, 33]);
        assert!((0..10).all(|position| Shard::WHOLE.runs(position)));
    }
}
