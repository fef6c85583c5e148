//! The start-up sequences of the two VMMs [`TestVmm`] imitates, message by message
//! (`shared/research/vmm-frontends.md` §3.3 for QEMU 10 `vhost-user-gpu-pci`, §4.3 for
//! cloud-hypervisor v53 `--generic-vhost-user`).

use vhost::vhost_user::message::{
    VhostUserHeaderFlag, VhostUserProtocolFeatures, VhostUserVirtioFeatures,
};
use vhost::vhost_user::VhostUserFrontend;
use vhost::VhostBackend;
use virtio_bindings::virtio_config::VIRTIO_F_RING_RESET;

use super::vmm::TestVmm;

/// Protocol features cloud-hypervisor v53 offers (`vmm-frontends.md` §4.3: 0x8922b).
const CH_PROTOCOL_FEATURES: u64 = 0x8922b;
/// Protocol features QEMU 10 acked to its reference GPU backend (`vmm-frontends.md` §3.3: 0x8f2b).
const QEMU_PROTOCOL_FEATURES: u64 = 0x8f2b;

impl TestVmm {
    /// cloud-hypervisor v53: VM creation, the guest's probe reads, then activation at DRIVER_OK.
    pub(super) fn cloud_hypervisor_start(&mut self) {
        let f = &mut self.frontend;
        f.set_owner().expect("SET_OWNER");
        let offered = f.get_features().expect("GET_FEATURES");
        self.negotiate_protocol(offered, CH_PROTOCOL_FEATURES);
        if self
            .acked_protocol
            .contains(VhostUserProtocolFeatures::REPLY_ACK)
        {
            self.frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        self.check_queue_num();
        // Linux's virtio-gpu probe reads num_scanouts, num_capsets, then events_read.
        for offset in [8, 12, 0] {
            if offset + 4 <= self.options.config_size {
                self.get_config(offset, 4);
            }
        }
        self.acked_features = self.guest_features(offered);
        self.frontend
            .set_features(self.acked_features)
            .expect("SET_FEATURES");
        self.set_mem_table();
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_num(q, self.queues[q].size)
                .expect("SET_VRING_NUM");
        }
        for q in 0..self.queues.len() {
            self.set_vring_addr(q);
            self.frontend.set_vring_base(q, 0).expect("SET_VRING_BASE");
            self.frontend
                .set_vring_call(q, &self.queues[q].call)
                .expect("SET_VRING_CALL");
            self.frontend
                .set_vring_kick(q, &self.queues[q].kick)
                .expect("SET_VRING_KICK");
        }
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_enable(q, true)
                .expect("SET_VRING_ENABLE");
        }
        self.set_backend_req_fd();
    }

    /// QEMU 10 `vhost-user-gpu-pci`: realize, the guest's whole-config reads, then DRIVER_OK.
    pub(super) fn qemu_start(&mut self) {
        let offered = self.frontend.get_features().expect("GET_FEATURES");
        self.negotiate_protocol(offered, QEMU_PROTOCOL_FEATURES);
        self.check_queue_num();
        if self
            .acked_protocol
            .contains(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS)
        {
            self.frontend
                .get_max_mem_slots()
                .expect("GET_MAX_MEM_SLOTS");
        }
        self.with_need_reply(|vmm| vmm.set_backend_req_fd());
        self.frontend.set_owner().expect("SET_OWNER");
        self.frontend.get_features().expect("GET_FEATURES");
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_call(q, &self.queues[q].call)
                .expect("SET_VRING_CALL");
            self.frontend
                .set_vring_err(q, &self.queues[q].call)
                .expect("SET_VRING_ERR");
        }
        self.get_config(0, self.options.config_size);
        // DRIVER_OK.
        if self.options.gpu_socket {
            self.send_gpu_set_socket();
        }
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_call(q, &self.queues[q].call)
                .expect("SET_VRING_CALL");
        }
        // QEMU's PCI layer offers queue_reset to the guest by itself and passes the bit on.
        self.acked_features = self.guest_features(offered) | (1 << VIRTIO_F_RING_RESET);
        self.frontend
            .set_features(self.acked_features)
            .expect("SET_FEATURES (QEMU adds RING_RESET, bit 40: the backend must offer it)");
        if self
            .acked_protocol
            .contains(VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS)
        {
            let region = self.ram_region();
            self.with_need_reply(|vmm| {
                vmm.frontend.add_mem_region(&region).expect("ADD_MEM_REG");
            });
        } else {
            self.set_mem_table();
        }
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_num(q, self.queues[q].size)
                .expect("SET_VRING_NUM");
            self.frontend.set_vring_base(q, 0).expect("SET_VRING_BASE");
            self.set_vring_addr(q);
            self.frontend
                .set_vring_kick(q, &self.queues[q].kick)
                .expect("SET_VRING_KICK");
        }
        self.with_need_reply(|vmm| {
            for q in 0..vmm.queues.len() {
                vmm.frontend
                    .set_vring_enable(q, true)
                    .expect("SET_VRING_ENABLE");
            }
        });
        for q in 0..self.queues.len() {
            self.frontend
                .set_vring_call(q, &self.queues[q].call)
                .expect("SET_VRING_CALL");
        }
    }

    fn negotiate_protocol(&mut self, offered: u64, vmm_supported: u64) {
        assert!(
            offered & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits() != 0,
            "the backend offers VHOST_USER_F_PROTOCOL_FEATURES"
        );
        // vhost's Frontend accepts protocol features only after this bit was acked (see //!).
        self.frontend
            .set_features(VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits())
            .expect("SET_FEATURES(PROTOCOL_FEATURES)");
        let backend = self
            .frontend
            .get_protocol_features()
            .expect("GET_PROTOCOL_FEATURES");
        let mut acked = backend & VhostUserProtocolFeatures::from_bits_truncate(vmm_supported);
        if !self.options.reply_ack {
            acked.remove(VhostUserProtocolFeatures::REPLY_ACK);
        }
        self.frontend
            .set_protocol_features(acked)
            .expect("SET_PROTOCOL_FEATURES");
        self.acked_protocol = acked;
    }

    fn check_queue_num(&mut self) {
        if self.acked_protocol.contains(VhostUserProtocolFeatures::MQ) {
            let n = self.frontend.get_queue_num().expect("GET_QUEUE_NUM");
            assert!(n >= self.queues.len() as u64, "backend has {n} queues");
        }
    }

    fn guest_features(&self, offered: u64) -> u64 {
        (self.options.features & offered) | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn with_need_reply(&mut self, f: impl FnOnce(&mut Self)) {
        let reply_ack = self
            .acked_protocol
            .contains(VhostUserProtocolFeatures::REPLY_ACK);
        if reply_ack {
            self.frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
        f(self);
        if reply_ack {
            self.frontend.set_hdr_flags(VhostUserHeaderFlag::empty());
        }
    }
}
