//! A real Linux guest under QEMU (TCG) with `vhost-user-input-pci` on the daemon's input socket
//! (the stack wired in-process as the binary wires it): keys typed and a click made by a real
//! spice-gtk client (tests/tools/spice_client.py) through our SPICE server come out of the
//! guest's evdev node for our device, as the guest's /init logs them on the serial console.

#[path = "vm/mod.rs"]
mod vm;

use std::time::{Duration, Instant};

use serde_json::json;
use vhost_user_spice::spice::ticket::Ticketing;
use vm::client::SpiceClient;
use vm::stack::SpiceStack;

/// Generous for a TCG boot on a loaded 2-core machine (scripts/README.md: 5-9 s to the pattern).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const SURFACE_TIMEOUT: Duration = Duration::from_secs(20);
/// The client links its channels and reports client mouse mode.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// From the first command until the last event must be in the guest's log.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(20);
const W: u32 = 1280;
const H: u32 = 800;
/// `InputConfig::default().name`: the guest's `INPUT eventN name=...` line for our device.
const DEVICE_NAME: &str = "vhost-user-spice keyboard and tablet";

// evdev types and codes (linux/input-event-codes.h).
const EV_SYN: u32 = 0;
const EV_KEY: u32 = 1;
const EV_ABS: u32 = 3;
const EV_MSC: u32 = 4;
const MSC_SCAN: u32 = 4;
const ABS_X: u32 = 0;
const ABS_Y: u32 = 1;
const KEY_A: u32 = 30;
const KEY_B: u32 = 48;
const KEY_LEFTSHIFT: u32 = 42;
const KEY_RIGHT: u32 = 106;
const BTN_LEFT: u32 = 272;

/// Where the client clicks, in display pixels.
const CLICK: (u32, u32) = (1000, 123);

type Event = (u32, u32, i64);

const SYN: Event = (EV_SYN, 0, 0);

/// One key press or release as the device sends it: the set-1 scancode as keymaps.csv writes it
/// (E0 prefix as 0xe0xx), the key, the report.
fn key(scancode: u32, code: u32, pressed: bool) -> Vec<Event> {
    vec![
        (EV_MSC, MSC_SCAN, i64::from(scancode)),
        (EV_KEY, code, i64::from(pressed)),
        SYN,
    ]
}

/// A display pixel on the tablet's 0..=32767 axis spanning `size` pixels: the first and the last
/// pixel are the ends of the axis.
fn abs(position: u32, size: u32) -> i64 {
    i64::from(position) * 32767 / i64::from(size - 1)
}

/// The EVDEV lines of `dev` in the serial log, as (type, code, value).
fn evdev_events(log: &str, dev: &str) -> Vec<Event> {
    let marker = format!("EVDEV {dev} ");
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(&marker)? + marker.len()..];
            let mut f = rest.split_whitespace();
            Some((
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
                f.next()?.parse().ok()?,
            ))
        })
        .collect()
}

/// How many of `groups` appear in `events` in order, each as a contiguous run (other packets,
/// such as the guest kernel's autorepeat of a held key, may come between groups).
fn groups_found(events: &[Event], groups: &[Vec<Event>]) -> usize {
    let mut at = 0;
    for (n, group) in groups.iter().enumerate() {
        match events[at.min(events.len())..]
            .windows(group.len())
            .position(|w| w == group.as_slice())
        {
            Some(i) => at += i + group.len(),
            None => return n,
        }
    }
    groups.len()
}

