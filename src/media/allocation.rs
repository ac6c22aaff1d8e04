//! How one subscriber's downlink is shared among the videos it receives.
//!
//! Each video the subscriber receives is a [`Candidate`]: the publisher's layers as measured
//! now, the tile the subscriber shows it in, and whether it is a screen share or the active
//! speaker. [`allocate`] decides, for each, the layer to forward (or none) and the layer the
//! subscriber would like were it arriving, which is what the publisher is asked to send.
//!
//! The rules, in order:
//! 1. A hidden tile gets nothing. A visible one wants the smallest layer that fills it: at
//!    least as wide and as tall as the tile, since a client crops the picture to cover its
//!    tile; a tile of unknown size, the largest. Layers are ordered by their measured
//!    resolution when every one has sent a keyframe, by the publisher's order otherwise
//!    (browsers list low to high). A layer that has not sent a keyframe yet is taken to be
//!    twice the size of the one below (half the one above), as browsers send them; while no
//!    layer has, a sized tile starts on the lowest.
//! 2. Of the layers arriving, the best at or below the wanted one is forwarded (or, when none
//!    below arrives, the lowest above it).
//! 3. Without an estimate of the subscriber's downlink every video gets that layer. With one,
//!    the budget goes by priority: screen shares, then the active speaker, then larger tiles.
//!    A first pass gives each video its lowest arriving layer while the budget lasts, and
//!    pauses the rest; a second pass raises each, in the same order, towards its layer while
//!    the budget lasts. A paused video costs nothing and tells the subscriber why, which is
//!    better than every picture degrading together. A video sent as one stream is never
//!    paused (it counts against the budget all the same): its publisher chose not to offer
//!    layers, and clients that send one stream keep working as they always did.
//! 4. A layer no higher than the one being forwarded counts at [`KEEP_FACTOR`] of its rate,
//!    so an estimate that wavers around a layer's rate does not switch it back and forth
//!    (each switch costs a keyframe).
//! 5. With [`Limit::OneStep`], no video goes more than one layer above the one it is forwarded.
//!
//! When there is a budget at all is `media::downlink`'s to say.

use crate::ids::LayerIndex;
use crate::media::layers::LayerSnapshot;

/// What a layer no higher than the forwarded one counts for, as a share of its rate.
pub const KEEP_FACTOR: f64 = 0.85;

/// The least a layer is taken to cost, while its rate is not measured yet.
pub const MIN_LAYER_COST: u64 = 50_000;

/// How a subscriber shows one video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Whether the tile is on screen.
    pub visible: bool,
    /// The tile's size in device pixels; 0 when unknown.
    pub width: u32,
    /// See `width`.
    pub height: u32,
}

impl Default for View {
    /// Before the subscriber says anything: visible, of no particular size.
    fn default() -> Self {
        Self {
            visible: true,
            width: 0,
            height: 0,
        }
    }
}

impl View {
    fn is_sized(&self) -> bool {
        self.width > 0 || self.height > 0
    }

    fn area(&self) -> u64 {
        if self.is_sized() {
            u64::from(self.width) * u64::from(self.height)
        } else {
            u64::MAX
        }
    }
}

/// One video a subscriber receives.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The publisher's layers.
    pub layers: Vec<LayerSnapshot>,
    /// How the subscriber shows it.
    pub view: View,
    /// Whether it is a screen share.
    pub screen: bool,
    /// Whether its publisher is the room's active speaker.
    pub speaker: bool,
    /// The layer being forwarded now.
    pub current: Option<LayerIndex>,
}

/// What a video gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The layer to forward; `None` sends nothing.
    pub target: Option<LayerIndex>,
    /// The layer the subscriber would like, arriving or not; `None` for a hidden tile.
    pub wanted: Option<LayerIndex>,
    /// Whether it gets nothing for want of bandwidth (not because it is hidden).
    pub paused: bool,
}

/// What limits an allocation: `media::downlink` says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Every video gets the layer its tile wants.
    None,
    /// As `None`, but no video goes more than one layer up at once.
    OneStep,
    /// At most this many bits per second.
    Budget(u64),
}

