//! A device's config-change request reaches the VMM as VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on
//! the backend-request channel, through the relay, with and without REPLY_ACK.

mod support;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::dummy::{Dummy, DummyFactory, FEATURES};
use support::{Flavor, TestDaemon, TestVmm, VmmOptions, TIMEOUT};
use vhost_user_spice::virtio::ConfigChangeNotifier;

fn config_change(flavor: Flavor, reply_ack: bool) {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let mut options = VmmOptions::new(flavor, &[64, 16], FEATURES);
    options.reply_ack = reply_ack;
    let mut vmm = TestVmm::connect_with(&daemon.path, options);
    assert_eq!(
        vmm.acked_protocol_features()
            .contains(vhost::vhost_user::message::VhostUserProtocolFeatures::REPLY_ACK),
        reply_ack
    );

    let notifier = factory.last().notifier.clone();
    for round in 1..=3 {
        // With REPLY_ACK the sender waits for our ack, so it runs beside us.
        let sender = {
            let notifier = notifier.clone();
            std::thread::spawn(move || notifier.notify_config_change())
        };
        assert!(
            vmm.wait_config_change(TIMEOUT),
            "config change {round} arrives"
        );
        sender
            .join()
            .expect("the sender does not panic")
            .expect("the VMM's ack reaches the device");
        assert_eq!(vmm.config_change_count(), round);
    }
    // The main channel still works afterwards.
    let (len, _) = vmm.request(0, &[b"x"], &[8]);
    assert_eq!(len, 5);
    vmm.disconnect();
    // The channel died with the connection.
    support::wait_until(
        || notifier.notify_config_change().is_err(),
        "the old connection's sender to fail",
    );
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn cloud_hypervisor_config_change_with_reply_ack() {
    config_change(Flavor::CloudHypervisor, true);
}

#[test]
fn cloud_hypervisor_config_change_without_reply_ack() {
    config_change(Flavor::CloudHypervisor, false);
}

#[test]
fn qemu_config_change_with_reply_ack() {
    config_change(Flavor::Qemu, true);
}

#[test]
fn qemu_config_change_without_reply_ack() {
    config_change(Flavor::Qemu, false);
}

#[test]
fn sender_fails_before_the_vmm_gives_a_channel() {
    let early: Arc<Mutex<Vec<io::Result<()>>>> = Arc::default();
    let seen = early.clone();
    let daemon = TestDaemon::spawn(move |notifier: Arc<dyn ConfigChangeNotifier>| {
        seen.lock().unwrap().push(notifier.notify_config_change());
        Ok(Dummy::new(notifier))
    });
    let vmm = TestVmm::connect(
        &daemon.path,
        Flavor::CloudHypervisor,
        2,
        &[64, 16],
        FEATURES,
    );
    let results = early.lock().unwrap();
    assert_eq!(results.len(), 1);
    let error = results[0].as_ref().expect_err("no SET_BACKEND_REQ_FD yet");
    assert_eq!(error.kind(), io::ErrorKind::NotConnected);
    drop(results);
    vmm.disconnect();
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn unanswered_config_change_times_out() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let vmm = TestVmm::connect(
        &daemon.path,
        Flavor::CloudHypervisor,
        2,
        &[64, 16],
        FEATURES,
    );
    // The VMM never reads its backend-request channel.
    let started = std::time::Instant::now();
    let result = factory.last().notifier.notify_config_change();
    assert!(result.is_err(), "no ack, no success");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded wait");
    vmm.disconnect();
    daemon.stop().expect("serve returns Ok");
}
