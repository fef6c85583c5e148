//! What a SPICE client sends once linked: a byte stream on one channel, split into messages
//! as the server splits it (`Framer`, with that channel's size limit), each message decoded
//! as that channel decodes it. Nothing may panic, and no message may exceed its limit.
//!
//! The first input byte picks the channel (low bits) and the header kind (high bit).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_user_spice::spice::decode_scancodes;
use vhost_user_spice::spice::wire::{
    Codec, CursorClientMsg, DisplayClientMsg, Framer, HeaderKind, InputsClientMsg, MainClientMsg,
    VdAgentMessage, VdAgentMonitorsConfig, CURSOR_CLIENT_MESSAGE_LIMIT,
    DISPLAY_CLIENT_MESSAGE_LIMIT, INPUTS_CLIENT_MESSAGE_LIMIT, MAIN_CLIENT_MESSAGE_LIMIT,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut stream)) = data.split_first() else {
        return;
    };
    let kind = if selector & 0x80 == 0 {
        HeaderKind::Mini
    } else {
        HeaderKind::Full
    };
    let channel = selector & 0x3;
    let limit = [
        MAIN_CLIENT_MESSAGE_LIMIT,
        DISPLAY_CLIENT_MESSAGE_LIMIT,
        INPUTS_CLIENT_MESSAGE_LIMIT,
        CURSOR_CLIENT_MESSAGE_LIMIT,
    ][usize::from(channel)];
    let mut framer = Framer::new(kind, limit);
    while let Ok(Some((frame, used))) = framer.next_frame(stream) {
        assert!(used <= stream.len());
        assert!(frame.body.len() <= limit as usize);
        let (msg_type, body) = (frame.msg_type, frame.body);
        match channel {
            0 => {
                let _ = MainClientMsg::decode(msg_type, body);
                // AGENT_DATA carries agent messages; the monitors config is the one parsed.
                let _ = VdAgentMessage::read_bytes(body);
                if let Some(rest) = body.get(VdAgentMessage::SIZE..) {
                    let _ = VdAgentMonitorsConfig::read_bytes(rest);
                }
            }
            1 => {
                let _ = DisplayClientMsg::decode(msg_type, body);
            }
            2 => {
                let _ = InputsClientMsg::decode(msg_type, body);
                // KEY_SCANCODE's bytes go through the scancode decoder.
                decode_scancodes(body.iter().copied(), |_| {});
            }
            _ => {
                let _ = CursorClientMsg::decode(msg_type, body);
            }
        }
        stream = &stream[used..];
    }
});
