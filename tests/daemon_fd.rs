//! `--fd`: an inherited connected socket (libvirt's socketpair) is served until it closes, an
//! inherited listening socket is served like `--socket-path`, anything else is refused.

mod support;

use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};

use support::dummy::{DummyFactory, FEATURES};
use support::{Flavor, TestDaemon, TestVmm, VmmOptions};
use vhost_user_spice::virtio::daemon::{DaemonError, VhostSocket};

#[test]
fn connected_fd_is_served_until_it_closes() {
    for flavor in [Flavor::CloudHypervisor, Flavor::Qemu] {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let socket = VhostSocket::from_inherited_fd(theirs.into_raw_fd()).expect("a stream socket");
        let factory = DummyFactory::default();
        let daemon = TestDaemon::spawn_on(socket, factory.make());
        let mut vmm = TestVmm::from_stream(ours, VmmOptions::new(flavor, &[64, 16], FEATURES));
        let (len, _) = vmm.request(0, &[b"over a socketpair"], &[64]);
        assert_eq!(len, 4 + 17);
        vmm.disconnect();
        daemon
            .join()
            .expect("serve returns Ok once the connection closed");
        assert_eq!(factory.count(), 1);
    }
}

#[test]
fn listening_fd_serves_one_vmm_after_another() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("listening.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let socket = VhostSocket::from_inherited_fd(listener.into_raw_fd()).expect("a stream socket");
    let factory = DummyFactory::default();
    let daemon = TestDaemon::spawn_on(socket, factory.make());
    for round in 1..=2 {
        let mut vmm = TestVmm::connect(&path, Flavor::CloudHypervisor, 2, &[64, 16], FEATURES);
        let (_, out) = vmm.request(0, &[b"hi"], &[8]);
        assert_eq!(&out[0][..6], b"\x01\0\0\0hi");
        vmm.disconnect();
        support::wait_until(|| factory.count() == round, "the connection to be served");
    }
    assert!(!daemon.is_finished(), "a listening fd keeps being served");
    daemon.stop().expect("serve returns Ok");
}

#[test]
fn rejects_a_regular_file() {
    let file = tempfile::tempfile().unwrap();
    let fd = file.into_raw_fd();
    match VhostSocket::from_inherited_fd(fd) {
        Err(DaemonError::FdNotUnixStream { fd: reported }) => assert_eq!(reported, fd),
        other => panic!("expected FdNotUnixStream, got {other:?}"),
    }
}

#[test]
fn rejects_a_datagram_socket() {
    let (a, _b) = UnixDatagram::pair().unwrap();
    let fd = OwnedFd::from(a).into_raw_fd();
    assert!(matches!(
        VhostSocket::from_inherited_fd(fd),
        Err(DaemonError::FdNotUnixStream { .. })
    ));
}

#[test]
fn rejects_a_closed_fd() {
    let error = VhostSocket::from_inherited_fd(999_999).expect_err("not open");
    assert!(matches!(error, DaemonError::FdNotOpen { fd: 999_999 }));
    assert_eq!(error.to_string(), "File descriptor 999999 is not open");
}
