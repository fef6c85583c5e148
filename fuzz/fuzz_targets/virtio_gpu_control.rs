//! What a guest's virtio-gpu driver puts on the control and cursor queues, with guest memory
//! it fills itself: the device decodes and runs each request against its resources and
//! hands the display sink what changed. Nothing may panic, a response never exceeds the
//! chain's writable part, and what reaches the sink matches the sink's contract.
//!
//! Input: two bytes giving how many of the following bytes fill guest memory from address
//! 0, then requests: a kind byte (bit 0: cursor queue; the rest sets the response room) and
//! a little-endian u16 length before each request's bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vhost_user_spice::virtio::gpu::device::{GpuConfig, GpuDevice};
use vhost_user_spice::virtio::gpu::sink::{DisplaySink, SinkError, SinkRect};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const GUEST_MEMORY: usize = 1 << 18;
/// Largest primary the sink accepts, as the real one bounds it.
const MAX_SIDE: u32 = 16384;

/// Checks what the device hands a display sink.
struct CheckingSink {
    primary: Option<(u32, u32)>,
}

impl DisplaySink for CheckingSink {
    fn set_primary(&mut self, width: u32, height: u32) -> Result<(), SinkError> {
        assert!(width > 0 && height > 0);
        if width > MAX_SIDE || height > MAX_SIDE {
            return Err(SinkError::Closed);
        }
        self.primary = Some((width, height));
        Ok(())
    }

    fn disable_primary(&mut self) -> Result<(), SinkError> {
        self.primary = None;
        Ok(())
    }

    fn update(&mut self, rect: SinkRect, pixels: &[u8], stride: usize) -> Result<(), SinkError> {
        let (width, height) = self.primary.expect("an update without a primary");
        assert!(u64::from(rect.x) + u64::from(rect.width) <= u64::from(width));
        assert!(u64::from(rect.y) + u64::from(rect.height) <= u64::from(height));
        let row = rect.width as usize * 4;
        assert!(stride >= row);
        if rect.height > 0 {
            assert!(pixels.len() >= (rect.height as usize - 1) * stride + row);
        }
        Ok(())
    }

    fn cursor_set(
        &mut self,
        argb: &[u8],
        width: u32,
        height: u32,
        _hot_x: u32,
        _hot_y: u32,
        _x: i32,
        _y: i32,
    ) -> Result<(), SinkError> {
        // The hot spot is the guest's word, unchecked: the sink clamps it.
        assert_eq!(argb.len(), width as usize * height as usize * 4);
        Ok(())
    }

    fn cursor_move(&mut self, _x: i32, _y: i32) -> Result<(), SinkError> {
        Ok(())
    }

    fn cursor_hide(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let fill = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (memory, mut requests) = rest.split_at(fill);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), GUEST_MEMORY)])
        .expect("guest memory");
    mem.write_slice(memory, GuestAddress(0)).expect("fill");
    let config = GpuConfig {
        max_hostmem: 16 << 20,
        ..GpuConfig::default()
    };
    let mut device = GpuDevice::new(&config, CheckingSink { primary: None }).expect("device");
    while let Some((&kind, tail)) = requests.split_first() {
        let Some((len, tail)) = tail.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_le_bytes(*len)).min(tail.len());
        let (mut request, tail) = tail.split_at(len);
        requests = tail;
        if kind & 1 != 0 {
            device.process_cursor(&mut request);
        } else {
            let capacity = usize::from(kind >> 1) * 16;
            let response = device.process_control(&mut request, capacity, &mem);
            assert!(response.len() <= capacity);
        }
    }
});
