// Tests index freely: a panic there is a failed test, not a crash.
#![allow(clippy::indexing_slicing)]

use super::test_util::assert_round_trip;
use super::*;
use crate::spice::wire::{ChannelType, Codec, Message, SpiceLinkErr, WireError};

#[test]
fn base_messages_round_trip() {
    assert_eq!(
        assert_round_trip(&MsgSetAck {
            generation: 1,
            window: 20
        }),
        [1, 0, 0, 0, 20, 0, 0, 0]
    );
    assert_eq!(MsgSetAck::TYPE, 3);
    assert_round_trip(&MsgPing {
        id: 1,
        timestamp: 2,
        data: vec![0; 5],
    });
    assert_round_trip(&MsgWaitForChannels {
        wait_list: WaitList(vec![WaitForChannel {
            channel_type: ChannelType::DISPLAY,
            channel_id: 1,
            message_serial: 7,
        }]),
    });
    assert_round_trip(&MsgDisconnecting {
        time_stamp: 9,
        reason: SpiceLinkErr::OK,
    });
    assert_round_trip(&MsgcAckSync { generation: 1 });
    assert_round_trip(&MsgcPong {
        id: 3,
        timestamp: 4,
    });
    assert_round_trip(&MsgcDisconnecting {
        time_stamp: 1,
        reason: SpiceLinkErr::ERROR,
    });
    assert_eq!(MsgcMigrateFlushMark::TYPE, 4);
}

#[test]
fn notify_counts_text_without_its_nul() {
    let msg = MsgNotify {
        time_stamp: 1,
        severity: 0,
        visibility: 2,
        what: 0,
        message: b"hi".to_vec(),
    };
    let body = assert_round_trip(&msg);
    assert_eq!(&body[20..], &[2, 0, 0, 0, b'h', b'i', 0]);
}

