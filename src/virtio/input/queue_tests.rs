//! Overflow policy: order, coalescing, what is dropped first, releases never.

use super::*;
use crate::virtio::input::protocol::{ev, VirtioInputEvent};

fn group(code: u16, value: u32) -> Vec<VirtioInputEvent> {
    vec![
        VirtioInputEvent::new(ev::KEY, code, value),
        VirtioInputEvent::syn(),
    ]
}

fn motion(x: u32) -> Vec<VirtioInputEvent> {
    vec![
        VirtioInputEvent::new(ev::ABS, 0, x),
        VirtioInputEvent::new(ev::ABS, 1, x),
        VirtioInputEvent::syn(),
    ]
}

fn drain(q: &mut EventQueue) -> Vec<VirtioInputEvent> {
    let mut out = Vec::new();
    while let Some(e) = q.front() {
        out.push(e);
        q.advance();
    }
    out
}

fn keys(events: &[VirtioInputEvent]) -> Vec<(u16, u32)> {
    events
        .iter()
        .filter(|e| e.kind == ev::KEY)
        .map(|e| (e.code, e.value))
        .collect()
}

#[test]
fn keeps_order_and_counts_delivery() {
    let mut q = EventQueue::default();
    q.push(GroupKind::Press(30), group(30, 1));
    q.push(GroupKind::Motion, motion(5));
    q.push(GroupKind::Release(30), group(30, 0));
    assert_eq!(q.len(), 7);
    let out = drain(&mut q);
    assert_eq!(out.len(), 7);
    assert_eq!(keys(&out), [(30, 1), (30, 0)]);
    assert_eq!(q.stats().delivered, 7);
    assert!(q.is_empty());
}

#[test]
fn adjacent_motion_coalesces_to_the_newest() {
    let mut q = EventQueue::default();
    q.push(GroupKind::Motion, motion(1));
    q.push(GroupKind::Motion, motion(2));
    q.push(GroupKind::Press(30), group(30, 1));
    q.push(GroupKind::Motion, motion(3));
    let out = drain(&mut q);
    let xs: Vec<u32> = out
        .iter()
        .filter(|e| e.kind == ev::ABS && e.code == 0)
        .map(|e| e.value)
        .collect();
    assert_eq!(xs, [2, 3], "motion across a key press is not merged");
    assert_eq!(q.stats().coalesced_motion, 1);
}

#[test]
fn partly_sent_group_is_completed_not_rewritten() {
    let mut q = EventQueue::default();
    q.push(GroupKind::Motion, motion(1));
    q.advance(); // ABS_X of position 1 is in the guest
    q.push(GroupKind::Motion, motion(2));
    let out = drain(&mut q);
    assert_eq!(out.len(), 5);
    assert_eq!(out[0], VirtioInputEvent::new(ev::ABS, 1, 1));
    assert_eq!(out[1], VirtioInputEvent::syn());
}

#[test]
fn overflow_drops_motion_first_then_presses_never_releases() {
    let mut q = EventQueue::default();
    // Fill with alternating motion (not adjacent, so not coalesced) and presses.
    let mut code = 1u16;
    while q.len() + 5 <= MAX_PENDING_EVENTS {
        q.push(GroupKind::Motion, motion(u32::from(code)));
        q.push(GroupKind::Press(code), group(code, 1));
        code += 1;
    }
    while q.len() + 2 <= MAX_PENDING_EVENTS {
        q.push(GroupKind::Press(code), group(code, 1));
        code += 1;
    }
    let presses_before = code - 1;
    // One more press: a motion group goes.
    let d = q.push(GroupKind::Press(999), group(999, 1));
    assert_eq!((d.motion, d.presses), (1, 0));
    // Releases always get in, pushing motion out, then presses.
    for c in 1..=presses_before {
        q.push(GroupKind::Release(c), group(c, 0));
    }
    assert!(q.len() <= MAX_PENDING_EVENTS);
    let stats = q.stats();
    assert!(stats.dropped_motion > 0);
    let out = drain(&mut q);
    let k = keys(&out);
    // Every press that survived is followed by its release; nothing released twice.
    for c in 1..=presses_before {
        let pressed = k.contains(&(c, 1));
        let released = k.iter().filter(|&&e| e == (c, 0)).count();
        assert_eq!(released, usize::from(pressed), "code {c}");
    }
    assert_eq!(
        stats.dropped_presses, stats.swallowed_releases,
        "each dropped press took its release"
    );
}

#[test]
fn release_of_a_dropped_press_is_swallowed_when_it_comes() {
    let mut q = EventQueue::default();
    let mut code = 1u16;
    while q.len() + 2 <= MAX_PENDING_EVENTS {
        q.push(GroupKind::Press(code), group(code, 1));
        code += 1;
    }
    // Full of presses: the oldest press makes room; its release is swallowed when it comes.
    let d = q.push(GroupKind::Press(2000), group(2000, 1));
    assert_eq!((d.motion, d.presses), (0, 1));
    q.push(GroupKind::Release(1), group(1, 0));
    assert_eq!(q.stats().swallowed_releases, 1);
    let k = keys(&drain(&mut q));
    assert!(!k.contains(&(1, 1)) && !k.contains(&(1, 0)));
    assert_eq!(k.first(), Some(&(2, 1)));
    assert_eq!(k.last(), Some(&(2000, 1)));
}

#[test]
fn a_new_press_revives_a_cancelled_release() {
    let mut q = EventQueue::default();
    while q.len() + 2 <= MAX_PENDING_EVENTS {
        q.push(GroupKind::Release(7), group(7, 0));
    }
    q.push(GroupKind::Press(5), group(5, 1)); // dropped: full of releases
    drain(&mut q);
    q.push(GroupKind::Press(5), group(5, 1));
    q.push(GroupKind::Release(5), group(5, 0));
    assert_eq!(keys(&drain(&mut q)), [(5, 1), (5, 0)]);
}

#[test]
fn motion_is_dropped_when_only_releases_are_queued() {
    let mut q = EventQueue::default();
    while q.len() + 2 <= MAX_PENDING_EVENTS {
        q.push(GroupKind::Release(7), group(7, 0));
    }
    let d = q.push(GroupKind::Motion, motion(1));
    assert_eq!(d.motion, 1);
    let d = q.push(GroupKind::Wheel, group(8, 1));
    assert_eq!(d.motion, 1);
    assert_eq!(q.stats().dropped_motion, 2);
}

#[test]
fn clear_forgets_everything() {
    let mut q = EventQueue::default();
    q.push(GroupKind::Press(1), group(1, 1));
    q.advance();
    q.clear();
    assert!(q.is_empty());
    assert_eq!(q.front(), None);
}
