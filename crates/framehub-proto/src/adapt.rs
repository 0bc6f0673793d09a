//! Adaptive quality per viewer: a sans-IO controller that moves a viewer
//! between quality tiers from what its acks say about the link.
//!
//! Signals, fed on every ack:
//!
//! * **queueing delay** = smoothed RTT − the smallest RTT seen over the last
//!   [`AdaptConfig::min_rtt_window`] (the link's base delay, as in delay-based
//!   congestion control such as LEDBAT, RFC 6817, and BBR's min-RTT filter).
//!   Frames queueing on a link that is too slow raise it; a far but fast
//!   link does not.
//! * the client's **decode queue** (`decode_queue_size` of its acks): a
//!   client that cannot decode as fast as frames arrive.
//!
//! A viewer is *congested* when the queueing delay exceeds
//! [`AdaptConfig::congested_delay`] or the decode queue reaches
//! [`AdaptConfig::congested_decode_queue`]; *healthy* when the delay is under
//! [`AdaptConfig::healthy_delay`] and the decode queue at most 1. Hysteresis:
//! it steps down one tier after being congested for
//! [`AdaptConfig::step_down_after`] (and at least that long after the last
//! change), and up one tier after being healthy for the longer
//! [`AdaptConfig::step_up_after`]; in between it stays. A step up is a probe:
//! when it fails (the viewer steps down again within `step_up_after`, its
//! link fitting between two tiers) the wait before the next probe doubles,
//! up to [`AdaptConfig::max_step_up_after`], the exponential back-off of
//! failed probes (as of a TCP retransmission timer, RFC 6298 §5.5); a probe
//! that holds resets it. Tier 0 is the best.
//!
//! A transport that estimates the link's bandwidth itself (WebRTC: str0m's
//! TWCC estimator, or a receiver's REMB) gives the estimate instead
//! ([`Adapter::on_estimate`]); from the first estimate on, the viewer is
//! congested while the estimate cannot carry its tier's bit rate and healthy
//! while it carries a better tier's, and the same hysteresis and probe
//! back-off apply. (Its acks then say only when bytes left the hub, so their
//! RTT no longer counts.)

use std::time::{Duration, Instant};

/// One quality tier a stream offers, best first (tier 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityTier {
    /// JPEG quality (1–100) of image frames at this tier.
    pub jpeg_quality: u8,
    /// Image frames are encoded at 1/`scale_divisor` of the stream's size
    /// (1: full size, 2: half); the header keeps the stream's size and the
    /// client scales the picture up.
    pub scale_divisor: u32,
    /// Target bit rate of video at this tier, bit/s.
    pub bitrate: u64,
}

/// Thresholds and timings of the controller (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptConfig {
    /// Queueing delay above which the viewer is congested (default 100 ms).
    pub congested_delay: Duration,
    /// Queueing delay under which it is healthy (default 30 ms).
    pub healthy_delay: Duration,
    /// Decode queue length at which it is congested (default 3).
    pub congested_decode_queue: u32,
    /// Congested this long → one tier down (default 1 s).
    pub step_down_after: Duration,
    /// Healthy this long → one tier up (default 5 s).
    pub step_up_after: Duration,
    /// A step up that is followed by a step down within `step_up_after` (a
    /// failed probe: the link sits between two tiers) doubles the health
    /// needed before the next step up, up to this (default 60 s); a step up
    /// that holds brings it back to `step_up_after`. So a viewer whose link
    /// fits between two tiers tries the better one less and less often
    /// (after 5, 10, 20, 40, 60 s) instead of every 6 s.
    pub max_step_up_after: Duration,
    /// Window of the base-RTT minimum (default 30 s).
    pub min_rtt_window: Duration,
}

impl Default for AdaptConfig {
    fn default() -> Self {
        AdaptConfig {
            congested_delay: Duration::from_millis(100),
            healthy_delay: Duration::from_millis(30),
            congested_decode_queue: 3,
            step_down_after: Duration::from_secs(1),
            step_up_after: Duration::from_secs(5),
            max_step_up_after: Duration::from_secs(60),
            min_rtt_window: Duration::from_secs(30),
        }
    }
}

/// Buckets of the windowed RTT minimum (each covers window / BUCKETS).
const BUCKETS: usize = 6;

/// What the controller concluded from one update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Stay at the current tier.
    Stay,
    /// Moved one tier down (worse quality), to the tier given.
    Down(u8),
    /// Moved one tier up (better quality), to the tier given.
    Up(u8),
}

