//! A hostile guest against the daemon's virtio-gpu, through the socket: every bad request gets
//! the `VIRTIO_GPU_RESP_ERR_*` QEMU's device would give, and a good flush afterwards still
//! reaches the canonical surface. A VMM that vanishes mid-command leaves the daemon serving the
//! next one with fresh device state.

mod support;

use std::io::Write;

use support::gpu::{
    attach, create_2d, cursor_cmd, fenced, flush, hdr, le, pixel, set_scanout, transfer, unref,
    GpuDaemon, GpuDriver, GuestFb, EDID, HDR,
};
use support::vmm::GUEST_RAM_SIZE;
use support::{Flavor, GUEST_RAM_BASE};
use vhost_user_spice::virtio::gpu::protocol::ctrl_type as t;

const W: u32 = 256;
const H: u32 = 128;
/// `--max-hostmem`: room for the 128 KiB framebuffer and a few small resources, not 4 MiB.
const MAX_HOSTMEM: u64 = 1 << 20;

/// A guest with its framebuffer on scanout 0.
struct Session {
    daemon: GpuDaemon,
    gpu: GpuDriver,
    fb: GuestFb,
    frame: u8,
}

impl Session {
    fn start(flavor: Flavor) -> Self {
        let daemon = GpuDaemon::app(W, H, MAX_HOSTMEM);
        let mut gpu = daemon.connect(flavor);
        gpu.probe();
        let mut fb = GuestFb::new(&mut gpu.vmm, 1, W, H);
        fb.draw(&gpu.vmm, fb.rect(), pixel(0));
        gpu.bring_up(&fb);
        daemon.wait_primary(W, H, &fb.pixels);
        Session {
            daemon,
            gpu,
            fb,
            frame: 0,
        }
    }

    /// The device still works: a fresh update reaches the canonical surface exactly.
    fn still_draws(&mut self) {
        self.frame += 1;
        let r = [u32::from(self.frame) % 200, 3, 50, 100];
        self.fb.draw(&self.gpu.vmm, r, pixel(self.frame));
        self.gpu.update(&self.fb, r);
        self.daemon.wait_primary(W, H, &self.fb.pixels);
    }

    fn expect(&mut self, readable: &[&[u8]], status: u32, what: &str) {
        let got = self.gpu.status(readable);
        assert_eq!(got, status, "{what}: got {got:#x}, want {status:#x}");
    }
}

