//! virtio-gpu 2D (device id 16).
