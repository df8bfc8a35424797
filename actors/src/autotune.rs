//! The auto-tuning planner as a plain state machine (no actix, time passed
//! in). On an auto-tuned star hub it turns the one-way delays its leaf links
//! report into round changes, and, when the measurements overturn the
//! latency hint's choice of star or fanout, into one switch to the other
//! overlay; on a leaf it keeps track of the hub's announced switch. The
//! topology manager forwards reports, wake-ups and the hub's announcements
//! to it and carries out the [`Action`] it returns.
//!
//! States ([`State`]) and what moves between them:
//! * `HintedStar` → (half the leaves report delays no star round can meet)
//!   → `MeasuredFanout`; its rounds follow the reports meanwhile.
//! * `HintedFanout` → (half the leaves report delays a star round meets)
//!   → `MeasuredStar`, whose rounds follow the reports from then on.
//! * A leaf goes from either hinted state to the measured one the hub
//!   announces. A run switches overlay at most once.

use crate::config::{GossipConfig, OverlayKind, Targets};
use crate::link::align_up;
use crate::overlay;
use crate::protocol::RoundChange;
use std::collections::BTreeMap;

/// How far ahead the hub announces a switch from fanout to a star, on top of
/// two one-way delays: fanout hub messages to a leaf are irregular (its own
/// values, repairs), so most leaves hear within this.
const STAR_SWITCH_LEAD_MS: u64 = 1_000;

/// What the topology manager does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Hand this round change to every round-leading link (they announce
    /// it and switch at its instant).
    SetRound(RoundChange),
    /// Call [`AutoTuner::on_wake`] at this instant: a round change is
    /// pending, and the next one is planned once it is in effect.
    WakeAt(u64),
    /// Hand this overlay switch to every round-leading link (their
    /// announcement to the leaves) and call [`AutoTuner::on_switch_due`] at
    /// its instant.
    Announce(RoundChange),
    /// Call [`AutoTuner::on_switch_due`] at this instant.
    SwitchAt(u64),
    /// Replace the links by the measured overlay's
    /// ([`AutoTuner::measured_round`]); for a star (a non-zero round), hand
    /// the change to every link that leads or follows rounds, which puts the
    /// switch's grid into effect on them.
    Switch(RoundChange),
}

/// Where the planner stands. A switch is a [`RoundChange`]: star rounds of
/// its length from its instant, or fanout from its instant for length 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The hint chose fanout.
    HintedFanout,
    /// The hint chose a star; `round` is the change last handed to the
    /// links (None while the hint's first round lasts).
    HintedStar { round: Option<RoundChange> },
    /// Measurements chose a star instead of the hinted fanout; `switched`
    /// once the links are replaced; `round` as for `HintedStar`.
    MeasuredStar {
        switch: RoundChange,
        switched: bool,
        round: RoundChange,
    },
    /// Measurements chose fanout instead of the hinted star; final.
    MeasuredFanout { switch: RoundChange, switched: bool },
}

#[derive(Debug, Clone)]
pub struct AutoTuner {
    targets: Targets,
    linger_ms: u64,
    /// The round length the links start with (the hint's).
    first_round_ms: u64,
    /// Each leaf link's latest report: (median, highest) one-way delay, ms.
    delays: BTreeMap<String, (u64, u64)>,
    state: State,
    /// Whether an [`Action::WakeAt`] is outstanding.
    wake_pending: bool,
}