/// The per-viewer controller.
#[derive(Debug, Clone)]
pub struct Adapter {
    cfg: AdaptConfig,
    tiers: u8,
    tier: u8,
    /// (bucket start, smallest RTT in it), newest last; at most [`BUCKETS`].
    min_rtt: Vec<(Instant, Duration)>,
    congested_since: Option<Instant>,
    healthy_since: Option<Instant>,
    last_change: Instant,
    /// Whether the last change was a step up.
    last_was_up: bool,
    /// Health needed before the next step up (`step_up_after`, doubled
    /// after each failed probe up to `max_step_up_after`).
    up_hold: Duration,
    /// The best tier the transport's bandwidth estimate carries, once one
    /// was given: it then decides instead of the RTT.
    estimate_fit: Option<u8>,
}

impl Adapter {
    /// A controller over `tiers` tiers (at least 1), starting at tier 0 at `now`.
    pub fn new(now: Instant, cfg: AdaptConfig, tiers: u8) -> Self {
        Adapter {
            tiers: tiers.max(1),
            tier: 0,
            min_rtt: Vec::with_capacity(BUCKETS + 1),
            congested_since: None,
            healthy_since: None,
            last_change: now,
            last_was_up: false,
            up_hold: cfg.step_up_after,
            estimate_fit: None,
            cfg,
        }
    }

    /// The transport's bandwidth estimate at `now`: `fit` is the best tier
    /// (0 = best) whose bit rate it carries. From now on the estimate, not
    /// the RTT, says congested (`fit` worse than the current tier) or
    /// healthy (`fit` better); steps follow the same holds as [`update`](Self::update).
    pub fn on_estimate(&mut self, now: Instant, fit: u8) -> Step {
        self.estimate_fit = Some(fit.min(self.tiers - 1));
        self.decide(now, false, false)
    }

    /// Whether a bandwidth estimate drives this controller.
    pub fn estimated(&self) -> bool {
        self.estimate_fit.is_some()
    }

    /// The current tier (0 = best).
    pub fn tier(&self) -> u8 {
        self.tier
    }

