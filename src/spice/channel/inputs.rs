//! The INPUTS channel core: keys as PC set-1 scancodes, the pointer (absolute in client mouse
//! mode, accumulated relative motion in server mode), buttons and wheel, and the motion acks
//! without which the client's pointer freezes (brief §3.4).

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info};

use super::{ChannelCore, ChannelError};
use crate::guest::{InputClient, InputEvent};
use crate::spice::outbox::Outbox;
use crate::spice::pipe::Canvas;
use crate::spice::session::Session;
use crate::spice::wire::{
    scancode_bytes, BaseClientMsg, ButtonsState, ChannelType, InputsClientMsg, KeyModifiers,
    MouseButton, MsgInputsInit, MsgInputsKeyModifiers, MsgInputsMouseMotionAck,
    SPICE_INPUT_MOTION_ACK_BUNCH,
};

/// The extended-key prefix byte of set 1, folded into bit 8 of [`InputEvent::Key`].
const E0: u8 = 0xe0;
/// The Pause key's prefix; its six-byte sequence has no single-scancode form.
const E1: u8 = 0xe1;
/// The break (release) bit of a set-1 scancode.
const BREAK: u8 = 0x80;
/// Wheel buttons are events, not state.
const WHEEL_MASK: u16 = ButtonsState::UP.0 | ButtonsState::DOWN.0;

/// Decodes a set-1 byte sequence (press and/or release codes, `E0`-prefixed extended keys) into
/// key events. Pause (`E1 1D 45`, `E1 9D C5`) has no single scancode: its bytes go to the
/// device as they are ([`InputEvent::ScancodeByte`]), whose decoder knows the sequence.
pub fn decode_scancodes(bytes: impl IntoIterator<Item = u8>, mut emit: impl FnMut(InputEvent)) {
    let mut extended = false;
    let mut raw = 0usize;
    for b in bytes {
        if raw > 0 {
            raw -= 1;
            emit(InputEvent::ScancodeByte(b));
            continue;
        }
        match b {
            E0 => extended = true,
            E1 => {
                emit(InputEvent::ScancodeByte(b));
                raw = 2;
                extended = false;
            }
            0 => extended = false,
            _ => {
                let code = u16::from(b & !BREAK) | if extended { 0x100 } else { 0 };
                emit(InputEvent::Key {
                    scancode: code,
                    pressed: b & BREAK == 0,
                });
                extended = false;
            }
        }
    }
}

/// The INPUTS channel of one client.
pub struct InputsChannel {
    /// Dropping it releases whatever this client still holds down in the guest.
    client: InputClient,
    canvas: Arc<dyn Canvas>,
    /// Motion and position messages since the last ack.
    motions: u32,
    buttons: Option<u16>,
    /// The pointer as relative motion has moved it (server mouse mode).
    pointer: (i64, i64),
    /// Asked whether the input policy lets this client's events through.
    session: Arc<Session>,
    /// Whether the last event was let through (logged when it flips, so once per client
    /// and policy change, not per event).
    allowed: Option<bool>,
}

impl std::fmt::Debug for InputsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputsChannel")
            .field("motions", &self.motions)
            .field("buttons", &self.buttons)
            .finish_non_exhaustive()
    }
}

impl InputsChannel {
    /// A linked inputs channel of `session`: frames INIT with the guest's lock LEDs
    /// `modifiers`.
    pub fn new(
        client: InputClient,
        canvas: Arc<dyn Canvas>,
        session: Arc<Session>,
        modifiers: u16,
        out: &mut Outbox,
    ) -> Self {
        out.send(&MsgInputsInit {
            keyboard_modifiers: KeyModifiers(modifiers),
        });
        Self {
            client,
            canvas,
            motions: 0,
            buttons: None,
            pointer: (0, 0),
            session,
            allowed: None,
        }
    }

    /// Whether the input policy lets this client's events reach the guest now; logs when
    /// that changes. A view-only client's messages are still read and its motions acked, so
    /// its pointer keeps moving locally.
    fn may_input(&mut self) -> bool {
        let allowed = self.session.input_allowed();
        if self.allowed != Some(allowed) {
            if allowed {
                if self.allowed.is_some() {
                    info!("SPICE client's input reaches the guest from now on");
                }
            } else {
                info!(
                    policy = ?self.session.input_policy(),
                    "SPICE client's keyboard and mouse are ignored (input policy)"
                );
            }
            self.allowed = Some(allowed);
        }
        allowed
    }

    /// The primary's size, to clamp the pointer to.
    fn bounds(&self) -> Option<(i64, i64)> {
        self.canvas
            .surfaces()
            .into_iter()
            .find(|s| s.surface_id == 0)
            .map(|s| (i64::from(s.width), i64::from(s.height)))
    }

    fn move_to(&mut self, x: i64, y: i64) {
        let (x, y) = match self.bounds() {
            Some((w, h)) => (x.clamp(0, (w - 1).max(0)), y.clamp(0, (h - 1).max(0))),
            None => (x.max(0), y.max(0)),
        };
        self.pointer = (x, y);
        self.client.input(InputEvent::PointerPosition {
            x: u32::try_from(x).unwrap_or(u32::MAX),
            y: u32::try_from(y).unwrap_or(u32::MAX),
        });
    }

    fn set_buttons(&mut self, state: u16) {
        let state = state & !WHEEL_MASK;
        if self.buttons != Some(state) {
            self.buttons = Some(state);
            self.client.input(InputEvent::Buttons {
                mask: u32::from(state),
            });
        }
    }