/// What the candidates are being sent now: each one's current layer, at its measured rate.
pub fn sending(candidates: &[Candidate]) -> u64 {
    candidates
        .iter()
        .filter_map(|candidate| {
            let current = candidate.current?;
            candidate
                .layers
                .iter()
                .find(|layer| layer.index == current && layer.arriving)
                .map(|layer| layer.bitrate)
        })
        .sum()
}

/// Shares what `limit` allows among `candidates`, one decision each, in their order; see the
/// module documentation.
pub fn allocate(limit: Limit, candidates: &[Candidate]) -> Vec<Decision> {
    let one_step = limit == Limit::OneStep;
    let plans: Vec<Plan> = candidates
        .iter()
        .map(|candidate| Plan::new(candidate, one_step))
        .collect();
    let Limit::Budget(budget) = limit else {
        return plans.iter().map(|plan| plan.decision(plan.best)).collect();
    };
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&index| {
        let candidate = &candidates[index];
        (
            !candidate.screen,
            !candidate.speaker,
            std::cmp::Reverse(candidate.view.area()),
            index,
        )
    });
    // Positions in each plan's `arriving` list: how far up each video goes.
    let mut steps: Vec<Option<usize>> = vec![None; candidates.len()];
    let mut left = budget as f64;
    for &index in &order {
        let plan = &plans[index];
        if plan.best.is_none() {
            continue;
        }
        let cost = plan.cost(0);
        if cost <= left || !plan.pausable {
            left -= cost;
            steps[index] = Some(0);
        }
    }
    for &index in &order {
        let plan = &plans[index];
        while let Some(step) = steps[index].filter(|step| *step < plan.best_step()) {
            let extra = plan.cost(step + 1) - plan.cost(step);
            if extra > left {
                break;
            }
            left -= extra;
            steps[index] = Some(step + 1);
        }
    }
    plans
        .iter()
        .zip(&steps)
        .map(|(plan, step)| match (plan.best, step) {
            (None, _) => plan.decision(None),
            (Some(_), None) => Decision {
                target: None,
                wanted: plan.wanted,
                paused: true,
            },
            (Some(_), Some(step)) => {
                plan.decision(plan.arriving.get(*step).map(|(index, _)| *index))
            }
        })
        .collect()
}

/// One candidate's layers, ready to allocate.
struct Plan {
    /// The layer the view wants, arriving or not.
    wanted: Option<LayerIndex>,
    /// The best layer it can have now, as rule 2 says.
    best: Option<LayerIndex>,
    /// Arriving layers from the lowest up to `best`, each with its cost.
    arriving: Vec<(LayerIndex, f64)>,
    /// Whether it may be paused: it has layers to choose from.
    pausable: bool,
}

impl Plan {
    fn new(candidate: &Candidate, one_step: bool) -> Self {
        let ordered = quality_order(&candidate.layers);
        let wanted = wanted_layer(&ordered, candidate.view);
        let Some(wanted) = wanted else {
            return Self {
                wanted: None,
                best: None,
                arriving: Vec::new(),
                pausable: true,
            };
        };
        let wanted_rank = ordered
            .iter()
            .position(|layer| layer.index == wanted)
            .unwrap_or(0);
        let arriving: Vec<&LayerSnapshot> = ordered
            .iter()
            .copied()
            .filter(|layer| layer.arriving)
            .collect();
        // The best arriving at or below the wanted layer, else the lowest arriving above it.
        let up_to = arriving
            .iter()
            .rposition(|layer| rank(&ordered, layer.index) <= wanted_rank)
            .or_else(|| (!arriving.is_empty()).then_some(0));
        let Some(up_to) = up_to else {
            // Nothing arrives yet: the first packets to come start the wanted layer.
            return Self {
                wanted: Some(wanted),
                best: Some(wanted),
                arriving: vec![(wanted, 0.0)],
                pausable: true,
            };
        };
        let current_rank = candidate.current.map(|current| rank(&ordered, current));
        // Rule 5: at most the first arriving layer above the one forwarded.
        let up_to = match current_rank {
            Some(current) if one_step => arriving[..=up_to]
                .iter()
                .position(|layer| rank(&ordered, layer.index) > current)
                .map_or(up_to, |above| above.min(up_to)),
            _ => up_to,
        };
        let arriving = arriving[..=up_to]
            .iter()
            .map(|layer| {
                let cost = layer.bitrate.max(MIN_LAYER_COST) as f64;
                let kept =
                    current_rank.is_some_and(|current| rank(&ordered, layer.index) <= current);
                (layer.index, if kept { cost * KEEP_FACTOR } else { cost })
            })
            .collect::<Vec<_>>();
        Self {
            wanted: Some(wanted),
            best: arriving.last().map(|(index, _)| *index),
            arriving,
            pausable: candidate.layers.len() > 1,
        }
    }

