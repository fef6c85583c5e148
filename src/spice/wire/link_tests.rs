// Tests index freely: a panic there is a failed test, not a crash.
#![allow(clippy::indexing_slicing)]

use super::*;

/// What Debian spice-gtk 0.42 sends to open a main channel (brief §1.3).
const GTK_MAIN_LINK: [u8; 42] = [
    0x52, 0x45, 0x44, 0x51, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x00,
    0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00,
];

#[test]
fn decodes_and_reencodes_gtk_main_link() {
    let header = LinkHeader::read_bytes(&GTK_MAIN_LINK[..16]).unwrap();
    assert_eq!(header, LinkHeader::new(26));
    let mess = LinkMess::read_bytes(&GTK_MAIN_LINK[16..]).unwrap();
    assert_eq!(mess.connection_id, 0);
    assert_eq!(mess.channel_type, ChannelType::MAIN);
    assert_eq!(mess.channel_id, 0);
    assert!(mess.common_caps.has(CommonCap::AUTH_SELECTION));
    assert!(!mess.common_caps.has(CommonCap::AUTH_SPICE));
    assert!(mess.common_caps.has(CommonCap::AUTH_SASL));
    assert!(mess.common_caps.has(CommonCap::MINI_HEADER));
    assert_eq!(mess.channel_caps.words(), &[0x0f]);

    let mut out = vec![0xa5; 3];
    header.encode(&mut out);
    mess.encode(&mut out);
    assert_eq!(&out[..3], &[0xa5; 3]);
    assert_eq!(&out[3..], &GTK_MAIN_LINK[..]);
}

#[test]
fn reply_layout_matches_brief() {
    let reply = LinkReply {
        error: SpiceLinkErr::OK,
        pub_key: [7; SPICE_TICKET_PUBKEY_BYTES],
        common_caps: Caps::empty()
            .with(CommonCap::AUTH_SELECTION)
            .with(CommonCap::AUTH_SPICE)
            .with(CommonCap::MINI_HEADER),
        channel_caps: Caps::from_words(vec![0x06]),
    };
    let mut out = vec![0xa5; 2];
    reply.encode(&mut out);
    let body = &out[2..];
    assert_eq!(body.len(), 186);
    assert_eq!(&body[..4], &[0, 0, 0, 0]);
    assert_eq!(
        &body[166..186],
        &[1, 0, 0, 0, 1, 0, 0, 0, 0xb2, 0, 0, 0, 0x0b, 0, 0, 0, 6, 0, 0, 0]
    );
    assert_eq!(LinkReply::read_bytes(body).unwrap(), reply);
}

#[test]
fn refusal_is_all_zero_but_error() {
    let out = LinkReply::refusal(SpiceLinkErr::INVALID_MAGIC).to_bytes();
    assert_eq!(out.len(), 178);
    assert_eq!(&out[..4], &[2, 0, 0, 0]);
    assert!(out[4..].iter().all(|b| *b == 0));
    assert_eq!(
        LinkReply::read_bytes(&out).unwrap(),
        LinkReply::refusal(SpiceLinkErr::INVALID_MAGIC)
    );
}

#[test]
fn rejects_caps_count_over_bytes() {
    let mut body = GTK_MAIN_LINK[16..].to_vec();
    body[10] = 2; // num_channel_caps = 2, only one word present
    assert_eq!(
        LinkMess::read_bytes(&body),
        Err(WireError::MissingData("SpiceLinkMess channel caps"))
    );
}

#[test]
fn rejects_caps_count_over_limit() {
    let mut body = GTK_MAIN_LINK[16..].to_vec();
    body[6..10].copy_from_slice(&5000u32.to_le_bytes());
    assert!(matches!(
        LinkMess::read_bytes(&body),
        Err(WireError::TooMany { count: 5000, .. })
    ));
}

#[test]
fn rejects_caps_offset_inside_fixed_part() {
    let mut body = GTK_MAIN_LINK[16..].to_vec();
    body[14] = 17;
    assert!(matches!(
        LinkMess::read_bytes(&body),
        Err(WireError::Invalid { value: 17, .. })
    ));
}

#[test]
fn rejects_trailing_bytes_after_caps() {
    let mut body = GTK_MAIN_LINK[16..].to_vec();
    body.push(0);
    assert!(matches!(
        LinkMess::read_bytes(&body),
        Err(WireError::TrailingData { left: 1, .. })
    ));
}

#[test]
fn skips_gap_before_caps_offset() {
    let mut body = GTK_MAIN_LINK[16..34].to_vec();
    body[14] = 22;
    body.extend_from_slice(&[0xee; 4]);
    body.extend_from_slice(&GTK_MAIN_LINK[34..]);
    let mess = LinkMess::read_bytes(&body).unwrap();
    assert_eq!(mess.common_caps.words(), &[0x0d]);
}

#[test]
fn rejects_truncated_header() {
    assert_eq!(
        LinkHeader::read_bytes(&GTK_MAIN_LINK[..15]),
        Err(WireError::MissingData("SpiceLinkHeader.size"))
    );
}

#[test]
fn caps_bits_span_words() {
    let caps = Caps::empty().with(33);
    assert_eq!(caps.words(), &[0, 2]);
    assert!(caps.has(33));
    assert!(!caps.has(1));
    assert!(!caps.has(1000));
}

#[test]
fn ticket_and_mechanism_round_trip() {
    let t = EncryptedTicket([9; SPICE_TICKET_ENCRYPTED_BYTES]);
    assert_eq!(EncryptedTicket::read_bytes(&t.to_bytes()).unwrap(), t);
    assert_eq!(AuthMechanism::SPICE.to_bytes(), [1, 0, 0, 0]);
    assert_eq!(format!("{:?}", AuthMechanism(2)), "SASL");
}