impl AutoTuner {
    /// The planner for a node with latency targets; None without them.
    pub fn new(cfg: &GossipConfig) -> Option<Self> {
        let targets = cfg.targets?;
        let hinted = overlay::effective(cfg);
        Some(AutoTuner {
            targets,
            linger_ms: cfg.linger_ms,
            first_round_ms: hinted.interval_ms,
            delays: BTreeMap::new(),
            state: match hinted.overlay {
                OverlayKind::Fanout => State::HintedFanout,
                _ => State::HintedStar { round: None },
            },
            wake_pending: false,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The overlay's round once a measured switch is in effect (0: fanout);
    /// None while the links follow the hint's overlay.
    pub fn measured_round(&self) -> Option<u64> {
        match self.state {
            State::MeasuredStar {
                switch,
                switched: true,
                ..
            }
            | State::MeasuredFanout {
                switch,
                switched: true,
            } => Some(switch.0),
            _ => None,
        }
    }

    /// A leaf link's latest measurement, at `now`, with `links` links in all.
    pub fn on_report(
        &mut self,
        now: u64,
        links: usize,
        peer: &str,
        median_ms: u64,
        highest_ms: u64,
    ) -> Action {
        self.delays
            .insert(peer.to_string(), (median_ms, highest_ms));
        self.plan(now, links)
    }

    /// The instant of an [`Action::WakeAt`] has come.
    pub fn on_wake(&mut self, now: u64, links: usize) -> Action {
        self.wake_pending = false;
        self.plan(now, links)
    }

    /// A leaf heard the hub's switch (the first one counts).
    pub fn on_hub_switch(&mut self, change: RoundChange) -> Action {
        if !matches!(self.state, State::HintedFanout | State::HintedStar { .. }) {
            return Action::Nothing;
        }
        match change.0 {
            0 => log::info!(
                "auto-tuning: the hub leaves the star for fanout from {}",
                change.1
            ),
            round => log::info!(
                "auto-tuning: the hub leaves fanout for star rounds of {round} ms from {}",
                change.1
            ),
        }
        self.state = measured(change);
        Action::SwitchAt(change.1)
    }

    /// The instant of an [`Action::Announce`] or [`Action::SwitchAt`] has
    /// come.
    pub fn on_switch_due(&mut self) -> Action {
        match &mut self.state {
            State::MeasuredStar {
                switch, switched, ..
            }
            | State::MeasuredFanout { switch, switched } => {
                if *switched {
                    return Action::Nothing;
                }
                *switched = true;
                Action::Switch(*switch)
            }
            State::HintedFanout | State::HintedStar { .. } => Action::Nothing,
        }
    }

    /// Plans from every leaf's latest measurement.
    fn plan(&mut self, now: u64, links: usize) -> Action {
        let mut medians: Vec<u64> = self.delays.values().map(|(m, _)| *m).collect();
        medians.sort_unstable();
        let Some(&typical) = medians.get(medians.len() / 2) else {
            return Action::Nothing;
        };
        let highest = self
            .delays
            .values()
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(typical);
        let star_round = overlay::auto_round(self.targets, typical, highest, self.linger_ms);
        // An overlay switch waits for half the leaves: one sample is noise.
        let heard_enough = self.delays.len() * 2 >= links;
        let delays = (typical, highest);
        match (self.state, star_round) {
            (State::HintedFanout, Some(round)) if heard_enough => {
                self.leave_fanout_for_star(now, round, delays)
            }
            (State::HintedStar { round: current }, None) if heard_enough => {
                self.leave_star_for_fanout(now, current, delays)
            }
            (State::HintedStar { round: current }, Some(round)) => {
                self.change_round(now, current, round, delays)
            }
            (State::MeasuredStar { round: current, .. }, Some(round)) => {
                self.change_round(now, Some(current), round, delays)
            }
            // Too few leaves heard to switch; measured fanout stays; a
            // measured star keeps its round when the delays get worse (one
            // overlay switch per run).
            _ => Action::Nothing,
        }
    }

    /// Moves the star to rounds of `round` ms, unless that is within 5% of
    /// the current length or a change is still pending.
    fn change_round(
        &mut self,
        now: u64,
        current: Option<RoundChange>,
        round: u64,
        (typical, highest): (u64, u64),
    ) -> Action {
        let (interval, phase) = match current {
            // One change at a time: plan again once this one is in effect,
            // with whatever was measured meanwhile.
            Some(RoundChange(_, from)) if now < from => {
                if self.wake_pending {
                    return Action::Nothing;
                }
                self.wake_pending = true;
                return Action::WakeAt(from);
            }
            Some(RoundChange(interval, from)) => (interval, from % interval),
            None => (self.first_round_ms, 0),
        };
        // Small changes are noise: rounds only move by 5% or more.
        if interval.abs_diff(round) * 20 < interval {
            return Action::Nothing;
        }
        // Every link changes at one instant of the current grid, late enough
        // for the hub's next round (within a round plus its after-peer wait)
        // to carry the announcement to the slowest leaf.
        let lead = interval + 2 * highest + self.linger_ms;
        let from = align_up(now + lead, interval, phase);
        log::info!(
            "auto-tuning: one-way delay {typical}/{highest} ms (typical/highest); \
             round {round} ms from {from}"
        );
        let change = RoundChange(round, from);
        match &mut self.state {
            State::HintedStar { round } => *round = Some(change),
            State::MeasuredStar { round, .. } => *round = change,
            State::HintedFanout | State::MeasuredFanout { .. } => {}
        }
        Action::SetRound(change)
    }

    /// The hint chose fanout, but the measured delays allow a star round
    /// that meets the targets: the star replaces fanout at an instant far
    /// enough ahead for the hub's announcement to reach most leaves first
    /// (one that hears later switches on hearing).
    fn leave_fanout_for_star(
        &mut self,
        now: u64,
        round: u64,
        (typical, highest): (u64, u64),
    ) -> Action {
        let from = now + STAR_SWITCH_LEAD_MS + 2 * highest;
        log::info!(
            "auto-tuning: one-way delay {typical}/{highest} ms (typical/highest) allows a star; \
             leaving fanout for rounds of {round} ms from {from}"
        );
        let change = RoundChange(round, from);
        self.state = measured(change);
        Action::Announce(change)
    }

    /// The hint chose a star, but the measured delays leave no star round
    /// that meets the targets: fanout (one hop) replaces it, from an instant
    /// the hub's next round can announce in time.
    fn leave_star_for_fanout(
        &mut self,
        now: u64,
        current: Option<RoundChange>,
        (typical, highest): (u64, u64),
    ) -> Action {
        let interval = current.map_or(self.first_round_ms, |r| r.0);
        let from = now + interval + 2 * highest + self.linger_ms;
        log::warn!(
            "auto-tuning: one-way delay {typical}/{highest} ms (typical/highest) leaves no \
             star round that meets the targets; switching to fanout from {from}"
        );
        let change = RoundChange(0, from);
        self.state = measured(change);
        Action::Announce(change)
    }
}

/// The state of a switch decided (or heard of) but not made yet.
fn measured(switch: RoundChange) -> State {
    match switch.0 {
        0 => State::MeasuredFanout {
            switch,
            switched: false,
        },
        _ => State::MeasuredStar {
            switch,
            switched: false,
            round: switch,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Profile};

    /// Auto-tuning toward these targets, the default profile otherwise
    /// (hint 100 ms, linger 10 ms).
    fn tuner(median_ms: u64, max_ms: u64) -> AutoTuner {
        let mut config = Config::profile(Profile::Default);
        config.gossip.targets = Some(Targets { median_ms, max_ms });
        AutoTuner::new(&config.gossip).expect("targets given")
    }

    /// The hub's four leaves.
    const LINKS: usize = 4;

    #[test]
    fn no_targets_no_planner() {
        assert!(AutoTuner::new(&Config::profile(Profile::Default).gossip).is_none());
    }

    #[test]
    fn a_hinted_star_moves_its_rounds_one_change_at_a_time() {
        // The 3d limits: at the hinted 100 ms a star meets them; its first
        // round is 200 ms.
        let mut t = tuner(400, 600);
        assert_eq!(t.state(), State::HintedStar { round: None });
        // The round for a 100 ms leaf, from an instant of the 200 ms grid at
        // least a round + 2·100 + 10 ahead.
        let first = RoundChange(370, 600);
        assert_eq!(
            t.on_report(0, LINKS, "n1", 100, 100),
            Action::SetRound(first)
        );
        // Reports while that change is pending wait for it, with one wake-up.
        assert_eq!(t.on_report(100, LINKS, "n2", 100, 133), Action::WakeAt(600));
        assert_eq!(t.on_report(200, LINKS, "n2", 100, 133), Action::Nothing);
        // Once in effect: the round for the slowest leaf, on the 370 ms grid
        // from 600 (600 + 2·370 = 1340 ≥ 600 + 370 + 2·133 + 10).
        assert_eq!(
            t.on_wake(600, LINKS),
            Action::SetRound(RoundChange(300, 1_340))
        );
        assert_eq!(
            t.state(),
            State::HintedStar {
                round: Some(RoundChange(300, 1_340))
            }
        );
        // A change under 5% is noise.
        assert_eq!(t.on_report(2_000, LINKS, "n2", 100, 130), Action::Nothing);
        assert_eq!(t.measured_round(), None);
    }

    #[test]
    fn a_hinted_fanout_switches_once_to_the_star_half_the_leaves_allow() {
        // At the hinted 100 ms no star meets 200/300: fanout.
        let mut t = tuner(200, 300);
        assert_eq!(t.state(), State::HintedFanout);
        assert_eq!(
            t.on_report(0, LINKS, "n1", 50, 50),
            Action::Nothing,
            "one of four"
        );
        // min(300 − 2·52 − 10 − 20, 2·(200 − 2·50 − 10)) = 166, in 10 ms steps,
        // from a second and two delays ahead.
        let switch = RoundChange(160, 100 + 1_000 + 2 * 52);
        assert_eq!(
            t.on_report(100, LINKS, "n2", 50, 52),
            Action::Announce(switch)
        );
        assert_eq!(t.measured_round(), None, "not before the instant");
        // Until then the star's round is the switch's: a slower leaf's
        // round waits for it.
        assert_eq!(
            t.on_report(200, LINKS, "n3", 50, 60),
            Action::WakeAt(switch.1)
        );
        assert_eq!(t.on_switch_due(), Action::Switch(switch));
        assert_eq!(t.measured_round(), Some(160));
        assert_eq!(t.on_switch_due(), Action::Nothing, "once");
        // The measured star's rounds follow the delays (150 ms from an
        // instant of the switch's grid, 1204 + 160k), but worse delays never
        // bring fanout back.
        assert_eq!(
            t.on_wake(switch.1, LINKS),
            Action::SetRound(RoundChange(150, 1_524))
        );
        assert_eq!(t.on_report(5_000, LINKS, "n1", 150, 150), Action::Nothing);
        assert_eq!(t.measured_round(), Some(160));
    }

    #[test]
    fn a_hinted_star_switches_once_to_fanout_when_no_round_meets_the_targets() {
        let mut t = tuner(400, 600);
        assert_eq!(
            t.on_report(0, LINKS, "n1", 200, 200),
            Action::Nothing,
            "one of four"
        );
        // The first round + 2·200 + 10 ahead.
        let switch = RoundChange(0, 50 + 200 + 400 + 10);
        assert_eq!(
            t.on_report(50, LINKS, "n2", 200, 200),
            Action::Announce(switch)
        );
        assert_eq!(
            t.on_report(60, LINKS, "n3", 10, 10),
            Action::Nothing,
            "final"
        );
        assert_eq!(t.on_switch_due(), Action::Switch(switch));
        assert_eq!(t.measured_round(), Some(0));
        assert_eq!(t.on_report(5_000, LINKS, "n4", 10, 10), Action::Nothing);
    }

    #[test]
    fn a_leaf_follows_the_first_switch_it_hears() {
        let mut t = tuner(200, 300);
        assert_eq!(t.on_switch_due(), Action::Nothing, "nothing heard");
        let switch = RoundChange(160, 1_500);
        assert_eq!(t.on_hub_switch(switch), Action::SwitchAt(1_500));
        assert_eq!(t.on_hub_switch(RoundChange(0, 3_000)), Action::Nothing);
        assert_eq!(t.on_switch_due(), Action::Switch(switch));
        assert_eq!(t.measured_round(), Some(160));
        let mut star_leaf = tuner(400, 600);
        assert_eq!(
            star_leaf.on_hub_switch(RoundChange(0, 1_500)),
            Action::SwitchAt(1_500)
        );
        assert_eq!(
            star_leaf.state(),
            State::MeasuredFanout {
                switch: RoundChange(0, 1_500),
                switched: false
            }
        );
    }
}
