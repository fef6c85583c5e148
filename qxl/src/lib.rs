//! The QXL device model, as spice-server's worker sees it: ABI layouts, a shared-memory
//! region with ROM, RAM and VRAM, memslots, rings, a producer and a consumer. No I/O, no
//! async, no SPICE, no virtio.