    fn best_step(&self) -> usize {
        self.arriving.len().saturating_sub(1)
    }

    /// What forwarding the layer at `step` costs.
    fn cost(&self, step: usize) -> f64 {
        self.arriving.get(step).map_or(0.0, |(_, cost)| *cost)
    }

    fn decision(&self, target: Option<LayerIndex>) -> Decision {
        Decision {
            target,
            wanted: self.wanted,
            paused: false,
        }
    }
}

/// The layers from lowest to highest quality: by resolution when every layer has declared
/// one, in the publisher's order otherwise.
fn quality_order(layers: &[LayerSnapshot]) -> Vec<&LayerSnapshot> {
    let mut ordered: Vec<&LayerSnapshot> = layers.iter().collect();
    if layers.iter().all(|layer| layer.resolution.is_some()) {
        ordered.sort_by_key(|layer| {
            let (width, height) = layer.resolution.unwrap_or_default();
            (u32::from(width) * u32::from(height), layer.index)
        });
    }
    ordered
}

fn rank(ordered: &[&LayerSnapshot], index: LayerIndex) -> usize {
    ordered
        .iter()
        .position(|layer| layer.index == index)
        .unwrap_or(0)
}

/// The smallest layer that fills the view, as rule 1 says.
fn wanted_layer(ordered: &[&LayerSnapshot], view: View) -> Option<LayerIndex> {
    if !view.visible {
        return None;
    }
    let largest = ordered.last()?.index;
    if !view.is_sized() {
        return Some(largest);
    }
    let sizes = expected_resolutions(ordered);
    if sizes.iter().all(Option::is_none) {
        // No layer has shown its size yet: the lowest, which starts soonest and costs least,
        // and whose first keyframe tells the others' sizes.
        return ordered.first().map(|layer| layer.index);
    }
    let fills = |size: &Option<(u32, u32)>| {
        size.is_some_and(|(width, height)| width >= view.width && height >= view.height)
    };
    Some(
        ordered
            .iter()
            .zip(&sizes)
            .find(|(_, size)| fills(size))
            .map_or(largest, |(layer, _)| layer.index),
    )
}

