//! The bounded queue of event groups waiting for guest buffers, and its overflow policy.
//!
//! QEMU gives the event queue 4 entries, so one pointer update can already fill it; events
//! wait here, in order, until the guest posts buffers again. The virtio spec allows a device
//! to drop only whole `SYN_REPORT`-terminated groups, and losing a key release leaves a key
//! stuck in the guest, so on overflow:
//! 1. adjacent pointer motions coalesce (only the newest absolute position matters);
//! 2. the oldest motion and wheel groups go first;
//! 3. then the oldest key or button presses, each together with its queued release (or, if
//!    that has not arrived yet, the release is swallowed when it does);
//! 4. releases are never dropped. They are bounded anyway: after (3) at most one release per
//!    key code stays queued, whose press the guest already has.

use std::collections::{BTreeSet, VecDeque};

use super::protocol::VirtioInputEvent;

/// Events waiting for guest buffers. 8 KiB of events; three times the number of key and
/// button codes we declare (a release group is 3 events), so releases always fit (see the
/// module doc), with room for hundreds of keystrokes typed while the guest is busy.
pub const MAX_PENDING_EVENTS: usize = 1024;

/// What a group carries, which decides how it may be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    /// An absolute pointer position: coalesced, dropped first.
    Motion,
    /// A wheel step: dropped first (a lost scroll step does no lasting harm).
    Wheel,
    /// A key or button press of this evdev code: dropped second, with its release.
    Press(u16),
    /// A key or button release of this evdev code: never dropped.
    Release(u16),
}

#[derive(Debug)]
struct Group {
    kind: GroupKind,
    /// Ends with `SYN_REPORT`.
    events: Vec<VirtioInputEvent>,
}

/// What the overflow policy did; counted over the queue's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Events handed to the guest.
    pub delivered: u64,
    /// Motion groups replaced by a newer position before the guest took them.
    pub coalesced_motion: u64,
    /// Motion and wheel groups dropped on overflow.
    pub dropped_motion: u64,
    /// Press groups dropped on overflow.
    pub dropped_presses: u64,
    /// Releases not sent because their press was dropped.
    pub swallowed_releases: u64,
}

/// Groups dropped by one push; non-zero means "overflow: log it".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub motion: u64,
    pub presses: u64,
}

impl Dropped {
    pub fn any(&self) -> bool {
        self.motion > 0 || self.presses > 0
    }
}

#[derive(Debug, Default)]
pub struct EventQueue {
    groups: VecDeque<Group>,
    /// Events of the front group already given to the guest: that group can no longer be
    /// dropped or coalesced, its remainder must follow.
    front_sent: usize,
    /// Events not yet given to the guest.
    pending: usize,
    /// Codes whose press was dropped before its release was queued.
    cancelled: BTreeSet<u16>,
    stats: QueueStats,
}

impl EventQueue {
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Events not yet given to the guest.
    pub fn len(&self) -> usize {
        self.pending
    }

    pub fn stats(&self) -> QueueStats {
        self.stats
    }

    /// Forgets everything queued (the guest driver that was to read it is gone).
    pub fn clear(&mut self) {
        self.groups.clear();
        self.front_sent = 0;
        self.pending = 0;
        self.cancelled.clear();
    }

    /// Queues one group; `events` must end with `SYN_REPORT`.
    pub fn push(&mut self, kind: GroupKind, events: Vec<VirtioInputEvent>) -> Dropped {
        let mut dropped = Dropped::default();
        match kind {
            GroupKind::Release(code) if self.cancelled.remove(&code) => {
                self.stats.swallowed_releases += 1;
                return dropped;
            }
            // A new press makes any earlier cancellation moot: its release must go out.
            GroupKind::Press(code) => {
                self.cancelled.remove(&code);
            }
            GroupKind::Motion => {
                if let Some(last) = self.groups.len().checked_sub(1) {
                    if self.is_droppable(last) && self.kind_at(last) == Some(GroupKind::Motion) {
                        if let Some(group) = self.groups.get_mut(last) {
                            self.pending = self.pending - group.events.len() + events.len();
                            group.events = events;
                            self.stats.coalesced_motion += 1;
                        }
                        return dropped;
                    }
                }
            }
            _ => {}
        }
        while self.pending + events.len() > MAX_PENDING_EVENTS {
            if self.drop_oldest(|k| matches!(k, GroupKind::Motion | GroupKind::Wheel)) {
                dropped.motion += 1;
                continue;
            }
            match kind {
                GroupKind::Motion | GroupKind::Wheel => {
                    dropped.motion += 1;
                    self.stats.dropped_motion += 1;
                    return dropped;
                }
                _ => {}
            }
            if self.drop_oldest(|k| matches!(k, GroupKind::Press(_))) {
                dropped.presses += 1;
                continue;
            }
            if let GroupKind::Press(code) = kind {
                self.cancelled.insert(code);
                dropped.presses += 1;
                self.stats.dropped_presses += 1;
                return dropped;
            }
            // A release with nothing left to drop: queued past the bound, which the module
            // doc shows cannot grow beyond one release per code.
            break;
        }
        self.pending += events.len();
        self.groups.push_back(Group { kind, events });
        dropped
    }

    /// The next event for the guest, without taking it.
    pub fn front(&self) -> Option<VirtioInputEvent> {
        self.groups
            .front()
            .and_then(|g| g.events.get(self.front_sent))
            .copied()
    }

    /// Marks the front event as given to the guest.
    pub fn advance(&mut self) {
        let Some(group) = self.groups.front() else {
            return;
        };
        self.front_sent += 1;
        self.pending = self.pending.saturating_sub(1);
        self.stats.delivered += 1;
        if self.front_sent >= group.events.len() {
            self.groups.pop_front();
            self.front_sent = 0;
        }
    }

    fn kind_at(&self, index: usize) -> Option<GroupKind> {
        self.groups.get(index).map(|g| g.kind)
    }

    /// A group partly given to the guest must be completed, never dropped or rewritten.
    fn is_droppable(&self, index: usize) -> bool {
        index > 0 || self.front_sent == 0
    }

    /// Drops the oldest droppable group whose kind matches; a dropped press takes its queued
    /// release along, or cancels the one still to come.
    fn drop_oldest(&mut self, matches: impl Fn(GroupKind) -> bool) -> bool {
        let first = usize::from(self.front_sent > 0);
        let Some(index) =
            (first..self.groups.len()).find(|&i| self.kind_at(i).is_some_and(&matches))
        else {
            return false;
        };
        let Some(group) = self.groups.remove(index) else {
            return false;
        };
        self.pending -= group.events.len();
        match group.kind {
            GroupKind::Press(code) => {
                self.stats.dropped_presses += 1;
                let release = (index..self.groups.len())
                    .find(|&i| self.kind_at(i) == Some(GroupKind::Release(code)));
                match release.and_then(|i| self.groups.remove(i)) {
                    Some(release) => {
                        self.pending -= release.events.len();
                        self.stats.swallowed_releases += 1;
                    }
                    None => {
                        self.cancelled.insert(code);
                    }
                }
            }
            _ => self.stats.dropped_motion += 1,
        }
        true
    }
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