#[test]
fn unknown_resource_ids_are_invalid_resource_id() {
    let mut s = Session::start(Flavor::CloudHypervisor);
    let bad = t::RESP_ERR_INVALID_RESOURCE_ID;
    s.expect(&[&transfer(99, [0, 0, 8, 8], 0)], bad, "transfer");
    s.expect(&[&flush(99, [0, 0, 8, 8])], bad, "flush");
    s.expect(&[&set_scanout(0, 99, [0, 0, W, H])], bad, "set scanout");
    let (req, entries) = attach(99, &[(GUEST_RAM_BASE, 4096)]);
    s.expect(&[&req, &entries], bad, "attach backing");
    s.expect(&[&unref(99)], bad, "unref");
    s.expect(&[&create_2d(0, 2, 8, 8)], bad, "create id 0");
    s.expect(&[&create_2d(1, 2, 8, 8)], bad, "create an existing id");
    // The cursor queue has no answers; a bad cursor is dropped.
    s.gpu
        .cursor(&cursor_cmd(t::UPDATE_CURSOR, 10, 10, 99, (0, 0)));
    s.still_draws();
    assert!(s.daemon.display.cursor().shape.is_none());
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

#[test]
fn rectangles_outside_the_resource_are_invalid_parameter() {
    let mut s = Session::start(Flavor::Qemu);
    let bad = t::RESP_ERR_INVALID_PARAMETER;
    s.expect(
        &[&transfer(1, [200, 0, 100, 10], 0)],
        bad,
        "transfer too wide",
    );
    s.expect(
        &[&transfer(1, [0, 120, 10, 10], 0)],
        bad,
        "transfer too low",
    );
    s.expect(
        &[&transfer(1, [u32::MAX, 0, 2, 1], 0)],
        bad,
        "x + width overflows",
    );
    s.expect(
        &[&transfer(1, [0, u32::MAX - 1, 1, 3], 0)],
        bad,
        "y + height overflows",
    );
    s.expect(&[&flush(1, [0, 0, W + 1, H])], bad, "flush too wide");
    s.expect(
        &[&set_scanout(0, 1, [0, 0, W, H + 1])],
        bad,
        "scanout too low",
    );
    s.expect(
        &[&set_scanout(0, 1, [0, 0, 8, 8])],
        bad,
        "scanout below 16x16",
    );
    // Reads past the end of the backing.
    s.expect(
        &[&transfer(1, [0, 0, 1, 1], u64::from(W * H * 4))],
        bad,
        "offset past backing",
    );
    s.expect(
        &[&transfer(1, [0, 0, 1, 1], u64::MAX - 2)],
        bad,
        "offset overflows",
    );
    s.still_draws();
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

#[test]
fn backing_outside_guest_memory_is_refused() {
    let mut s = Session::start(Flavor::CloudHypervisor);
    s.gpu.ok(&[&create_2d(5, 2, 32, 32)]);
    let ram_end = GUEST_RAM_BASE + GUEST_RAM_SIZE as u64;
    for (what, entry) in [
        ("below guest RAM", (0x1000, 4096)),
        ("straddling its end", (ram_end - 100, 4096)),
        ("past its end", (ram_end + 0x10_0000, 4096)),
        ("wrapping around", (u64::MAX - 10, 4096)),
    ] {
        let good = (GUEST_RAM_BASE, 4096);
        let (req, entries) = attach(5, &[good, entry]);
        s.expect(&[&req, &entries], t::RESP_ERR_UNSPEC, what);
    }
    // Nothing was attached: a transfer has no backing to read.
    s.expect(
        &[&transfer(5, [0, 0, 32, 32], 0)],
        t::RESP_ERR_UNSPEC,
        "no backing",
    );
    // More entries than QEMU's limit (16384), announced but not sent.
    let mut req = hdr(t::RESOURCE_ATTACH_BACKING);
    le(&mut req, &[5, 16385]);
    s.expect(&[&req], t::RESP_ERR_UNSPEC, "too many entries");
    let backing = GuestFb::new(&mut s.gpu.vmm, 5, 32, 32);
    let (req, entries) = attach(5, &backing.entries);
    s.gpu.ok(&[&req, &entries]);
    s.gpu.ok(&[&transfer(5, [0, 0, 32, 32], 0)]);
    s.still_draws();
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

#[test]
fn resource_over_the_memory_budget_is_out_of_memory() {
    let mut s = Session::start(Flavor::Qemu);
    let oom = t::RESP_ERR_OUT_OF_MEMORY;
    s.expect(
        &[&create_2d(2, 2, 1024, 1024)],
        oom,
        "4 MiB over a 1 MiB budget",
    );
    s.expect(&[&create_2d(3, 2, 16384, 16384)], oom, "1 GiB");
    s.expect(
        &[&create_2d(4, 2, u32::MAX, u32::MAX)],
        oom,
        "width * height overflows",
    );
    // What fits still fits, and unref gives the budget back.
    for round in 0..3 {
        s.gpu.ok(&[&create_2d(10 + round, 2, 400, 400)]);
        s.gpu.ok(&[&unref(10 + round)]);
    }
    s.expect(
        &[&create_2d(6, 77, 8, 8)],
        t::RESP_ERR_INVALID_PARAMETER,
        "unknown format",
    );
    s.expect(
        &[&create_2d(6, 2, 0, 8)],
        t::RESP_ERR_INVALID_PARAMETER,
        "zero width",
    );
    s.still_draws();
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

#[test]
fn bad_scanout_ids_are_refused() {
    let mut s = Session::start(Flavor::CloudHypervisor);
    let bad = t::RESP_ERR_INVALID_SCANOUT_ID;
    s.expect(&[&set_scanout(1, 1, [0, 0, W, H])], bad, "scanout 1 of 1");
    s.expect(
        &[&set_scanout(u32::MAX, 1, [0, 0, W, H])],
        bad,
        "scanout u32::MAX",
    );
    let mut edid = hdr(t::GET_EDID);
    le(&mut edid, &[5, 0]);
    let resp = s.gpu.ctrl(&[&edid], EDID);
    assert_eq!(
        support::gpu::resp_type(&resp),
        t::RESP_ERR_INVALID_PARAMETER,
        "EDID of scanout 5 (QEMU's answer)"
    );
    // A cursor on a scanout that does not exist is dropped.
    let mut c = cursor_cmd(t::MOVE_CURSOR, 1, 1, 0, (0, 0));
    c[24..28].copy_from_slice(&7u32.to_le_bytes());
    s.gpu.cursor(&c);
    s.still_draws();
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

#[test]
fn truncated_and_unknown_requests_are_err_unspec() {
    let mut s = Session::start(Flavor::Qemu);
    let unspec = t::RESP_ERR_UNSPEC;
    s.expect(&[&hdr(t::GET_DISPLAY_INFO)[..10]], unspec, "half a header");
    let scanout = set_scanout(0, 1, [0, 0, W, H]);
    s.expect(&[&scanout[..30]], unspec, "half a set-scanout");
    let (req, entries) = attach(1, &[(GUEST_RAM_BASE, 4096); 4]);
    s.expect(
        &[&req, &entries[..20]],
        unspec,
        "attach with 1.25 of 4 entries",
    );
    s.expect(&[&hdr(0x0108)], unspec, "GET_CAPSET_INFO (3D)");
    s.expect(&[&hdr(0xdead)], unspec, "unknown command");
    s.expect(
        &[&hdr(t::UPDATE_CURSOR)],
        unspec,
        "a cursor command on the control queue",
    );
    // Display info needs 408 bytes; 24 carry the error.
    s.expect(
        &[&hdr(t::GET_DISPLAY_INFO)],
        unspec,
        "response buffer too small",
    );
    // No room for any answer: used, with nothing written.
    let (len, _) = s
        .gpu
        .vmm
        .request(0, &[&fenced(flush(1, [0, 0, 8, 8]), 5)], &[8]);
    assert_eq!(len, 0);
    // A request split anywhere across descriptors is fine.
    s.gpu.ok(&[&scanout[..5], &scanout[5..27], &scanout[27..]]);
    // Unknown and truncated cursor commands are dropped.
    s.gpu.cursor(&hdr(0x0399));
    s.gpu
        .cursor(&cursor_cmd(t::MOVE_CURSOR, 1, 1, 0, (0, 0))[..40]);
    s.still_draws();
    s.gpu.vmm.disconnect();
    s.daemon.stop();
}

/// After the old VMM is gone: the new connection's device has no resources, the canonical
/// surface was reset, and the new guest's scanout re-creates it.
fn next_vmm_gets_a_fresh_device(daemon: &GpuDaemon, flavor: Flavor) {
    let mut gpu = daemon.connect(flavor);
    daemon.wait_no_primary();
    assert_eq!(gpu.probe(), (W, H));
    assert_eq!(
        gpu.status(&[&transfer(1, [0, 0, 8, 8], 0)]),
        t::RESP_ERR_INVALID_RESOURCE_ID,
        "the old connection's resource is gone"
    );
    let mut fb = GuestFb::new(&mut gpu.vmm, 1, 128, 96);
    fb.draw(&gpu.vmm, fb.rect(), pixel(42));
    gpu.bring_up(&fb);
    daemon.wait_primary(128, 96, &fb.pixels);
    gpu.vmm.disconnect();
}

#[test]
fn vmm_dropped_after_a_kick_leaves_a_fresh_device() {
    for flavor in [Flavor::CloudHypervisor, Flavor::Qemu] {
        let mut s = Session::start(flavor);
        s.fb.draw(&s.gpu.vmm, [0, 0, 64, 64], pixel(7));
        s.gpu
            .vmm
            .post(0, &[&transfer(1, [0, 0, 64, 64], 0)], &[HDR]);
        s.gpu
            .vmm
            .post(0, &[&fenced(flush(1, [0, 0, 64, 64]), 9)], &[HDR]);
        s.gpu.vmm.kick(0);
        s.gpu.vmm.disconnect();
        next_vmm_gets_a_fresh_device(&s.daemon, flavor);
        s.daemon.stop();
    }
}

#[test]
fn vmm_dropped_mid_message_leaves_a_fresh_device() {
    let s = Session::start(Flavor::Qemu);
    // SET_VRING_BASE (10) announcing an 8-byte payload, of which 3 bytes arrive.
    let mut message = Vec::new();
    le(&mut message, &[10, 1, 8]);
    message.extend_from_slice(&[1, 2, 3]);
    s.gpu.vmm.raw_socket().write_all(&message).unwrap();
    s.gpu.vmm.disconnect();
    next_vmm_gets_a_fresh_device(&s.daemon, Flavor::CloudHypervisor);
    // Half a header on a brand-new connection, then gone.
    let mut raw = support::connect_raw(&s.daemon.path);
    raw.write_all(&[1, 0, 0, 0, 1]).unwrap();
    drop(raw);
    next_vmm_gets_a_fresh_device(&s.daemon, Flavor::Qemu);
    s.daemon.stop();
}