/// Each layer's resolution: its measured one, or else one inferred from the nearest layer
/// measured, as browsers make each simulcast layer half as wide and as tall as the one above;
/// `None` while no layer has sent a keyframe.
fn expected_resolutions(ordered: &[&LayerSnapshot]) -> Vec<Option<(u32, u32)>> {
    let measured: Vec<(usize, (u32, u32))> = ordered
        .iter()
        .enumerate()
        .filter_map(|(position, layer)| {
            let (width, height) = layer.resolution?;
            Some((position, (u32::from(width), u32::from(height))))
        })
        .collect();
    (0..ordered.len())
        .map(|position| {
            let (from, (width, height)) = *measured
                .iter()
                .min_by_key(|(from, _)| from.abs_diff(position))?;
            let scale = 1u32 << from.abs_diff(position).min(8);
            Some(if position >= from {
                (width.saturating_mul(scale), height.saturating_mul(scale))
            } else {
                (width / scale, height / scale)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera's three layers, all arriving, at 150, 500 and 1500 kbit/s.
    fn camera() -> Vec<LayerSnapshot> {
        [
            (320, 180, 150_000),
            (640, 360, 500_000),
            (1280, 720, 1_500_000),
        ]
        .iter()
        .enumerate()
        .map(|(index, &(width, height, bitrate))| LayerSnapshot {
            index: LayerIndex(index as u8),
            rid: ["q", "h", "f"][index].to_owned(),
            ssrc: None,
            bitrate,
            resolution: Some((width, height)),
            arriving: true,
        })
        .collect()
    }

    fn candidate(view: View) -> Candidate {
        Candidate {
            layers: camera(),
            view,
            screen: false,
            speaker: false,
            current: None,
        }
    }

    fn sized(width: u32, height: u32) -> View {
        View {
            visible: true,
            width,
            height,
        }
    }

    fn targets(decisions: &[Decision]) -> Vec<Option<u8>> {
        decisions
            .iter()
            .map(|decision| decision.target.map(|layer| layer.0))
            .collect()
    }

    #[test]
    fn the_tile_decides_without_a_budget() {
        let hidden = View {
            visible: false,
            ..View::default()
        };
        let allocation = allocate(
            Limit::None,
            &[
                candidate(sized(300, 170)),
                candidate(sized(600, 338)),
                candidate(sized(1000, 560)),
                candidate(View::default()),
                candidate(hidden),
            ],
        );
        assert_eq!(
            targets(&allocation),
            vec![Some(0), Some(1), Some(2), Some(2), None]
        );
        let hidden = allocation[4];
        assert_eq!((hidden.wanted, hidden.paused), (None, false));
        // A tall narrow tile crops the picture: it takes the layer as tall as the tile.
        let tall = allocate(Limit::None, &[candidate(sized(100, 350))]);
        assert_eq!(targets(&tall), vec![Some(1)]);
    }

    #[test]
    fn a_stopped_layer_is_replaced_by_the_best_below_and_still_wanted() {
        let mut stopped = candidate(View::default());
        stopped.layers[2].arriving = false;
        let allocation = allocate(Limit::None, &[stopped.clone()]);
        assert_eq!(allocation[0].target, Some(LayerIndex(1)));
        assert_eq!(allocation[0].wanted, Some(LayerIndex(2)));
        // Only a higher layer arrives: better than nothing.
        stopped.view = sized(100, 60);
        stopped.layers[0].arriving = false;
        stopped.layers[1].arriving = false;
        stopped.layers[2].arriving = true;
        let allocation = allocate(Limit::None, &[stopped]);
        assert_eq!(allocation[0].target, Some(LayerIndex(2)));
        assert_eq!(allocation[0].wanted, Some(LayerIndex(0)));
    }

    #[test]
    fn nothing_arriving_yet_waits_for_the_wanted_layer() {
        let mut quiet = candidate(sized(600, 338));
        for layer in &mut quiet.layers {
            layer.arriving = false;
        }
        let allocation = allocate(Limit::Budget(10_000), &[quiet]);
        assert_eq!(allocation[0].target, Some(LayerIndex(1)));
        assert!(!allocation[0].paused);
    }

    #[test]
    fn the_budget_goes_by_priority_and_what_does_not_fit_is_paused() {
        let mut screen = candidate(View::default());
        screen.screen = true;
        let mut speaker = candidate(sized(320, 180));
        speaker.speaker = true;
        let big = candidate(sized(1280, 720));
        let small = candidate(sized(640, 360));
        let videos = [small.clone(), big.clone(), speaker.clone(), screen.clone()];
        // 150 k each for the screen, the speaker and the big tile; the small tile's does not fit.
        let allocation = allocate(Limit::Budget(500_000), &videos);
        assert_eq!(targets(&allocation), vec![None, Some(0), Some(0), Some(0)]);
        assert!(allocation[0].paused);
        assert_eq!(allocation[0].wanted, Some(LayerIndex(1)));
        // Everybody's lowest layer, then the screen share goes up first.
        let allocation = allocate(Limit::Budget(1_000_000), &videos);
        assert_eq!(
            targets(&allocation),
            vec![Some(0), Some(0), Some(0), Some(1)]
        );
        // Plenty: everybody gets what the tile wants.
        let allocation = allocate(Limit::Budget(10_000_000), &[small, big, speaker, screen]);
        assert_eq!(
            targets(&allocation),
            vec![Some(1), Some(2), Some(0), Some(2)]
        );
    }

    #[test]
    fn every_video_gets_its_lowest_layer_before_any_gets_more() {
        let allocation = allocate(
            Limit::Budget(700_000),
            &[
                candidate(sized(1280, 720)),
                candidate(sized(1280, 720)),
                candidate(sized(1280, 720)),
            ],
        );
        // 3 x 150 k, then the first raised by 350 k would need 800 k: no.
        assert_eq!(targets(&allocation), vec![Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn the_forwarded_layer_is_kept_while_the_estimate_wavers() {
        let mut watching = candidate(sized(640, 360));
        assert_eq!(
            targets(&allocate(Limit::Budget(450_000), &[watching.clone()])),
            vec![Some(0)],
            "500 k does not fit in 450 k"
        );
        watching.current = Some(LayerIndex(1));
        assert_eq!(
            targets(&allocate(Limit::Budget(450_000), &[watching.clone()])),
            vec![Some(1)],
            "but what is being forwarded counts at 85 %"
        );
        assert_eq!(
            targets(&allocate(Limit::Budget(400_000), &[watching])),
            vec![Some(0)]
        );
    }

    #[test]
    fn one_step_at_a_time_after_congestion() {
        let mut big = candidate(sized(1280, 720));
        big.current = Some(LayerIndex(0));
        assert_eq!(
            targets(&allocate(Limit::OneStep, &[big.clone()])),
            vec![Some(1)]
        );
        big.current = Some(LayerIndex(1));
        assert_eq!(
            targets(&allocate(Limit::OneStep, &[big.clone()])),
            vec![Some(2)]
        );
        big.current = None;
        assert_eq!(
            targets(&allocate(Limit::OneStep, &[big])),
            vec![Some(2)],
            "nothing forwarded yet: nothing to step from"
        );
    }

    #[test]
    fn a_video_sent_as_one_stream_is_never_paused() {
        let mut single = candidate(sized(640, 360));
        single.layers.truncate(1);
        let layered = candidate(sized(640, 360));
        let allocation = allocate(Limit::Budget(100_000), &[single, layered]);
        assert_eq!(targets(&allocation), vec![Some(0), None]);
        assert!(!allocation[0].paused && allocation[1].paused);
    }

    #[test]
    fn what_is_sent_is_the_current_layers_rate() {
        let mut first = candidate(sized(1280, 720));
        first.current = Some(LayerIndex(2));
        let mut second = candidate(sized(640, 360));
        second.current = Some(LayerIndex(0));
        let mut stopped = candidate(sized(640, 360));
        stopped.current = Some(LayerIndex(1));
        stopped.layers[1].arriving = false;
        assert_eq!(
            sending(&[first, second, stopped, candidate(View::default())]),
            1_650_000
        );
    }

    #[test]
    fn layers_are_ordered_by_resolution_once_known() {
        // A publisher that lists its layers high to low.
        let mut reversed = candidate(sized(300, 170));
        reversed.layers.reverse();
        for (index, layer) in reversed.layers.iter_mut().enumerate() {
            layer.index = LayerIndex(index as u8);
        }
        let allocation = allocate(Limit::None, &[reversed.clone()]);
        assert_eq!(allocation[0].target, Some(LayerIndex(2)));
        // Without resolutions, the publisher's order.
        for layer in &mut reversed.layers {
            layer.resolution = None;
        }
        let allocation = allocate(Limit::None, &[reversed]);
        assert_eq!(
            allocation[0].target,
            Some(LayerIndex(0)),
            "the lowest as the publisher lists them"
        );
    }

    #[test]
    fn sizes_not_measured_yet_are_inferred_from_a_measured_layer() {
        let only = |measured: usize, view: View| {
            let mut camera = candidate(view);
            for (index, layer) in camera.layers.iter_mut().enumerate() {
                if index != measured {
                    layer.resolution = None;
                }
            }
            allocate(Limit::None, &[camera])[0].target
        };
        // Only the lowest has sent a keyframe: the middle is taken to be 640x360.
        assert_eq!(only(0, sized(600, 340)), Some(LayerIndex(1)));
        assert_eq!(only(0, sized(1200, 700)), Some(LayerIndex(2)));
        // Only the highest: the lowest is taken to be 320x180.
        assert_eq!(only(2, sized(300, 170)), Some(LayerIndex(0)));
        // None yet: a sized tile starts on the lowest, a tile of unknown size on the largest.
        let mut unmeasured = candidate(sized(1200, 700));
        for layer in &mut unmeasured.layers {
            layer.resolution = None;
        }
        assert_eq!(
            allocate(Limit::None, &[unmeasured.clone()])[0].target,
            Some(LayerIndex(0))
        );
        unmeasured.view = View::default();
        assert_eq!(
            allocate(Limit::None, &[unmeasured])[0].target,
            Some(LayerIndex(2))
        );
    }
}
