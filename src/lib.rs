//! vhost-user-spice: a vhost-user virtio-gpu (2D) and virtio-input backend that emulates a QXL
//! device internally and serves the VM's screen to many SPICE clients at once.
//!
//! # Layout
//! - [`config`]: command line (QEMU backend program conventions) and the daemon's settings.
//! - [`virtio`]: the guest-facing vhost-user devices; the QXL *producer*.
//! - [`display`]: the display worker; the QXL *consumer*, owner of the canonical screen.
//! - [`spice`]: the SPICE server (per-client sessions and pipes).
//! - [`spice_setup`]: the SPICE listeners and TLS files from [`config`].
//! - [`guest`]: the traits through which the network side acts on the guest.
//! - [`systemd`]: socket activation, service notifications, the watchdog.
//! - [`logging`]: stderr, or the journal when stderr is thrown away (under libvirt).
//! - [`workload`]: synthetic guest workloads for benchmarks (ports of the kit's spice-ref-server).
//!
//! Layering (see DESIGN.md): `virtio` → `qxl`, `display` → `qxl`, `spice` → `display` and
//! `guest`; `virtio` implements `guest`. Never `spice` → `virtio`, `virtio` → `spice`,
//! `display` → `spice`/`virtio`.

pub mod alloc_tuning;
pub mod app;
pub mod config;
pub mod demo;
pub mod display;
pub mod guest;
pub mod logging;
pub mod spice;
pub mod spice_setup;
pub mod systemd;
pub mod virtio;
pub mod workload;
