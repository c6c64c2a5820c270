//! Live metrics of the runtime: counters, fps and latency percentiles over a sliding window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::guidance::GuidanceStats;

/// A copy of the runtime's counters and rates at one time (published on a watch channel after
/// every event, and written as the final `summary` record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Clock time of the snapshot.
    pub time_ms: u64,
    /// Valid frames received.
    pub frames_in: u64,
    /// Frames classified and reported.
    pub frames_done: u64,
    /// Frames replaced in the latest-frame slot before inference took them.
    pub frames_dropped: u64,
    /// Valid frames not classified because classification was disabled
    /// ([`super::Control::SetEnabled`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub frames_disabled: u64,
    /// Frames refused before inference (bad size, unreadable file).
    pub frames_bad: u64,
    /// Frames the classifier failed on.
    pub frames_failed: u64,
    /// Cue messages received (valid or not).
    pub cues_in: u64,
    /// Cue messages refused: unreadable lines plus guidance rejections.
    pub cues_rejected: u64,
    /// The guidance state machine's counters.
    pub guidance: GuidanceStats,
    /// Completed frames per second over the window.
    pub fps: f64,
    /// Latency (arrival to result) percentiles over the window, in ms.
    pub latency_p50_ms: f64,
    /// 90th percentile latency in ms.
    pub latency_p90_ms: f64,
    /// 99th percentile latency in ms.
    pub latency_p99_ms: f64,
    /// Branches run for the latest frame.
    pub active_branches: usize,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Sliding window of (completion time, latency) for the rates.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    cap: usize,
    items: VecDeque<(u64, u64)>,
}

impl LatencyWindow {
    /// A window over the last `cap` frames (at least 1).
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: VecDeque::new(),
        }
    }

    /// Record one completed frame.
    pub fn push(&mut self, done_us: u64, latency_us: u64) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back((done_us, latency_us));
    }

    /// Frames per second between the first and last completion in the window (0 with fewer than
    /// two frames or no elapsed time).
    pub fn fps(&self) -> f64 {
        match (self.items.front(), self.items.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                (self.items.len() - 1) as f64 * 1e6 / (b.0 - a.0) as f64
            }
            _ => 0.0,
        }
    }

    /// Nearest-rank percentile of the latencies, in ms (0 when empty); `p` in (0, 1].
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut v: Vec<u64> = self.items.iter().map(|x| x.1).collect();
        if v.is_empty() {
            return 0.0;
        }
        v.sort_unstable();
        let rank = (p * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1000.0
    }

    /// Write fps and percentiles into `m`.
    pub fn fill(&self, m: &mut MetricsSnapshot) {
        m.fps = self.fps();
        m.latency_p50_ms = self.percentile_ms(0.5);
        m.latency_p90_ms = self.percentile_ms(0.9);
        m.latency_p99_ms = self.percentile_ms(0.99);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut w = LatencyWindow::new(100);
        for i in 1..=10u64 {
            w.push(i * 100_000, i * 1000);
        }
        assert_eq!(w.percentile_ms(0.5), 5.0);
        assert_eq!(w.percentile_ms(0.9), 9.0);
        assert_eq!(w.percentile_ms(0.99), 10.0);
        // 10 frames over 0.9 s: 9 intervals of 0.1 s.
        assert!((w.fps() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn window_forgets_old_frames() {
        let mut w = LatencyWindow::new(2);
        w.push(0, 100_000);
        w.push(1000, 1000);
        w.push(2000, 1000);
        assert_eq!(w.percentile_ms(0.99), 1.0);
        assert_eq!(LatencyWindow::new(5).fps(), 0.0);
        assert_eq!(LatencyWindow::new(5).percentile_ms(0.5), 0.0);
    }
}
