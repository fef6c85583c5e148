use std::time::Duration;

use super::*;
use crate::spice::ticket::tests::{client_ticket, test_key};
use crate::spice::ticket::Secret;
use crate::spice::wire::{MainCap, SPICE_TICKET_PUBKEY_BYTES};

/// Serves MAIN 0 and DISPLAY 0; knows session 0x1234.
struct TestPolicy;

impl LinkPolicy for TestPolicy {
    fn channel_caps(&self, channel_type: ChannelType, channel_id: u8) -> Option<Caps> {
        match (channel_type, channel_id) {
            (ChannelType::MAIN, 0) => Some(
                Caps::empty()
                    .with(MainCap::NAME_AND_UUID)
                    .with(MainCap::AGENT_CONNECTED_TOKENS),
            ),
            (ChannelType::DISPLAY, 0) => Some(Caps::empty()),
            _ => None,
        }
    }

    fn admit(&self, link: &LinkMess) -> Result<(), SpiceLinkErr> {
        match (link.channel_type, link.connection_id) {
            (ChannelType::MAIN, _) | (_, 0x1234) => Ok(()),
            _ => Err(SpiceLinkErr::BAD_CONNECTION_ID),
        }
    }
}

fn password(p: &str) -> Ticketing {
    Ticketing::Password {
        secret: Secret::new(p),
        expires: None,
    }
}

fn link_bytes(channel_type: ChannelType, connection_id: u32, common: u32) -> Vec<u8> {
    let mess = LinkMess {
        connection_id,
        channel_type,
        channel_id: 0,
        common_caps: Caps::from_words(vec![common]),
        channel_caps: Caps::from_words(vec![0x0f]),
    };
    let body = mess.to_bytes();
    let mut out = LinkHeader::new(len_u32(body.len())).to_bytes();
    out.extend_from_slice(&body);
    out
}

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap()
}

/// Client bytes as spice-gtk sends them: link, then mechanism 1 and the ticket.
fn gtk_client(password: &[u8]) -> Vec<u8> {
    let mut bytes = link_bytes(ChannelType::MAIN, 0, 0x0d);
    bytes.extend_from_slice(&[1, 0, 0, 0]);
    bytes.extend_from_slice(&client_ticket(password).0);
    bytes
}

/// Feeds `input` one byte at a time (the worst split a socket can produce).
fn run(
    ticketing: &Ticketing,
    input: &[u8],
    now: Instant,
) -> (Result<LinkState, LinkError>, Vec<u8>) {
    let cx = LinkContext {
        key: test_key(),
        ticketing,
        policy: &TestPolicy,
        secured: false,
        secure_channels: SecureChannels::NONE,
    };
    let mut state = LinkState::new(now);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for b in input {
        buf.push(*b);
        match state.handle(&buf, now, &cx, &mut out) {
            Ok((next, used)) => {
                buf.drain(..used);
                state = next;
            }
            Err(e) => return (Err(e), out),
        }
    }
    assert!(buf.is_empty(), "link left {} bytes unused", buf.len());
    (Ok(state), out)
}

fn assert_ok_reply(out: &[u8], channel_caps: &[u8]) {
    let header = LinkHeader::read_bytes(&out[..16]).unwrap();
    assert_eq!(
        header,
        LinkHeader::new(len_u32(178 + 4 + channel_caps.len()))
    );
    let reply =
        LinkReply::read_bytes(&out[16..16 + usize::try_from(header.size).unwrap()]).unwrap();
    assert_eq!(reply.error, SpiceLinkErr::OK);
    assert_eq!(reply.pub_key, *test_key().public_der());
    assert_eq!(reply.common_caps.words(), &[0x0b]);
    assert_eq!(reply.channel_caps.to_bytes_for_test(), channel_caps);
}

