//! A frontend that goes away at any point (after a kick, mid-message, mid-handshake) leaves the
//! daemon ready for a new connection, which gets fresh device state.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::dummy::{DummyFactory, FEATURES};
use support::{Flavor, TestDaemon, TestVmm};

/// A new VMM gets answers from a fresh device (its request counter starts again at 1).
fn assert_fresh_device_serves(daemon: &TestDaemon, factory: &DummyFactory, connections: usize) {
    let mut vmm = TestVmm::connect(
        &daemon.path,
        Flavor::CloudHypervisor,
        2,
        &[64, 16],
        FEATURES,
    );
    let (len, out) = vmm.request(0, &[b"new"], &[16]);
    assert_eq!(len, 7);
    assert_eq!(&out[0][..7], b"\x01\0\0\0new", "request counter restarted");
    assert_eq!(factory.count(), connections, "one device per connection");
    vmm.disconnect();
}

#[test]
fn vmm_drops_after_kicking() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    for flavor in [Flavor::CloudHypervisor, Flavor::Qemu] {
        let mut vmm = TestVmm::connect(&daemon.path, flavor, 2, &[64, 16], FEATURES);
        vmm.request(0, &[b"one"], &[16]);
        vmm.post(0, &[b"two"], &[16]);
        vmm.kick(0);
        vmm.disconnect();
    }
    assert_fresh_device_serves(&daemon, &factory, 3);
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn vmm_drops_after_half_a_header() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let mut raw = support::connect_raw(&daemon.path);
    raw.write_all(&[1, 0, 0, 0, 1, 0]).unwrap();
    drop(raw);
    assert_fresh_device_serves(&daemon, &factory, 2);
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn vmm_drops_mid_payload_after_handshake() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let vmm = TestVmm::connect(&daemon.path, Flavor::Qemu, 2, &[64, 16], FEATURES);
    // SET_FEATURES (2) announcing 8 payload bytes, of which only 3 arrive.
    let mut message = Vec::new();
    message.extend_from_slice(&2u32.to_le_bytes());
    message.extend_from_slice(&1u32.to_le_bytes());
    message.extend_from_slice(&8u32.to_le_bytes());
    message.extend_from_slice(&[1, 2, 3]);
    vmm.raw_socket().write_all(&message).unwrap();
    vmm.disconnect();
    assert_fresh_device_serves(&daemon, &factory, 2);
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn oversized_message_ends_only_that_connection() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let mut raw = support::connect_raw(&daemon.path);
    let mut header = Vec::new();
    header.extend_from_slice(&2u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    header.extend_from_slice(&u32::MAX.to_le_bytes());
    raw.write_all(&header).unwrap();
    // The daemon hangs up on us without waiting for 4 GiB.
    raw.set_read_timeout(Some(support::TIMEOUT)).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut raw, &mut buf).unwrap(), 0);
    assert_fresh_device_serves(&daemon, &factory, 2);
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn shutdown_is_prompt_while_a_vmm_stalls_mid_message() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let vmm = TestVmm::connect(
        &daemon.path,
        Flavor::CloudHypervisor,
        2,
        &[64, 16],
        FEATURES,
    );
    vmm.raw_socket().write_all(&[1, 0, 0]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    daemon.stop().expect("serve returns Ok");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown waited for the VMM"
    );
    drop(vmm);
}

#[test]
fn shutdown_is_prompt_while_idle() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let path = daemon.path.clone();
    let started = Instant::now();
    daemon.stop().expect("serve returns Ok");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!path.exists(), "the socket file is removed on shutdown");
}
