//! Command line (QEMU vhost-user backend program conventions) and the daemon's settings.
#![forbid(unsafe_code)]