    /// The link's base RTT: the smallest sample of the window (None before one).
    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt.iter().map(|b| b.1).min()
    }

    /// Records one RTT sample (send → ack of one frame).
    pub fn on_rtt_sample(&mut self, now: Instant, rtt: Duration) {
        let span = self.cfg.min_rtt_window / BUCKETS as u32;
        let window = self.cfg.min_rtt_window;
        self.min_rtt
            .retain(|b| now.saturating_duration_since(b.0) < window);
        match self.min_rtt.last_mut() {
            Some(b) if now.saturating_duration_since(b.0) < span => b.1 = b.1.min(rtt),
            _ => {
                self.min_rtt.push((now, rtt));
                if self.min_rtt.len() > BUCKETS {
                    self.min_rtt.remove(0);
                }
            }
        }
    }

    /// Decides from the smoothed RTT `srtt` and the client's decode queue at
    /// `now`; moves at most one tier.
    pub fn update(&mut self, now: Instant, srtt: Duration, decode_queue: u32) -> Step {
        let delay = self
            .min_rtt()
            .map_or(Duration::ZERO, |m| srtt.saturating_sub(m));
        let congested =
            delay > self.cfg.congested_delay || decode_queue >= self.cfg.congested_decode_queue;
        let healthy = delay < self.cfg.healthy_delay && decode_queue <= 1;
        self.decide(now, congested, healthy)
    }

    /// One decision from the link's state (the estimate's, when there is
    /// one); moves at most one tier.
    fn decide(&mut self, now: Instant, congested: bool, healthy: bool) -> Step {
        let (congested, healthy) = match self.estimate_fit {
            Some(fit) => (fit > self.tier, fit < self.tier),
            None => (congested, healthy),
        };
        if congested {
            self.healthy_since = None;
            let since = *self.congested_since.get_or_insert(now);
            let held = now.saturating_duration_since(since) >= self.cfg.step_down_after;
            let settled =
                now.saturating_duration_since(self.last_change) >= self.cfg.step_down_after;
            if held && settled && self.tier + 1 < self.tiers {
                if self.last_was_up {
                    let since_up = now.saturating_duration_since(self.last_change);
                    self.up_hold = if since_up < self.cfg.step_up_after {
                        // The probe failed: wait longer before the next one.
                        (self.up_hold * 2)
                            .min(self.cfg.max_step_up_after.max(self.cfg.step_up_after))
                    } else {
                        self.cfg.step_up_after
                    };
                }
                self.tier += 1;
                self.last_change = now;
                self.last_was_up = false;
                self.congested_since = None;
                return Step::Down(self.tier);
            }
        } else if healthy {
            self.congested_since = None;
            let since = *self.healthy_since.get_or_insert(now);
            let held = now.saturating_duration_since(since) >= self.up_hold;
            let settled = now.saturating_duration_since(self.last_change) >= self.up_hold;
            if held && settled && self.tier > 0 {
                if self.last_was_up {
                    // The previous step up held: probes are cheap again.
                    self.up_hold = self.cfg.step_up_after;
                }
                self.tier -= 1;
                self.last_change = now;
                self.last_was_up = true;
                self.healthy_since = None;
                return Step::Up(self.tier);
            }
        } else {
            self.congested_since = None;
            self.healthy_since = None;
        }
        Step::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Feeds `rtt` every 50 ms for `secs`, returning the steps taken.
    fn run(a: &mut Adapter, now: &mut Instant, secs: f64, rtt: Duration, dq: u32) -> Vec<Step> {
        let mut steps = vec![];
        let n = (secs * 20.0).round() as u32;
        for _ in 0..n {
            *now += 50 * MS;
            a.on_rtt_sample(*now, rtt);
            let s = a.update(*now, rtt, dq);
            if s != Step::Stay {
                steps.push(s);
            }
        }
        steps
    }

    #[test]
    fn steps_down_when_congested_and_back_up_slower() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 4);
        assert!(
            run(&mut a, &mut now, 3.0, 5 * MS, 0).is_empty(),
            "healthy at tier 0"
        );
        assert_eq!(a.min_rtt(), Some(5 * MS));
        // Frames queue: 250 ms RTT. One step per second, down to the last tier.
        let steps = run(&mut a, &mut now, 4.5, 250 * MS, 0);
        assert_eq!(steps, vec![Step::Down(1), Step::Down(2), Step::Down(3)]);
        assert!(
            run(&mut a, &mut now, 3.0, 250 * MS, 0).is_empty(),
            "no tier below 3"
        );
        // The link recovers: one step up per 5 s of health.
        let steps = run(&mut a, &mut now, 4.9, 6 * MS, 0);
        assert!(steps.is_empty(), "not before 5 s of health: {steps:?}");
        let steps = run(&mut a, &mut now, 10.2, 6 * MS, 0);
        assert_eq!(steps, vec![Step::Up(2), Step::Up(1)]);
        assert_eq!(a.tier(), 1);
    }

    #[test]
    fn a_link_between_two_tiers_is_probed_less_and_less_often() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 4);
        run(&mut a, &mut now, 1.0, 5 * MS, 0);
        // The link carries tier 1 but not tier 0: at tier 0 frames queue
        // (250 ms RTT), at tier 1 they do not. Record when each step happens.
        let mut ups = vec![];
        let start = now;
        for _ in 0..(200 * 20) {
            now += 50 * MS;
            let rtt = if a.tier() == 0 { 250 * MS } else { 6 * MS };
            a.on_rtt_sample(now, rtt);
            if let Step::Up(_) = a.update(now, rtt, 0) {
                ups.push(now.duration_since(start).as_secs_f64());
            }
        }
        // Each failed probe doubles the wait before the next, up to 60 s.
        let gaps: Vec<f64> = ups.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(ups.len() >= 4, "{ups:?}");
        assert!(
            gaps.windows(2).all(|g| g[1] >= g[0] - 0.1),
            "the waits never shrink: {gaps:?}"
        );
        assert!(gaps[1] > 1.5 * gaps[0], "doubling: {gaps:?}");
        assert!(
            gaps.iter().all(|g| *g <= 60.0 + 1.0 + 0.2),
            "capped at 60 s (+ the step down): {gaps:?}"
        );
        // Once a probe holds, the next one comes after the base 5 s again.
        let mut a = Adapter::new(now, AdaptConfig::default(), 4);
        run(&mut a, &mut now, 1.0, 5 * MS, 0);
        run(&mut a, &mut now, 2.5, 300 * MS, 0);
        assert_eq!(a.tier(), 2);
        // A failed probe (up to 1, congested again at 1) doubles the hold …
        let steps = run(&mut a, &mut now, 5.1, 6 * MS, 0);
        assert_eq!(steps, vec![Step::Up(1)]);
        let steps = run(&mut a, &mut now, 1.1, 300 * MS, 0);
        assert_eq!(steps, vec![Step::Down(2)]);
        let steps = run(&mut a, &mut now, 9.0, 6 * MS, 0);
        assert!(steps.is_empty(), "10 s now: {steps:?}");
        let steps = run(&mut a, &mut now, 1.1, 6 * MS, 0);
        assert_eq!(steps, vec![Step::Up(1)]);
        // That probe holds; the next one still waits the 10 s …
        let steps = run(&mut a, &mut now, 10.1, 6 * MS, 0);
        assert_eq!(steps, vec![Step::Up(0)]);
        // … but a probe that held brings the wait back to 5 s: congestion
        // long after it, then 5 s of health, and the viewer is back.
        assert!(run(&mut a, &mut now, 6.0, 6 * MS, 0).is_empty());
        let steps = run(&mut a, &mut now, 1.1, 300 * MS, 0);
        assert_eq!(steps, vec![Step::Down(1)]);
        let steps = run(&mut a, &mut now, 5.1, 6 * MS, 0);
        assert_eq!(steps, vec![Step::Up(0)]);
    }

    #[test]
    fn hysteresis_a_middling_link_stays_put() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 4);
        run(&mut a, &mut now, 1.0, 5 * MS, 0);
        run(&mut a, &mut now, 2.5, 300 * MS, 0);
        assert_eq!(a.tier(), 2);
        // 60 ms of queueing: neither congested nor healthy — no oscillation.
        assert!(run(&mut a, &mut now, 30.0, 65 * MS, 0).is_empty());
        // Alternating spikes shorter than the hold never step.
        for _ in 0..10 {
            assert!(run(&mut a, &mut now, 0.5, 300 * MS, 0).is_empty());
            assert!(run(&mut a, &mut now, 2.0, 6 * MS, 0).is_empty());
        }
        assert_eq!(a.tier(), 2);
    }

    #[test]
    fn a_far_but_fast_link_is_healthy_and_a_decode_backlog_is_congestion() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 3);
        assert!(
            run(&mut a, &mut now, 10.0, 180 * MS, 0).is_empty(),
            "base RTT 180 ms"
        );
        let steps = run(&mut a, &mut now, 1.2, 180 * MS, 4);
        assert_eq!(steps, vec![Step::Down(1)]);
    }

    #[test]
    fn the_base_rtt_forgets_old_samples() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 2);
        a.on_rtt_sample(now, MS);
        run(&mut a, &mut now, 31.0, 40 * MS, 0);
        assert_eq!(
            a.min_rtt(),
            Some(40 * MS),
            "the 1 ms sample left the 30 s window"
        );
    }

    #[test]
    fn a_bandwidth_estimate_decides_instead_of_the_rtt() {
        let mut now = Instant::now();
        let mut a = Adapter::new(now, AdaptConfig::default(), 4);
        assert!(!a.estimated());
        // The estimate carries only tier 2: congested, one step per second.
        assert_eq!(a.on_estimate(now, 2), Step::Stay);
        // Acks with a tiny RTT (bytes leave the hub at once) change nothing.
        let steps = run(&mut a, &mut now, 2.6, MS, 0);
        assert_eq!(steps, vec![Step::Down(1), Step::Down(2)]);
        assert!(run(&mut a, &mut now, 3.0, MS, 0).is_empty(), "fits tier 2");
        // A far worse RTT does not either: the estimate says tier 2 fits.
        assert!(run(&mut a, &mut now, 3.0, 400 * MS, 0).is_empty());
        // The estimate grows to tier 0: up after 5 s of it, one tier at a time.
        a.on_estimate(now, 0);
        let steps = run(&mut a, &mut now, 4.9, MS, 0);
        assert!(steps.is_empty(), "not before 5 s: {steps:?}");
        let steps = run(&mut a, &mut now, 5.2, MS, 0);
        assert_eq!(steps, vec![Step::Up(1), Step::Up(0)]);
        // Out of range: the last tier.
        a.on_estimate(now, 9);
        let steps = run(&mut a, &mut now, 3.2, MS, 0);
        assert_eq!(steps, vec![Step::Down(1), Step::Down(2), Step::Down(3)]);
    }
}
