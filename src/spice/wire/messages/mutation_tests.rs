//! Property tests over mutated bytes: decoders never panic, and whatever decodes re-encodes
//! to bytes that decode to the same value. These run in CI; the cargo-fuzz target
//! `spice_client_messages` (`fuzz/`) explores the same decoders at length.

// Tests index freely: a panic there is a failed test, not a crash.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::fmt::Debug;

use super::*;
use crate::spice::wire::{Codec, LinkMess, LinkReply};

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = u8::try_from(rng.next() & 0xff).unwrap();
            }
            1 if !bytes.is_empty() => {
                let len = rng.below(bytes.len());
                bytes.truncate(len);
            }
            2 => bytes.push(u8::try_from(rng.next() & 0xff).unwrap()),
            _ if bytes.len() >= 4 => {
                // Small offsets and counts are where the interesting bounds are.
                let i = rng.below(bytes.len() - 3);
                let v = u32::try_from(rng.below(256)).unwrap();
                bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    bytes
}

fn check<M>(seed: &[u8], rounds: usize)
where
    M: for<'a> Codec<'a> + PartialEq + Debug,
{
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..rounds {
        let bytes = mutate(&mut rng, seed);
        if let Ok(value) = M::read_bytes(&bytes) {
            let again = value.to_bytes();
            assert_eq!(
                M::read_bytes(&again).as_ref(),
                Ok(&value),
                "from {bytes:02x?}"
            );
        }
    }
}

fn seed<M: for<'a> Codec<'a>>(m: &M) -> Vec<u8> {
    m.to_bytes()
}

#[test]
fn mutated_draw_copy_never_panics_and_round_trips() {
    let mut msg = MsgDisplayDrawCopy::read_bytes(&super::display_tests::WORKED_BODY).unwrap();
    check::<MsgDisplayDrawCopy>(&seed(&msg), 3000);
    msg.base.clip = Clip::Rects(vec![Rect::default(); 2]);
    msg.src_bitmap.data = ImageData::Lz4(Lz4Data {
        top_down: true,
        format: BitmapFormat::FMT_32BIT,
        blocks: vec![vec![1, 2], vec![3]],
    });
    msg.mask.bitmap = Some(msg.src_bitmap.clone());
    check::<MsgDisplayDrawCopy>(&seed(&msg), 3000);
}

#[test]
fn mutated_messages_never_panic() {
    check::<MsgDisplayDrawFill>(
        &seed(&MsgDisplayDrawFill {
            base: DisplayBase::default(),
            brush: Brush::Solid(1),
            rop_descriptor: Ropd::OP_PUT,
            mask: QMask::default(),
        }),
        1000,
    );
    check::<MsgDisplayMonitorsConfig>(
        &seed(&MsgDisplayMonitorsConfig {
            max_allowed: 1,
            heads: vec![Head::default()],
        }),
        1000,
    );
    check::<MsgCursorSet>(
        &seed(&MsgCursorSet {
            position: Point16::default(),
            visible: true,
            cursor: Cursor::Shape {
                flags: CursorFlags::EMPTY,
                header: CursorHeader::default(),
                data: vec![1, 2, 3, 4],
            },
        }),
        1000,
    );
    check::<VdAgentMonitorsConfig>(
        &seed(&VdAgentMonitorsConfig {
            flags: 1,
            monitors: vec![VdAgentMonConfig::default(); 2],
            physical_sizes: Some(vec![VdAgentMonitorMm::default(); 2]),
        }),
        1000,
    );
    check::<MsgMainChannelsList>(
        &seed(&MsgMainChannelsList {
            channels: vec![
                ChannelId {
                    channel_type: crate::spice::wire::ChannelType::MAIN,
                    channel_id: 0
                };
                3
            ],
        }),
        1000,
    );
    check::<MsgNotify>(
        &seed(&MsgNotify {
            time_stamp: 0,
            severity: 0,
            visibility: 0,
            what: 0,
            message: b"abc".to_vec(),
        }),
        1000,
    );
    check::<LinkMess>(
        &seed(&LinkMess {
            connection_id: 0,
            channel_type: crate::spice::wire::ChannelType::MAIN,
            channel_id: 0,
            common_caps: crate::spice::wire::Caps::from_words(vec![0xd]),
            channel_caps: crate::spice::wire::Caps::from_words(vec![0xf]),
        }),
        2000,
    );
    check::<LinkReply>(
        &seed(&LinkReply::refusal(crate::spice::wire::SpiceLinkErr::OK)),
        500,
    );
}