trait CapsBytes {
    fn to_bytes_for_test(&self) -> Vec<u8>;
}
impl CapsBytes for Caps {
    fn to_bytes_for_test(&self) -> Vec<u8> {
        self.words().iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

#[test]
fn good_password_links_main_channel() {
    let (state, out) = run(&password("pw"), &gtk_client(b"pw"), Instant::now());
    let LinkState::Linked(linked) = state.unwrap() else {
        panic!("not linked");
    };
    assert_eq!(
        linked,
        Linked {
            channel_type: ChannelType::MAIN,
            channel_id: 0,
            connection_id: 0,
            client_common_caps: Caps::from_words(vec![0x0d]),
            client_channel_caps: Caps::from_words(vec![0x0f]),
            mini_header: true,
        }
    );
    assert_eq!(linked.header_kind(), HeaderKind::Mini);
    assert_eq!(out.len(), 16 + 178 + 8 + 4);
    assert_ok_reply(&out, &[6, 0, 0, 0]);
    assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 0]);
}

#[test]
fn whole_exchange_in_one_buffer() {
    let cx = LinkContext {
        key: test_key(),
        ticketing: &password("pw"),
        policy: &TestPolicy,
        secured: false,
        secure_channels: SecureChannels::NONE,
    };
    let mut input = gtk_client(b"pw");
    input.extend_from_slice(&[0x65, 0x00]); // first data-phase bytes stay unused
    let mut out = Vec::new();
    let (state, used) = LinkState::new(Instant::now())
        .handle(&input, Instant::now(), &cx, &mut out)
        .unwrap();
    assert!(matches!(state, LinkState::Linked(_)));
    assert_eq!(used, input.len() - 2);
}

#[test]
fn wrong_password_is_permission_denied() {
    let (state, out) = run(&password("pw"), &gtk_client(b"nope"), Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::Ticket(TicketError::WrongPassword))
    ));
    assert_eq!(&out[out.len() - 4..], &[7, 0, 0, 0]);
    assert_eq!(out.len(), 16 + 178 + 8 + 4);
}

#[test]
fn expired_ticket_is_permission_denied() {
    let now = Instant::now();
    let ticketing = Ticketing::Password {
        secret: Secret::new("pw"),
        expires: Some(now),
    };
    let (state, out) = run(
        &ticketing,
        &gtk_client(b"pw"),
        now + Duration::from_millis(1),
    );
    assert!(matches!(
        state,
        Err(LinkError::Ticket(TicketError::Expired))
    ));
    assert_eq!(&out[out.len() - 4..], &[7, 0, 0, 0]);
}

#[test]
fn disabled_ticketing_accepts_empty_ticket() {
    let (state, _) = run(&Ticketing::Disabled, &gtk_client(b""), Instant::now());
    assert!(matches!(state, Ok(LinkState::Linked(_))));
}

#[test]
fn client_without_auth_selection_sends_ticket_directly() {
    let mut input = link_bytes(ChannelType::MAIN, 0, 0x08);
    input.extend_from_slice(&client_ticket(b"pw").0);
    let (state, _) = run(&password("pw"), &input, Instant::now());
    let LinkState::Linked(linked) = state.unwrap() else {
        panic!("not linked");
    };
    assert!(linked.mini_header);
}

#[test]
fn full_header_when_client_lacks_mini_header() {
    let mut input = link_bytes(ChannelType::MAIN, 0, 0x01);
    input.extend_from_slice(&[1, 0, 0, 0]);
    input.extend_from_slice(&client_ticket(b"pw").0);
    let (state, _) = run(&password("pw"), &input, Instant::now());
    let LinkState::Linked(linked) = state.unwrap() else {
        panic!("not linked");
    };
    assert_eq!(linked.header_kind(), HeaderKind::Full);
}

fn assert_error_reply(out: &[u8], code: SpiceLinkErr) {
    assert_eq!(out.len(), 16 + 178);
    assert_eq!(
        LinkHeader::read_bytes(&out[..16]).unwrap(),
        LinkHeader::new(178)
    );
    assert_eq!(
        LinkReply::read_bytes(&out[16..]).unwrap(),
        LinkReply::refusal(code)
    );
}

