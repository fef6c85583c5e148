//! Where the daemon's log goes: stderr, unless stderr is thrown away, then the systemd journal.
//!
//! Under systemd the unit's stderr already is the journal (`JOURNAL_STREAM`), and by hand it is
//! the terminal. libvirt, though, starts a vhost-user backend with stdin, stdout and stderr on
//! `/dev/null` (docs/libvirt.md): everything the daemon said, start-up errors included, was lost
//! and the operator saw only libvirt's "Could not get process id of vhost-user-gpu". There the
//! log goes to journald's native socket, tagged `vhost-user-spice`, so
//! `journalctl -t vhost-user-spice` shows it.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// `SYSLOG_IDENTIFIER=` of journal entries: what `journalctl -t` selects.
pub const SYSLOG_IDENTIFIER: &str = "vhost-user-spice";

/// Whether anything written to this process's stderr is lost: it is closed or `/dev/null`.
pub fn stderr_discarded() -> bool {
    match is_dev_null(&io::stderr()) {
        Ok(null) => null,
        Err(e) => e.raw_os_error() == Some(libc::EBADF),
    }
}

/// Whether `fd` is the null device (character device 1:3 on Linux).
fn is_dev_null(fd: &impl AsFd) -> io::Result<bool> {
    let file = fd.as_fd().try_clone_to_owned().map(std::fs::File::from)?;
    let meta = file.metadata()?;
    Ok(meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3))
}

/// Installs the global subscriber with `filter`: the journal when stderr is thrown away and
/// journald answers, else stderr. A second call changes nothing.
pub fn init(filter: EnvFilter) {
    let journal = stderr_discarded()
        .then(tracing_journald::layer)
        .and_then(Result::ok);
    // `try_init` fails only when a subscriber is already installed: then that one stays.
    match journal {
        Some(journal) => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journal.with_syslog_identifier(SYSLOG_IDENTIFIER.to_string()))
                .try_init();
        }
        None => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(io::stderr)
                .try_init();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_device_is_recognised_and_other_files_are_not() {
        let null = std::fs::File::open("/dev/null").unwrap();
        assert!(is_dev_null(&null).unwrap());
        let zero = std::fs::File::open("/dev/zero").unwrap();
        assert!(!is_dev_null(&zero).unwrap());
        let (reader, _writer) = std::io::pipe().unwrap();
        assert!(!is_dev_null(&reader).unwrap());
        let file = tempfile::tempfile().unwrap();
        assert!(!is_dev_null(&file).unwrap());
    }
}
