//! A small per-kind log rate limiter, so a misbehaving guest cannot flood the log (shared by
//! the virtio devices).

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Lines allowed per kind and window: enough to see a pattern, too few to fill a disk.
pub const LINES_PER_WINDOW: u32 = 5;
/// Length of one rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Allows at most `per_window` lines per kind in each window, and counts what it suppressed.
#[derive(Debug)]
pub struct RateLimiter<K> {
    windows: HashMap<K, Window>,
    per_window: u32,
    window: Duration,
}

impl<K: Hash + Eq> Default for RateLimiter<K> {
    fn default() -> Self {
        Self::new(LINES_PER_WINDOW, WINDOW)
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            windows: HashMap::new(),
            per_window,
            window,
        }
    }

    /// `Some(n)` when a line of this kind may be logged now; `n` lines of the kind were
    /// suppressed since the last one that was allowed. `None`: suppress this one.
    /// `kind` must come from a small fixed set (an enum discriminant), never from the guest.
    pub fn allow(&mut self, kind: K, now: Instant) -> Option<u64> {
        let w = self.windows.entry(kind).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.saturating_duration_since(w.start) >= self.window {
            w.start = now;
            w.logged = 0;
        }
        if w.logged < self.per_window {
            w.logged += 1;
            Some(std::mem::take(&mut w.suppressed))
        } else {
            w.suppressed = w.suppressed.saturating_add(1);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_each_kind_separately_and_reports_suppressed() {
        let mut rl = RateLimiter::new(2, Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(rl.allow("a", t0), Some(0));
        assert_eq!(rl.allow("a", t0), Some(0));
        assert_eq!(rl.allow("a", t0), None);
        assert_eq!(rl.allow("a", t0), None);
        assert_eq!(rl.allow("b", t0), Some(0));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(rl.allow("a", t1), Some(2));
        assert_eq!(rl.allow("a", t1), Some(0));
    }
}