#[test]
fn wrong_magic_is_invalid_magic_after_four_bytes() {
    let (state, out) = run(&password("pw"), b"GET /", Instant::now());
    assert!(matches!(state, Err(LinkError::BadMagic(m)) if &m == b"GET "));
    assert_error_reply(&out, SpiceLinkErr::INVALID_MAGIC);
}

#[test]
fn version_mismatch_is_refused() {
    let mut input = gtk_client(b"pw");
    input[4] = 3;
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::VersionMismatch { major: 3, minor: 2 })
    ));
    assert_error_reply(&out, SpiceLinkErr::VERSION_MISMATCH);
}

#[test]
fn rejects_absurd_link_size() {
    let mut input = gtk_client(b"pw");
    input[12..16].copy_from_slice(&0x10_0000u32.to_le_bytes());
    let (state, out) = run(&password("pw"), &input[..16], Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::LinkSizeOutOfRange(0x10_0000))
    ));
    assert_error_reply(&out, SpiceLinkErr::INVALID_DATA);
}

#[test]
fn rejects_caps_beyond_link_size() {
    let mut input = link_bytes(ChannelType::MAIN, 0, 0x0d);
    input[16 + 10] = 9; // nine channel cap words declared, one present
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(state, Err(LinkError::MalformedLinkMess(_))));
    assert_error_reply(&out, SpiceLinkErr::INVALID_DATA);
}

#[test]
fn unknown_channel_type_closes_silently() {
    let input = link_bytes(ChannelType(77), 0x1234, 0x0d);
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::UnknownChannelType(ChannelType(77)))
    ));
    assert!(out.is_empty());
}

#[test]
fn unserved_channel_is_not_available() {
    let input = link_bytes(ChannelType::PLAYBACK, 0x1234, 0x0d);
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(state, Err(LinkError::ChannelNotServed { .. })));
    assert_error_reply(&out, SpiceLinkErr::CHANNEL_NOT_AVAILABLE);
}

#[test]
fn unknown_session_is_bad_connection_id_after_auth() {
    let mut input = link_bytes(ChannelType::DISPLAY, 0x999, 0x0d);
    input.extend_from_slice(&[1, 0, 0, 0]);
    input.extend_from_slice(&client_ticket(b"pw").0);
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::NotAdmitted(SpiceLinkErr::BAD_CONNECTION_ID))
    ));
    assert_eq!(&out[out.len() - 4..], &[8, 0, 0, 0]);
}

#[test]
fn sasl_mechanism_is_invalid_data() {
    let mut input = link_bytes(ChannelType::MAIN, 0, 0x0d);
    input.extend_from_slice(&[2, 0, 0, 0]);
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(
        state,
        Err(LinkError::AuthMechanismNotOffered(AuthMechanism::SASL))
    ));
    assert_eq!(out.len(), 16 + 178 + 8 + 4);
    assert_eq!(&out[out.len() - 4..], &[3, 0, 0, 0]);
}

#[test]
fn nothing_but_reply_before_auth() {
    let input = link_bytes(ChannelType::MAIN, 0, 0x0d);
    let (state, out) = run(&password("pw"), &input, Instant::now());
    assert!(matches!(state, Ok(LinkState::ExpectAuthMechanism(_))));
    assert_eq!(out.len(), 16 + 178 + 8);
    assert_eq!(
        out[16 + 4..16 + 4 + SPICE_TICKET_PUBKEY_BYTES],
        test_key().public_der()[..]
    );
}

#[test]
fn times_out_only_after_deadline() {
    let now = Instant::now();
    let state = LinkState::new(now);
    assert_eq!(state.deadline(), Some(now + LINK_TIMEOUT));
    let state = state.handle_timeout(now + LINK_TIMEOUT / 2).unwrap();
    assert!(matches!(
        state.handle_timeout(now + LINK_TIMEOUT),
        Err(LinkError::Timeout(_))
    ));
}

