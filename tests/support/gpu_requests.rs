//! virtio-gpu requests as a guest driver builds them, and response field readers. Layouts:
//! `include/uapi/linux/virtio_gpu.h` (shared/research/rust-vmm.md §3.3), all little-endian.

use vhost_user_spice::virtio::gpu::protocol::{ctrl_type as t, FLAG_FENCE};

pub fn le(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A 24-byte `virtio_gpu_ctrl_hdr` without flags.
pub fn hdr(ctrl_type: u32) -> Vec<u8> {
    let mut b = Vec::new();
    le(&mut b, &[ctrl_type, 0, 0, 0, 0, 0]);
    b
}

/// `req` with FENCE set and `fence_id`.
pub fn fenced(mut req: Vec<u8>, fence_id: u64) -> Vec<u8> {
    req[4..8].copy_from_slice(&FLAG_FENCE.to_le_bytes());
    req[8..16].copy_from_slice(&fence_id.to_le_bytes());
    req
}

pub fn create_2d(id: u32, format: u32, width: u32, height: u32) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_CREATE_2D);
    le(&mut b, &[id, format, width, height]);
    b
}

pub fn unref(id: u32) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_UNREF);
    le(&mut b, &[id, 0]);
    b
}

/// ATTACH_BACKING as Linux queues it: the fixed part and the entry array, for two descriptors.
pub fn attach(id: u32, entries: &[(u64, u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut b = hdr(t::RESOURCE_ATTACH_BACKING);
    le(
        &mut b,
        &[id, u32::try_from(entries.len()).expect("few entries")],
    );
    let mut e = Vec::new();
    for &(addr, len) in entries {
        e.extend_from_slice(&addr.to_le_bytes());
        le(&mut e, &[len, 0]);
    }
    (b, e)
}

pub fn set_scanout(scanout: u32, id: u32, r: [u32; 4]) -> Vec<u8> {
    let mut b = hdr(t::SET_SCANOUT);
    le(&mut b, &r);
    le(&mut b, &[scanout, id]);
    b
}

pub fn transfer(id: u32, r: [u32; 4], offset: u64) -> Vec<u8> {
    let mut b = hdr(t::TRANSFER_TO_HOST_2D);
    le(&mut b, &r);
    b.extend_from_slice(&offset.to_le_bytes());
    le(&mut b, &[id, 0]);
    b
}

pub fn flush(id: u32, r: [u32; 4]) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_FLUSH);
    le(&mut b, &r);
    le(&mut b, &[id, 0]);
    b
}

/// UPDATE_CURSOR or MOVE_CURSOR (`virtio_gpu_update_cursor`, 56 bytes).
pub fn cursor_cmd(ctrl_type: u32, x: i32, y: i32, id: u32, hot: (u32, u32)) -> Vec<u8> {
    let mut b = hdr(ctrl_type);
    le(&mut b, &[0]);
    b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(&y.to_le_bytes());
    le(&mut b, &[0, id, hot.0, hot.1, 0]);
    b
}

pub fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub fn resp_type(resp: &[u8]) -> u32 {
    u32_at(resp, 0)
}
