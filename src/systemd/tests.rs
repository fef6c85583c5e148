use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::Instant;

use super::*;

fn tcp_listener() -> (RawFd, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener.into_raw_fd(), addr)
}

fn unix_listener(dir: &tempfile::TempDir, name: &str) -> RawFd {
    UnixListener::bind(dir.path().join(name))
        .unwrap()
        .into_raw_fd()
}

fn close(fd: RawFd) {
    // SAFETY: the tests own each descriptor they hand to `activated_from` and close it once.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}

/// A stand-in for systemd's notify socket in `dir`, whose reads time out after `timeout`, and
/// a notifier sending to it.
fn notify_socket(dir: &tempfile::TempDir, timeout: Duration) -> (UnixDatagram, Notifier) {
    let path = dir.path().join("notify");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd.set_read_timeout(Some(timeout)).unwrap();
    let notifier = Notifier::to_socket(&path.into_os_string()).unwrap();
    (systemd, notifier)
}

#[test]
fn names_fill_their_slots() {
    let dir = tempfile::tempdir().unwrap();
    let gpu = unix_listener(&dir, "gpu");
    let input = unix_listener(&dir, "input");
    let (spice, spice_addr) = tcp_listener();
    let tls = unix_listener(&dir, "tls");
    let activated = activated_from(vec![
        (gpu, "gpu".into()),
        (input, "input".into()),
        (spice, "spice".into()),
        (tls, "spice-tls".into()),
    ])
    .unwrap();
    assert_eq!(
        activated,
        Activated {
            vhost_user: Some(gpu),
            input: Some(input),
            spice: Some((spice, Some(spice_addr))),
            spice_tls: Some((tls, None)),
        }
    );
    for fd in [gpu, input, spice, tls] {
        close(fd);
    }
}

#[test]
fn one_unnamed_descriptor_is_the_vhost_user_socket() {
    let dir = tempfile::tempdir().unwrap();
    let fd = unix_listener(&dir, "a");
    let activated = activated_from(vec![(fd, "unknown".into())]).unwrap();
    assert_eq!(activated.vhost_user, Some(fd));
    let other = unix_listener(&dir, "b");
    let error =
        activated_from(vec![(fd, "unknown".into()), (other, "unknown".into())]).unwrap_err();
    assert!(matches!(error, SystemdError::UnknownFdName { .. }));
    close(fd);
    close(other);
}

#[test]
fn rejects_unknown_and_duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    let a = unix_listener(&dir, "a");
    let b = unix_listener(&dir, "b");
    let error = activated_from(vec![(a, "vhost-user-spice-gpu@vm1.socket".into())]).unwrap_err();
    assert!(error.to_string().contains("FileDescriptorName="), "{error}");
    let error = activated_from(vec![(a, "vhost-user".into()), (b, "gpu".into())]).unwrap_err();
    assert!(matches!(error, SystemdError::DuplicateFdName { name } if name == "gpu"));
    close(a);
    close(b);
}

#[test]
fn spice_descriptors_must_be_listening_streams() {
    let (connected, _peer) = UnixStream::pair().unwrap();
    let fd = connected.into_raw_fd();
    let error = activated_from(vec![(fd, "spice".into())]).unwrap_err();
    assert!(
        matches!(error, SystemdError::NotListening { name: "spice", .. }),
        "{error}"
    );
    close(fd);
    let datagram = UnixDatagram::unbound().unwrap().into_raw_fd();
    assert!(activated_from(vec![(datagram, "spice-tls".into())]).is_err());
    close(datagram);
}

#[test]
fn adopted_listener_accepts() {
    let (fd, addr) = tcp_listener();
    let InheritedListener::Tcp(listener) = adopt_listener(fd).unwrap() else {
        panic!("a TCP listener")
    };
    let _client = std::net::TcpStream::connect(addr).unwrap();
    assert!(listener.accept().is_ok());
    let dir = tempfile::tempdir().unwrap();
    let fd = unix_listener(&dir, "s");
    assert!(matches!(
        adopt_listener(fd).unwrap(),
        InheritedListener::Unix(_)
    ));
    assert!(adopt_listener(987_654).is_err());
}

fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("a notification");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn notifications_reach_a_path_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (systemd, notifier) = notify_socket(&dir, Duration::from_secs(5));
    assert!(notifier.is_enabled());
    notifier.ready("VMM socket /x; Serving 0 SPICE clients");
    assert_eq!(
        receive(&systemd),
        "READY=1\nSTATUS=VMM socket /x; Serving 0 SPICE clients\n"
    );
    notifier.clone().clients(1);
    assert_eq!(receive(&systemd), "STATUS=Serving 1 SPICE client\n");
    notifier.clients(3);
    assert_eq!(receive(&systemd), "STATUS=Serving 3 SPICE clients\n");
    notifier.stopping();
    assert!(receive(&systemd).starts_with("STOPPING=1\n"));
    // systemd gone: sending fails quietly.
    drop(systemd);
    notifier.watchdog();
}

#[test]
fn notifications_reach_an_abstract_socket() {
    let name = format!("vus-notify-test-{}", std::process::id());
    let address = net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let systemd = UnixDatagram::bind_addr(&address).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let notifier = Notifier::to_socket(&format!("@{name}").into()).unwrap();
    notifier.watchdog();
    assert_eq!(receive(&systemd), "WATCHDOG=1\n");
}

#[test]
fn disabled_notifier_does_nothing() {
    let notifier = Notifier::disabled();
    assert!(!notifier.is_enabled());
    notifier.ready("x");
    notifier.stopping();
}

#[test]
fn watchdog_pings_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (systemd, notifier) = notify_socket(&dir, Duration::from_secs(5));
    let shutdown = ShutdownSignal::new().unwrap();
    let thread = start_watchdog(
        notifier,
        Duration::from_millis(20),
        shutdown.clone(),
        || true,
    )
    .unwrap();
    for _ in 0..3 {
        assert_eq!(receive(&systemd), "WATCHDOG=1\n");
    }
    let stopped = Instant::now();
    shutdown.trigger();
    thread.join().unwrap();
    assert!(stopped.elapsed() < Duration::from_secs(1));
}

#[test]
fn unhealthy_process_stops_pinging() {
    let dir = tempfile::tempdir().unwrap();
    let (systemd, notifier) = notify_socket(&dir, Duration::from_millis(200));
    let shutdown = ShutdownSignal::new().unwrap();
    let thread = start_watchdog(
        notifier,
        Duration::from_millis(10),
        shutdown.clone(),
        || false,
    )
    .unwrap();
    let mut buf = [0u8; 64];
    assert!(systemd.recv(&mut buf).is_err(), "no ping while unhealthy");
    shutdown.trigger();
    thread.join().unwrap();
}
