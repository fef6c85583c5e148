//! A rate limit for the warnings a guest can trigger: a guest looping on a bad command must
//! not flood the log. The QXL source keeps one for what it cannot parse, the worker one for
//! what it refuses.
//!
//! (`virtio::ratelimit` limits per kind and reports the count with the next line; this one
//! counts one stream and reports the count on a line of its own.)

use std::fmt;
use std::time::{Duration, Instant};

/// Warnings logged per window; the rest are counted and reported once the window has passed.
pub(crate) const WARNINGS_PER_WINDOW: u32 = 10;
pub(crate) const WARNING_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct WarnLimit {
    /// Names the warnings in the line that reports how many were suppressed.
    kind: &'static str,
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

impl WarnLimit {
    /// `kind`: e.g. "QXL parse warnings", reported as "QXL parse warnings suppressed".
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            window_start: Instant::now(),
            logged: 0,
            suppressed: 0,
        }
    }

    /// Logs `message` as a warning unless this window's budget is spent; then only counts it.
    pub(crate) fn warn(&mut self, message: fmt::Arguments<'_>) {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= WARNING_WINDOW {
            if self.suppressed > 0 {
                tracing::warn!(suppressed = self.suppressed, "{} suppressed", self.kind);
            }
            self.window_start = now;
            self.logged = 0;
            self.suppressed = 0;
        }
        if self.logged < WARNINGS_PER_WINDOW {
            self.logged += 1;
            tracing::warn!("{message}");
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_past_the_window_budget_are_only_counted() {
        let mut limit = WarnLimit::new("test warnings");
        for _ in 0..WARNINGS_PER_WINDOW + 5 {
            limit.warn(format_args!("draw"));
        }
        assert_eq!((limit.logged, limit.suppressed), (WARNINGS_PER_WINDOW, 5));
        limit.window_start -= WARNING_WINDOW;
        limit.warn(format_args!("draw"));
        assert_eq!(
            (limit.logged, limit.suppressed),
            (1, 0),
            "a new window starts afresh"
        );
    }
}