    fn motion(&mut self, out: &mut Outbox) {
        self.motions = self.motions.saturating_add(1);
        if self.motions >= SPICE_INPUT_MOTION_ACK_BUNCH {
            self.motions = 0;
            out.send(&MsgInputsMouseMotionAck::default());
        }
    }

    fn button_bit(button: MouseButton) -> u16 {
        match button {
            MouseButton::LEFT => ButtonsState::LEFT.0,
            MouseButton::MIDDLE => ButtonsState::MIDDLE.0,
            MouseButton::RIGHT => ButtonsState::RIGHT.0,
            MouseButton::SIDE => ButtonsState::SIDE.0,
            MouseButton::EXTRA => ButtonsState::EXTRA.0,
            _ => 0,
        }
    }
}

impl ChannelCore for InputsChannel {
    fn handle_message(
        &mut self,
        msg_type: u16,
        body: &[u8],
        _now: Instant,
        out: &mut Outbox,
    ) -> Result<(), ChannelError> {
        let msg =
            InputsClientMsg::decode(msg_type, body).map_err(ChannelError::malformed(msg_type))?;
        let input = matches!(
            msg,
            InputsClientMsg::KeyDown(_)
                | InputsClientMsg::KeyUp(_)
                | InputsClientMsg::KeyScancode(_)
                | InputsClientMsg::KeyModifiers(_)
                | InputsClientMsg::MousePosition(_)
                | InputsClientMsg::MouseMotion(_)
                | InputsClientMsg::MousePress(_)
                | InputsClientMsg::MouseRelease(_)
        );
        if input && !self.may_input() {
            if matches!(
                msg,
                InputsClientMsg::MousePosition(_) | InputsClientMsg::MouseMotion(_)
            ) {
                // Without its acks the client stops sending motion (brief §3.4).
                self.motion(out);
            }
            return Ok(());
        }
        let client = &self.client;
        let emit = |e| client.input(e);
        match msg {
            InputsClientMsg::Base(BaseClientMsg::Disconnecting(d)) => {
                return Err(ChannelError::ClientDisconnecting(d.reason))
            }
            InputsClientMsg::Base(_) => {}
            InputsClientMsg::KeyDown(k) => decode_scancodes(scancode_bytes(k.code), emit),
            InputsClientMsg::KeyUp(k) => decode_scancodes(
                // spice-gtk sends the break code in KEY_UP; an old client might send the make
                // code, which is still a release.
                scancode_bytes(k.code).map(|b| if b == E0 || b == E1 { b } else { b | BREAK }),
                emit,
            ),
            InputsClientMsg::KeyScancode(k) => decode_scancodes(k.codes.iter().copied(), emit),
            InputsClientMsg::KeyModifiers(m) => {
                // The device toggles the guest's locks to match (spice-server
                // inputs-channel.cpp does the same with synthesised key presses).
                debug!(modifiers = ?m.modifiers, "client lock state");
                self.client.input(InputEvent::LockModifiers {
                    modifiers: m.modifiers.0,
                });
            }
            InputsClientMsg::MousePosition(p) => {
                self.move_to(i64::from(p.x), i64::from(p.y));
                self.set_buttons(p.buttons_state.0);
                self.motion(out);
            }
            InputsClientMsg::MouseMotion(m) => {
                let (x, y) = self.pointer;
                self.move_to(x + i64::from(m.dx), y + i64::from(m.dy));
                self.set_buttons(m.buttons_state.0);
                self.motion(out);
            }
            InputsClientMsg::MousePress(p) => match p.button {
                MouseButton::UP => self.client.input(InputEvent::Wheel {
                    vertical: -1,
                    horizontal: 0,
                }),
                MouseButton::DOWN => self.client.input(InputEvent::Wheel {
                    vertical: 1,
                    horizontal: 0,
                }),
                b => self.set_buttons(p.buttons_state.0 | Self::button_bit(b)),
            },
            InputsClientMsg::MouseRelease(r) => {
                if r.button != MouseButton::UP && r.button != MouseButton::DOWN {
                    self.set_buttons(r.buttons_state.0 & !Self::button_bit(r.button));
                }
            }
            InputsClientMsg::Unknown(msg_type) => {
                return Err(ChannelError::UnknownMessage {
                    channel: ChannelType::INPUTS,
                    msg_type,
                })
            }
        }
        Ok(())
    }

    fn handle_guest_modifiers(&mut self, modifiers: u16, out: &mut Outbox) {
        out.send(&MsgInputsKeyModifiers {
            modifiers: KeyModifiers(modifiers),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Vec<(u16, bool)> {
        let mut v = Vec::new();
        decode_scancodes(bytes.iter().copied(), |e| {
            if let InputEvent::Key { scancode, pressed } = e {
                v.push((scancode, pressed));
            }
        });
        v
    }

    #[test]
    fn decodes_plain_extended_and_pause() {
        assert_eq!(decode(&[0x1e, 0x9e]), [(0x1e, true), (0x1e, false)]);
        assert_eq!(
            decode(&[0xe0, 0x48, 0xe0, 0xc8]),
            [(0x148, true), (0x148, false)]
        );
        assert_eq!(decode(&[0xe1, 0x1d, 0x45, 0x10]), [(0x10, true)]);
        let mut raw = Vec::new();
        decode_scancodes([0xe1, 0x9d, 0xc5], |e| raw.push(e));
        assert_eq!(
            raw,
            [0xe1, 0x9d, 0xc5].map(InputEvent::ScancodeByte),
            "Pause goes to the device byte by byte"
        );
        assert_eq!(decode(&[]), []);
    }
}
