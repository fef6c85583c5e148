//! Both VMM flavours complete the vhost-user handshake through the relay over a real socket and
//! get requests answered.

mod support;

use support::dummy::{DummyFactory, FEATURES};
use support::{Flavor, TestDaemon, TestVmm};

fn round_trip(flavor: Flavor, queue_sizes: &[u16]) {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let mut vmm = TestVmm::connect(&daemon.path, flavor, 2, queue_sizes, FEATURES);

    let (len, out) = vmm.request(0, &[b"hello ", b"world"], &[8, 16]);
    assert_eq!(len, 4 + 11);
    assert_eq!(&out[0][..4], &1u32.to_le_bytes());
    assert_eq!(&out[0][4..], b"hell");
    assert_eq!(&out[1][..7], b"o world");
    assert!(
        out[1][7..].iter().all(|&b| b == 0xa5),
        "unwritten bytes untouched"
    );

    let (len, out) = vmm.request(0, &[b"again"], &[64]);
    assert_eq!(len, 9);
    assert_eq!(&out[0][..9], b"\x02\0\0\0again");

    let (len, _) = vmm.request(1, &[b"cursor"], &[]);
    assert_eq!(len, 0);

    vmm.set_config(4, &[1, 2, 3, 4]);
    assert_eq!(vmm.get_config(4, 4), [1, 2, 3, 4]);
    assert_eq!(vmm.get_config(0, 16)[4..8], [1, 2, 3, 4]);

    if flavor == Flavor::Qemu {
        assert_eq!(
            factory.last().gpu_sockets(),
            1,
            "GPU_SET_SOCKET reached the device"
        );
    }
    vmm.disconnect();
    daemon.stop().expect("serve returns Ok on shutdown");
    assert_eq!(factory.count(), 1);
}

#[test]
fn cloud_hypervisor_handshake_and_requests() {
    round_trip(Flavor::CloudHypervisor, &[256, 16]);
}

#[test]
fn qemu_handshake_and_requests() {
    round_trip(Flavor::Qemu, &[64, 16]);
}

#[test]
fn many_requests_wrap_the_rings() {
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn(factory.make());
    let mut vmm = TestVmm::connect(
        &daemon.path,
        Flavor::CloudHypervisor,
        2,
        &[16, 16],
        FEATURES,
    );
    for i in 1..=100u32 {
        let (len, out) = vmm.request(0, &[&i.to_le_bytes()], &[8]);
        assert_eq!(len, 8);
        assert_eq!(out[0][..4], i.to_le_bytes());
        assert_eq!(out[0][4..], i.to_le_bytes());
    }
    vmm.disconnect();
    daemon.stop().expect("serve returns Ok on shutdown");
}