#[test]
fn rejects_wait_list_count_over_bytes() {
    assert_eq!(
        MsgWaitForChannels::read_bytes(&[2, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
        Err(WireError::MissingData("wait list"))
    );
}

#[test]
fn main_messages_round_trip() {
    let init = MsgMainInit {
        session_id: 0x1234_5678,
        display_channels_hint: 1,
        supported_mouse_modes: 3,
        current_mouse_mode: 2,
        agent_connected: 1,
        agent_tokens: 10,
        multi_media_time: 1000,
        ram_hint: 0,
    };
    assert_eq!(assert_round_trip(&init).len(), 32);
    let list = MsgMainChannelsList {
        channels: vec![
            ChannelId {
                channel_type: ChannelType::DISPLAY,
                channel_id: 0,
            },
            ChannelId {
                channel_type: ChannelType::INPUTS,
                channel_id: 0,
            },
        ],
    };
    assert_eq!(assert_round_trip(&list), [2, 0, 0, 0, 2, 0, 3, 0]);
    assert_round_trip(&MsgMainMouseMode {
        supported_modes: MouseMode(3),
        current_mode: MouseMode::CLIENT,
    });
    assert_round_trip(&MsgMainMultiMediaTime::default());
    assert_eq!(MsgMainMultiMediaTime::TYPE, 106);
    assert_eq!(MsgMainAgentConnected::TYPE, 107);
    assert_eq!(MsgMainAgentDisconnected::TYPE, 108);
    assert_eq!(MsgMainAgentToken::TYPE, 110);
    assert_eq!(MsgMainAgentConnectedTokens::TYPE, 115);
    assert_round_trip(&MsgMainAgentData {
        data: vec![1, 2, 3],
    });
    assert_eq!(
        assert_round_trip(&MsgMainName { name: "vm".into() }),
        [3, 0, 0, 0, b'v', b'm', 0]
    );
    assert_round_trip(&MsgMainUuid { uuid: [7; 16] });
    assert_round_trip(&MsgcMainClientInfo { cache_size: 5 });
}

#[test]
fn rejects_channels_list_count_over_bytes() {
    assert_eq!(
        MsgMainChannelsList::read_bytes(&[3, 0, 0, 0, 2, 0]),
        Err(WireError::MissingData("ChannelsList"))
    );
}

#[test]
fn main_client_messages_decode() {
    assert_eq!(
        MainClientMsg::decode(104, &[]),
        Ok(MainClientMsg::AttachChannels(
            MsgcMainAttachChannels::default()
        ))
    );
    assert_eq!(
        MainClientMsg::decode(105, &[2, 0]),
        Ok(MainClientMsg::MouseModeRequest(MsgcMainMouseModeRequest {
            mode: MouseMode::CLIENT
        }))
    );
    assert_eq!(
        MainClientMsg::decode(106, &[0xff; 4]),
        Ok(MainClientMsg::AgentStart(U32Message(u32::MAX)))
    );
    assert_eq!(
        MainClientMsg::decode(107, &[1, 2]),
        Ok(MainClientMsg::AgentData(MsgcMainAgentData {
            data: &[1, 2]
        }))
    );
    assert_eq!(
        MainClientMsg::decode(108, &[5, 0, 0, 0]),
        Ok(MainClientMsg::AgentToken(U32Message(5)))
    );
    assert_eq!(
        MainClientMsg::decode(3, &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
        Ok(MainClientMsg::Base(BaseClientMsg::Pong(MsgcPong {
            id: 1,
            timestamp: 2
        })))
    );
    assert_eq!(
        MainClientMsg::decode(110, &[0; 4]),
        Ok(MainClientMsg::Unknown(110))
    );
    assert!(MainClientMsg::decode(104, &[0]).is_err());
    assert!(MainClientMsg::decode(108, &[0; 3]).is_err());
}

#[test]
fn agent_monitors_config_from_gtk() {
    // spice-gtk: one 1024x768 monitor at 0,0 with USE_POS | PHYSICAL_SIZE.
    let mut bytes = vec![1, 0, 0, 0, 3, 0, 0, 0];
    for v in [768u32, 1024, 32, 0, 0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes.extend_from_slice(&[200, 0, 44, 1]);
    let config = VdAgentMonitorsConfig::read_bytes(&bytes).unwrap();
    assert_eq!(config.flags, VdAgentMonitorsConfig::FLAG_USE_POS);
    assert_eq!(
        config.monitors,
        [VdAgentMonConfig {
            height: 768,
            width: 1024,
            depth: 32,
            x: 0,
            y: 0
        }]
    );
    assert_eq!(
        config.physical_sizes,
        Some(vec![VdAgentMonitorMm {
            height: 200,
            width: 300
        }])
    );
    assert_eq!(assert_round_trip(&config), bytes);
}

#[test]
fn rejects_agent_monitors_over_limit() {
    let mut bytes = vec![0, 1, 0, 0, 0, 0, 0, 0];
    bytes.resize(8 + 20 * 256, 0);
    assert!(matches!(
        VdAgentMonitorsConfig::read_bytes(&bytes),
        Err(WireError::TooMany { count: 256, .. })
    ));
}

#[test]
fn rejects_agent_physical_sizes_missing() {
    let mut bytes = vec![1, 0, 0, 0, 2, 0, 0, 0];
    bytes.resize(8 + 20, 0);
    assert_eq!(
        VdAgentMonitorsConfig::read_bytes(&bytes),
        Err(WireError::MissingData("VDAgentMonitorMM.height"))
    );
}

#[test]
fn agent_header_caps_and_reply_round_trip() {
    let header = VdAgentMessage {
        protocol: VD_AGENT_PROTOCOL,
        msg_type: VdAgentMessageType::ANNOUNCE_CAPABILITIES,
        opaque: 0,
        size: 8,
    };
    assert_eq!(assert_round_trip(&header).len(), VdAgentMessage::SIZE);
    let caps = VdAgentAnnounceCapabilities {
        request: 0,
        caps: vec![1 << VdAgentCap::MONITORS_CONFIG | 1 << VdAgentCap::REPLY],
    };
    assert_eq!(assert_round_trip(&caps), [0, 0, 0, 0, 6, 0, 0, 0]);
    assert!(VdAgentAnnounceCapabilities::read_bytes(&[1, 0, 0, 0, 6, 0]).is_err());
    assert_round_trip(&VdAgentReply {
        msg_type: VdAgentMessageType::MONITORS_CONFIG,
        error: VdAgentReply::SUCCESS,
    });
}

fn alpha_cursor() -> Cursor {
    Cursor::Shape {
        flags: CursorFlags::CACHE_ME,
        header: CursorHeader {
            unique: 5,
            cursor_type: CursorType::ALPHA,
            width: 1,
            height: 1,
            hot_spot_x: 0,
            hot_spot_y: 0,
        },
        data: vec![1, 2, 3, 4],
    }
}

#[test]
fn cursor_messages_round_trip() {
    let init = MsgCursorInit {
        position: Point16 { x: 1, y: 2 },
        trail_length: 0,
        trail_frequency: 0,
        visible: true,
        cursor: Cursor::None,
    };
    assert_eq!(assert_round_trip(&init), [1, 0, 2, 0, 0, 0, 0, 0, 1, 1, 0]);
    let set = MsgCursorSet {
        position: Point16 { x: -1, y: 3 },
        visible: true,
        cursor: alpha_cursor(),
    };
    let body = assert_round_trip(&set);
    assert_eq!(body.len(), 4 + 1 + 2 + 17 + 4);
    assert_round_trip(&MsgCursorMove {
        position: Point16 { x: 9, y: 9 },
    });
    assert_round_trip(&MsgCursorInvalOne { id: 5 });
    assert_eq!(
        (
            MsgCursorReset::TYPE,
            MsgCursorHide::TYPE,
            MsgCursorInvalAll::TYPE
        ),
        (102, 105, 108)
    );
    assert_eq!(
        CursorClientMsg::decode(1, &[1, 0, 0, 0]),
        Ok(CursorClientMsg::Base(BaseClientMsg::AckSync(MsgcAckSync {
            generation: 1
        })))
    );
    assert_eq!(
        CursorClientMsg::decode(101, &[]),
        Ok(CursorClientMsg::Unknown(101))
    );
}

#[test]
fn rejects_cursor_none_with_trailing_data() {
    let mut body = MsgCursorSet::default().to_bytes();
    body.push(0);
    assert!(matches!(
        MsgCursorSet::read_bytes(&body),
        Err(WireError::TrailingData { left: 1, .. })
    ));
}

#[test]
fn rejects_truncated_cursor_header() {
    let body = [0, 0, 0, 0, 1, 0, 0, 5, 0, 0];
    assert_eq!(
        MsgCursorSet::read_bytes(&body),
        Err(WireError::MissingData("CursorHeader.unique"))
    );
}

#[test]
fn scancodes_pack_as_spice_gtk() {
    assert_eq!(make_scancode(0x1e, false, false), 0x1e);
    assert_eq!(make_scancode(0x1e, false, true), 0x9e);
    assert_eq!(make_scancode(0x48, true, false), 0x48e0);
    assert_eq!(make_scancode(0x48, true, true), 0xc8e0);
    assert_eq!(scancode_bytes(0xc8e0).collect::<Vec<_>>(), [0xe0, 0xc8]);
    assert_eq!(scancode_bytes(0x1e).collect::<Vec<_>>(), [0x1e]);
    assert_eq!(scancode_bytes(0).count(), 0);
}

#[test]
fn inputs_messages_round_trip_and_decode() {
    assert_round_trip(&MsgInputsInit {
        keyboard_modifiers: KeyModifiers::NUM_LOCK,
    });
    assert_round_trip(&MsgInputsKeyModifiers {
        modifiers: KeyModifiers(5),
    });
    assert_eq!(MsgInputsMouseMotionAck::TYPE, 111);
    let cases: [(u16, Vec<u8>, InputsClientMsg<'static>); 7] = [
        (
            101,
            vec![0xe0, 0x48, 0, 0],
            InputsClientMsg::KeyDown(MsgcInputsKeyDown { code: 0x48e0 }),
        ),
        (
            102,
            vec![0x9e, 0, 0, 0],
            InputsClientMsg::KeyUp(MsgcInputsKeyUp { code: 0x9e }),
        ),
        (
            103,
            vec![4, 0],
            InputsClientMsg::KeyModifiers(MsgcInputsKeyModifiers {
                modifiers: KeyModifiers::CAPS_LOCK,
            }),
        ),
        (
            111,
            vec![0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 1, 0],
            InputsClientMsg::MouseMotion(MsgcInputsMouseMotion {
                dx: -1,
                dy: 2,
                buttons_state: ButtonsState::LEFT,
            }),
        ),
        (
            112,
            vec![10, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0],
            InputsClientMsg::MousePosition(MsgcInputsMousePosition {
                x: 10,
                y: 20,
                buttons_state: ButtonsState::NONE,
                display_id: 0,
            }),
        ),
        (
            113,
            vec![4, 8, 0],
            InputsClientMsg::MousePress(MsgcInputsMousePress {
                button: MouseButton::UP,
                buttons_state: ButtonsState::UP,
            }),
        ),
        (
            114,
            vec![4, 0, 0],
            InputsClientMsg::MouseRelease(MsgcInputsMouseRelease {
                button: MouseButton::UP,
                buttons_state: ButtonsState::NONE,
            }),
        ),
    ];
    for (ty, bytes, expected) in &cases {
        assert_eq!(InputsClientMsg::decode(*ty, bytes).as_ref(), Ok(expected));
        let mut reencoded = Vec::new();
        match expected {
            InputsClientMsg::KeyDown(m) => m.encode(&mut reencoded),
            InputsClientMsg::KeyUp(m) => m.encode(&mut reencoded),
            InputsClientMsg::KeyModifiers(m) => m.encode(&mut reencoded),
            InputsClientMsg::MouseMotion(m) => m.encode(&mut reencoded),
            InputsClientMsg::MousePosition(m) => m.encode(&mut reencoded),
            InputsClientMsg::MousePress(m) => m.encode(&mut reencoded),
            InputsClientMsg::MouseRelease(m) => m.encode(&mut reencoded),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(&reencoded, bytes);
    }
    let codes = [0xe0, 0x48, 0xe0, 0xc8];
    assert_eq!(
        InputsClientMsg::decode(104, &codes),
        Ok(InputsClientMsg::KeyScancode(MsgcInputsKeyScancode {
            codes: &codes
        }))
    );
    assert!(matches!(
        InputsClientMsg::decode(112, &[0; 10]),
        Err(WireError::MissingData("MousePosition.display_id"))
    ));
    assert!(matches!(
        InputsClientMsg::decode(101, &[0; 5]),
        Err(WireError::TrailingData { left: 1, .. })
    ));
    assert_eq!(
        InputsClientMsg::decode(150, &[]),
        Ok(InputsClientMsg::Unknown(150))
    );
}
