//! Tests of the relay's message reader and of the config-change sender.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use super::*;

fn channel(reply_ack: bool) -> (Arc<BackendChannel>, UnixStream) {
    let (ours, vmm) = UnixStream::pair().unwrap();
    let channel = BackendChannel::new();
    channel.reply_ack.store(reply_ack, Ordering::Release);
    channel.install(OwnedFd::from(ours));
    (channel, vmm)
}

fn header(request: u32, flags: u32, size: u32) -> Vec<u8> {
    [request, flags, size]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Reads the request and answers `reply` on the VMM's end.
fn answer(mut vmm: UnixStream, reply: Vec<u8>) -> std::thread::JoinHandle<[u8; 12]> {
    std::thread::spawn(move || {
        let mut request = [0u8; HEADER_SIZE];
        vmm.read_exact(&mut request).unwrap();
        vmm.write_all(&reply).unwrap();
        request
    })
}

#[test]
fn config_change_fails_before_set_backend_req_fd() {
    let error = BackendChannel::new().notify_config_change().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotConnected);
}

#[test]
fn config_change_without_reply_ack_is_a_bare_header() {
    let (channel, mut vmm) = channel(false);
    channel.notify_config_change().unwrap();
    let mut request = [0u8; HEADER_SIZE];
    vmm.read_exact(&mut request).unwrap();
    assert_eq!(request[..], header(2, 0x1, 0)[..]);
}

#[test]
fn config_change_with_reply_ack_waits_for_the_ack() {
    let (channel, vmm) = channel(true);
    let mut ack = header(2, 0x5, 8);
    ack.extend_from_slice(&0u64.to_le_bytes());
    let vmm = answer(vmm, ack);
    channel.notify_config_change().unwrap();
    assert_eq!(vmm.join().unwrap()[..], header(2, 0x9, 0)[..]);
}

#[test]
fn rejects_a_refused_config_change_and_drops_the_channel() {
    let (channel, vmm) = channel(true);
    let mut ack = header(2, 0x5, 8);
    ack.extend_from_slice(&1u64.to_le_bytes());
    let vmm = answer(vmm, ack);
    assert!(channel.notify_config_change().is_err());
    vmm.join().unwrap();
    let error = channel.notify_config_change().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotConnected);
}

#[test]
fn rejects_an_ack_for_another_request() {
    let (channel, vmm) = channel(true);
    let mut ack = header(3, 0x5, 8);
    ack.extend_from_slice(&0u64.to_le_bytes());
    let vmm = answer(vmm, ack);
    let error = channel.notify_config_change().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    vmm.join().unwrap();
}

#[test]
fn reads_a_message_with_its_descriptors() {
    let (a, b) = UnixStream::pair().unwrap();
    let (stop, _keep) = UnixStream::pair().unwrap();
    let (passed, _other) = UnixStream::pair().unwrap();
    let mut message = header(21, 0x9, 4);
    message.extend_from_slice(b"abcd");
    a.send_with_fds(&[&message[..]], &[passed.as_raw_fd()])
        .unwrap();
    let Ok(Received::Message(msg)) = read_message(&b, stop.as_fd()) else {
        panic!("a whole message");
    };
    assert_eq!(msg.request(), 21);
    assert_eq!(msg.payload, b"abcd");
    assert_eq!(msg.fds.len(), 1);
}

#[test]
fn rejects_an_oversized_message() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let (stop, _keep) = UnixStream::pair().unwrap();
    let size = u32::try_from(MAX_PAYLOAD_SIZE + 1).unwrap();
    a.write_all(&header(2, 0x1, size)).unwrap();
    assert!(matches!(
        read_message(&b, stop.as_fd()),
        Err(RelayError::MessageTooLarge { .. })
    ));
}

#[test]
fn a_half_message_then_close_is_partial() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let (stop, _keep) = UnixStream::pair().unwrap();
    a.write_all(&header(2, 0x1, 8)[..8]).unwrap();
    drop(a);
    assert!(matches!(
        read_message(&b, stop.as_fd()),
        Err(RelayError::PartialMessage)
    ));
}

#[test]
fn stop_interrupts_a_stalled_half_message() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let (stop, trigger) = UnixStream::pair().unwrap();
    a.write_all(&header(2, 0x1, 8)).unwrap();
    trigger.shutdown(Shutdown::Write).unwrap();
    assert!(matches!(
        read_message(&b, stop.as_fd()),
        Ok(Received::Stopped)
    ));
}