#[test]
fn every_link_error_maps_to_a_code() {
    let cases = [
        (
            LinkError::BadMagic(*b"GET "),
            SpiceLinkErr::INVALID_MAGIC,
            Refusal::LinkReply,
        ),
        (
            LinkError::Ticket(TicketError::Undecryptable),
            SpiceLinkErr::PERMISSION_DENIED,
            Refusal::LinkResult,
        ),
        (
            LinkError::NotAdmitted(SpiceLinkErr::OK),
            SpiceLinkErr::ERROR,
            Refusal::LinkResult,
        ),
        (
            LinkError::Timeout(LINK_TIMEOUT),
            SpiceLinkErr::ERROR,
            Refusal::Close,
        ),
    ];
    for (err, code, refusal) in cases {
        assert_eq!(SpiceLinkErr::from(&err), code);
        assert_eq!(err.refusal(), refusal);
    }
}

#[test]
fn mutated_link_bytes_never_panic_and_never_link_without_ticket() {
    let seed = gtk_client(b"pw");
    let ticketing = password("pw");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut bytes = seed.clone();
        let i = usize::try_from(x % u64::try_from(16 + 26 + 4).unwrap()).unwrap();
        bytes[i] = bytes[i].wrapping_add(u8::try_from((x >> 8) & 0xff).unwrap() | 1);
        let (state, out) = run_lenient(&ticketing, &bytes);
        if let Ok(LinkState::Linked(_)) = state {
            // Only mutations of ignored or equivalent bits may still link.
            assert_eq!(&out[out.len() - 4..], &[0, 0, 0, 0]);
        }
    }
}

/// As `run`, but tolerates unused trailing bytes.
fn run_lenient(ticketing: &Ticketing, input: &[u8]) -> (Result<LinkState, LinkError>, Vec<u8>) {
    let cx = LinkContext {
        key: test_key(),
        ticketing,
        policy: &TestPolicy,
        secured: false,
        secure_channels: SecureChannels::NONE,
    };
    let mut out = Vec::new();
    let now = Instant::now();
    let r = LinkState::new(now)
        .handle(input, now, &cx, &mut out)
        .map(|(s, _)| s);
    (r, out)
}

/// Runs the whole input at once with a transport policy.
fn run_secure(
    input: &[u8],
    secured: bool,
    secure_channels: SecureChannels,
) -> (Result<LinkState, LinkError>, Vec<u8>) {
    let ticketing = password("pw");
    let cx = LinkContext {
        key: test_key(),
        ticketing: &ticketing,
        policy: &TestPolicy,
        secured,
        secure_channels,
    };
    let mut out = Vec::new();
    let now = Instant::now();
    let r = LinkState::new(now)
        .handle(input, now, &cx, &mut out)
        .map(|(s, _)| s);
    (r, out)
}

#[test]
fn secure_channel_over_plaintext_is_need_secured_before_any_key() {
    let only_main = SecureChannels::NONE.with(ChannelType::MAIN);
    let (state, out) = run_secure(&gtk_client(b"pw"), false, only_main);
    assert!(matches!(
        state,
        Err(LinkError::NeedSecured(ChannelType::MAIN))
    ));
    assert_error_reply(&out, SpiceLinkErr::NEED_SECURED);
    // The same link over TLS goes through; so does a channel the policy leaves alone.
    let (state, _) = run_secure(&gtk_client(b"pw"), true, only_main);
    assert!(matches!(state, Ok(LinkState::Linked(_))));
    let display = link_bytes(ChannelType::DISPLAY, 0x1234, 0x0d);
    let (state, _) = run_secure(&display, false, only_main);
    assert!(matches!(state, Ok(LinkState::ExpectAuthMechanism(_))));
    let (state, out) = run_secure(&display, false, SecureChannels::ALL);
    assert!(matches!(state, Err(LinkError::NeedSecured(_))));
    assert_error_reply(&out, SpiceLinkErr::NEED_SECURED);
    assert!(SecureChannels::ALL.requires(ChannelType(200)));
    assert!(!SecureChannels::NONE
        .with(ChannelType(200))
        .requires(ChannelType(200)));
}
