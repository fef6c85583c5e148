//! Authentication over a raw socket: the right link error for each refused ticket, and not
//! one byte of channel data before the ticket is accepted.

mod spice_support;

use std::time::{Duration, Instant};

use spice_support::raw;
use spice_support::raw::{LinkOutcome, Raw};
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::{Secret, Ticketing};
use vhost_user_spice::spice::wire::{ChannelType, SpiceLinkErr};

const PERMISSION_DENIED: LinkOutcome = LinkOutcome::Result(SpiceLinkErr::PERMISSION_DENIED.0);

async fn guest_rig(ticketing: Ticketing) -> Rig {
    let rig = start(ticketing).await;
    rig.guest.create_primary(64, 64);
    rig.guest.fill(Rect::ltrb(0, 0, 64, 64), 0x00ab_cdef);
    rig.guest.sync();
    rig
}

/// After a refusal the server says nothing more and closes.
async fn refused_then_silent(raw: &mut Raw) {
    let rest = raw.expect_closed().await;
    assert!(
        rest.is_empty(),
        "server sent {} bytes after refusing",
        rest.len()
    );
}

#[tokio::test]
async fn wrong_password_is_permission_denied_and_nothing_follows() {
    let rig = guest_rig(password("right")).await;
    for channel in [ChannelType::MAIN, ChannelType::DISPLAY] {
        let mut raw = Raw::connect(rig.port).await;
        assert_eq!(raw.link(channel, 0, 0, "wrong").await, PERMISSION_DENIED);
        refused_then_silent(&mut raw).await;
    }
    assert_eq!(rig.server.client_count(), 0);
    rig.server.shutdown().await;
}

#[tokio::test]
async fn expired_ticket_is_permission_denied() {
    // Long enough for the rig and the first link on a loaded CI machine (200 ms was not).
    let expires = Instant::now() + Duration::from_millis(1500);
    let rig = guest_rig(Ticketing::Password {
        secret: Secret::new("pw"),
        expires: Some(expires),
    })
    .await;
    let mut ok = Raw::connect(rig.port).await;
    assert_eq!(
        ok.link(ChannelType::MAIN, 0, 0, "pw").await,
        LinkOutcome::Result(0)
    );
    tokio::time::sleep_until((expires + Duration::from_millis(100)).into()).await;
    let mut late = Raw::connect(rig.port).await;
    assert_eq!(
        late.link(ChannelType::MAIN, 0, 0, "pw").await,
        PERMISSION_DENIED
    );
    refused_then_silent(&mut late).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn ticketing_without_password_refuses_everybody() {
    let rig = guest_rig(password("")).await;
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::MAIN, 0, 0, "").await,
        PERMISSION_DENIED
    );
    refused_then_silent(&mut raw).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn set_ticketing_applies_to_new_links() {
    let rig = guest_rig(password("old")).await;
    rig.server.set_ticketing(password("new"));
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::MAIN, 0, 0, "old").await,
        PERMISSION_DENIED
    );
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::MAIN, 0, 0, "new").await,
        LinkOutcome::Result(0)
    );
    rig.server.shutdown().await;
}

#[tokio::test]
async fn no_data_before_the_ticket_and_unknown_sessions_are_refused() {
    let rig = guest_rig(password("pw")).await;
    // A display link that stops before its ticket gets the link reply and nothing else.
    let mut raw = Raw::connect(rig.port).await;
    raw.send_raw(&raw::link_bytes(ChannelType::DISPLAY, 0, 0))
        .await;
    let (bytes, closed) = raw.read_rest().await;
    assert!(!closed);
    assert_eq!(bytes.len(), 16 + 178 + 8, "only the link reply");

    // A non-main channel naming no live session: BAD_CONNECTION_ID after the ticket.
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::DISPLAY, 0x1234_5678, 0, "pw").await,
        LinkOutcome::Result(SpiceLinkErr::BAD_CONNECTION_ID.0)
    );
    refused_then_silent(&mut raw).await;

    // A channel we do not serve: CHANNEL_NOT_AVAILABLE in the reply.
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::PLAYBACK, 0, 0, "pw").await,
        LinkOutcome::ReplyError(SpiceLinkErr::CHANNEL_NOT_AVAILABLE.0)
    );
    rig.server.shutdown().await;
}

#[tokio::test]
async fn main_links_beyond_max_clients_are_refused() {
    let rig = start_with(vhost_user_spice::spice::SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
            ([127, 0, 0, 1], 0).into(),
        )],
        max_clients: 1,
        ..vhost_user_spice::spice::SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    let mut first = Raw::connect(rig.port).await;
    assert_eq!(
        first.link(ChannelType::MAIN, 0, 0, "").await,
        LinkOutcome::Result(0)
    );
    assert!(wait_until(|| rig.server.client_count() == 1).await);
    let mut second = Raw::connect(rig.port).await;
    assert_eq!(
        second.link(ChannelType::MAIN, 0, 0, "").await,
        LinkOutcome::Result(SpiceLinkErr::ERROR.0)
    );
    drop(first);
    assert!(wait_until(|| rig.server.client_count() == 0).await);
    let mut third = Raw::connect(rig.port).await;
    assert_eq!(
        third.link(ChannelType::MAIN, 0, 0, "").await,
        LinkOutcome::Result(0)
    );
    rig.server.shutdown().await;
}
