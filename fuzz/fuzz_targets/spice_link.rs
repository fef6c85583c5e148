//! The link handshake, the first bytes a network client sends: link message, auth mechanism,
//! encrypted ticket, fed to the link state machine in pieces of any size. Nothing may panic;
//! the machine ends linked, refused, or waiting for more.
//!
//! The first input byte picks ticketing (disabled, or a password) and the piece size.

#![no_main]

use std::sync::OnceLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use vhost_user_spice::spice::link::{LinkContext, LinkPolicy, LinkState, SecureChannels};
use vhost_user_spice::spice::ticket::{Secret, ServerKey, Ticketing};
use vhost_user_spice::spice::wire::{Caps, ChannelType, LinkMess, SpiceLinkErr};

/// Serves every channel and admits every link.
struct Open;

impl LinkPolicy for Open {
    fn channel_caps(&self, _: ChannelType, _: u8) -> Option<Caps> {
        Some(Caps::empty().with(0))
    }

    fn admit(&self, _: &LinkMess) -> Result<(), SpiceLinkErr> {
        Ok(())
    }
}

fn key() -> &'static ServerKey {
    // RSA key generation takes a while: once per process, not per input.
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(|| ServerKey::generate().expect("RSA key"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let ticketing = if selector & 0x80 == 0 {
        Ticketing::Disabled
    } else {
        Ticketing::Password {
            secret: Secret::new("fuzz"),
            expires: None,
        }
    };
    let cx = LinkContext {
        key: key(),
        ticketing: &ticketing,
        policy: &Open,
        secured: selector & 0x40 != 0,
        secure_channels: SecureChannels::NONE,
    };
    let piece = usize::from(selector & 0x3f).max(1);
    let now = Instant::now();
    let mut state = LinkState::new(now);
    let mut out = Vec::new();
    let mut buffered: Vec<u8> = Vec::new();
    for chunk in input.chunks(piece) {
        buffered.extend_from_slice(chunk);
        match state.handle(&buffered, now, &cx, &mut out) {
            Ok((next, used)) => {
                assert!(used <= buffered.len());
                buffered.drain(..used);
                if matches!(next, LinkState::Linked(_)) {
                    return;
                }
                state = next;
            }
            Err(_) => return,
        }
    }
});