#[test]
fn spice_gtk_keys_and_click_reach_the_linux_guests_evdev() {
    if !vm::vm_tests_enabled() || !vm::spice_clients_enabled() {
        return;
    }
    let image = vm::GuestImage::build().expect("the guest image builds");
    let stack = SpiceStack::start(W, H, Ticketing::Disabled);
    let mut qemu = vm::Qemu::start(
        &image,
        vm::QemuOpts::default()
            .gpu(&stack.gpu_socket)
            .input(&stack.input_socket),
    )
    .expect("QEMU starts");
    qemu.wait_serial("GUEST READY", BOOT_TIMEOUT)
        .expect("the guest boots");
    let at_ready = qemu.elapsed();
    let log = qemu.serial_log();
    let virtio_input = log
        .lines()
        .find(|l| l.contains("VIRTIO ") && l.contains("device=0x0012"))
        .unwrap_or_else(|| panic!("no virtio-input device in the guest:\n{log}"));
    assert!(
        virtio_input.contains("driver=virtio_input"),
        "virtio_input drives our device: {virtio_input}"
    );
    let dev = log
        .lines()
        .filter_map(|l| l[l.find("INPUT ")?..].strip_prefix("INPUT "))
        .find_map(|l| l.strip_suffix(&format!(" name={DEVICE_NAME}")))
        .unwrap_or_else(|| panic!("no evdev node named {DEVICE_NAME:?}:\n{log}"))
        .to_string();
    eprintln!("{virtio_input}; our evdev node is {dev}");
    // The pattern on our surface also means the tablet spans the guest's 1280x800 primary.
    let shown = stack.display.wait_until(SURFACE_TIMEOUT, |d| {
        d.snapshot(0).is_some_and(|s| {
            (s.info.width, s.info.height) == (W, H)
                && vm::compare_with_pattern(&s.pixels, W, H, s.stride).0 == 0
        })
    });
    assert!(shown, "the guest's pattern reached the surface");

    let connect = Instant::now();
    let mut client = SpiceClient::connect(stack.port, None).expect("the client runs");
    client
        .wait_for("the inputs channel", CLIENT_TIMEOUT, |e| {
            e["event"] == "channel" && e["type"] == 3 && e["what"] == "opened"
        })
        .unwrap();
    client
        .wait_for("client mouse mode", CLIENT_TIMEOUT, |e| {
            e["event"] == "mouse-mode" && e["mode"] == 2
        })
        .unwrap();
    let linked = connect.elapsed();

    let sent = Instant::now();
    let commands = [
        json!({"cmd": "key", "scancode": 0x1e}),
        json!({"cmd": "keydown", "scancode": 0x2a}),
        json!({"cmd": "key", "scancode": 0x30}),
        json!({"cmd": "keyup", "scancode": 0x2a}),
        // E0 4D: spice-gtk takes E0-prefixed scancodes as 0x100 | code.
        json!({"cmd": "key", "scancode": 0x14d}),
        json!({"cmd": "position", "x": CLICK.0, "y": CLICK.1, "buttons": 0}),
        json!({"cmd": "press", "button": 1, "buttons": 0}),
        json!({"cmd": "release", "button": 1, "buttons": 1}),
    ];
    for cmd in commands {
        client.send(cmd).expect("the client takes commands");
    }
    let groups = [
        key(0x1e, KEY_A, true),
        key(0x1e, KEY_A, false),
        key(0x2a, KEY_LEFTSHIFT, true),
        key(0x30, KEY_B, true),
        key(0x30, KEY_B, false),
        key(0x2a, KEY_LEFTSHIFT, false),
        key(0xe04d, KEY_RIGHT, true),
        key(0xe04d, KEY_RIGHT, false),
        vec![
            (EV_ABS, ABS_X, abs(CLICK.0, W)),
            (EV_ABS, ABS_Y, abs(CLICK.1, H)),
            SYN,
        ],
        vec![(EV_KEY, BTN_LEFT, 1), SYN],
        vec![(EV_KEY, BTN_LEFT, 0), SYN],
    ];
    let deadline = sent + EVENTS_TIMEOUT;
    let mut first_seen = None;
    let (events, found) = loop {
        let events = evdev_events(&qemu.serial_log(), &dev);
        let found = groups_found(&events, &groups);
        if found > 0 && first_seen.is_none() {
            first_seen = Some(sent.elapsed());
        }
        if found == groups.len() || Instant::now() >= deadline {
            break (events, found);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let all_seen = sent.elapsed();
    assert_eq!(
        found,
        groups.len(),
        "only {found} of the expected event groups reached {dev}; next expected {:?}; \
         {dev} logged {events:?}; client events {:?}",
        groups.get(found),
        client.events
    );
    eprintln!(
        "QEMU start -> GUEST READY {at_ready:?}; client linked (inputs + client mouse mode) in \
         {linked:?}; commands -> first evdev group {first_seen:?}, -> all {} groups {all_seen:?}; \
         {} events on {dev}",
        groups.len(),
        events.len()
    );
    let stats = stack.input.stats();
    eprintln!("device stats: {stats:?}");
    assert_eq!(
        (stats.bad_event_buffers, stats.bad_status_buffers),
        (0, 0),
        "the guest's buffers and status events were all taken"
    );
    assert_eq!(stats.queue.dropped_presses, 0);
    drop(client);
    drop(qemu);
    drop(stack);
}
