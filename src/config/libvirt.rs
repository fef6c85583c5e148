//! Which libvirt domain started this process, read from the pid file libvirt makes it inherit.
//!
//! libvirt starts a vhost-user GPU backend with nothing but `--fd=N`
//! (`libvirt/libvirt: src/qemu/qemu_vhost_user_gpu.c`, `qemuExtVhostUserGPUStart`): no name,
//! no UUID. It does set a pid file, `<stateDir>/<shortName>-<alias>-vhost-user-gpu.pid`, and
//! `virExec` (`src/util/vircommand.c`) writes and locks that file in the child before exec and
//! leaves the descriptor open ("pidfilefd is intentionally leaked"), so the process holds it.
//! `shortName` is `virDomainDefGetShortName`: `<domain id>-<first 20 characters of the name>`;
//! the alias is `video<N>` unless the XML gives a user alias (`ua-…`). Seen with libvirt 9.0
//! (Debian bookworm): `/run/libvirt/qemu/2-vm1-video0-vhost-user-gpu.pid` as descriptor 5.
//!
//! The descriptor stays open: libvirt checks the lock to know the backend is alive
//! (`virPidFileReadPathIfLocked`) and kills whatever the file names when the domain stops.
#![forbid(unsafe_code)]

use std::path::Path;

/// The pid file's name after the short name and alias (`qemuVhostUserGPUCreatePidFilename`).
const PIDFILE_SUFFIX: &str = "-vhost-user-gpu.pid";

/// libvirt's automatic alias of a video device (`qemuAssignDeviceVideoAlias`: `video%d`).
const AUTO_ALIAS_PREFIX: &str = "video";

/// The prefix every user-given alias must carry (`<alias name='ua-…'/>`, `docs/formatdomain.rst`).
const USER_ALIAS_MARK: &str = "-ua-";

/// Descriptors looked at: libvirt passes four or five (stdio, the socket, the pid file); a
/// process holding more than this many was not started by libvirt's `virExec`.
const MAX_INHERITED_FDS: usize = 1024;

/// The domain's name as libvirt wrote it into the pid file name of a backend it started:
/// `2-vm1-video0-vhost-user-gpu.pid` gives `vm1`. Names longer than 20 characters arrive cut
/// to their first 20. `None` for any other file name.
pub fn domain_from_pidfile_name(file_name: &str) -> Option<&str> {
    let rest = file_name.strip_suffix(PIDFILE_SUFFIX)?;
    let (id, rest) = rest.split_once('-')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name = match rest.rsplit_once('-') {
        Some((name, alias))
            if alias
                .strip_prefix(AUTO_ALIAS_PREFIX)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            name
        }
        // A user alias may itself contain '-'; the name is cut at the first "-ua-".
        _ => rest.split_once(USER_ALIAS_MARK)?.0,
    };
    (!name.is_empty()).then_some(name)
}

/// The domain named by a libvirt pid file among this process's open descriptors, if any. Call
/// it before opening files of our own (none would match, but it keeps the scan short).
pub fn inherited_domain() -> Option<String> {
    inherited_domain_in(Path::new("/proc/self/fd"))
}

fn inherited_domain_in(fd_dir: &Path) -> Option<String> {
    std::fs::read_dir(fd_dir)
        .ok()?
        .take(MAX_INHERITED_FDS)
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .find_map(|target| {
            let name = target.file_name()?.to_str()?;
            domain_from_pidfile_name(name).map(str::to_owned)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_domain_of_an_automatic_alias() {
        let name = domain_from_pidfile_name("2-vm1-video0-vhost-user-gpu.pid");
        assert_eq!(name, Some("vm1"));
        let name = domain_from_pidfile_name("117-web-front-2-video12-vhost-user-gpu.pid");
        assert_eq!(name, Some("web-front-2"));
    }

    #[test]
    fn reads_the_domain_of_a_user_alias() {
        let name = domain_from_pidfile_name("3-vm1-ua-spice-gpu-vhost-user-gpu.pid");
        assert_eq!(name, Some("vm1"));
    }

    #[test]
    fn rejects_other_file_names() {
        for name in [
            "vm1.pid",
            "2-vm1-video0-vhost-user-fs.pid",
            "x-vm1-video0-vhost-user-gpu.pid",
            "-vm1-video0-vhost-user-gpu.pid",
            "2-video0-vhost-user-gpu.pid",
            "2--video0-vhost-user-gpu.pid",
            "2-vm1-other-vhost-user-gpu.pid",
            "2-vm1-video-vhost-user-gpu.pid",
            "2-vm1-videoX-vhost-user-gpu.pid",
            "2-ua-x-vhost-user-gpu.pid",
        ] {
            assert_eq!(domain_from_pidfile_name(name), None, "{name}");
        }
    }

    #[test]
    fn finds_the_pid_file_among_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let fds = dir.path().join("fd");
        std::fs::create_dir(&fds).unwrap();
        std::os::unix::fs::symlink("/dev/null", fds.join("0")).unwrap();
        assert_eq!(inherited_domain_in(&fds), None);
        std::os::unix::fs::symlink(
            "/run/libvirt/qemu/2-vm1-video0-vhost-user-gpu.pid",
            fds.join("5"),
        )
        .unwrap();
        assert_eq!(inherited_domain_in(&fds).as_deref(), Some("vm1"));
        assert_eq!(inherited_domain_in(&dir.path().join("missing")), None);
    }

    #[test]
    fn this_test_process_was_not_started_by_libvirt() {
        assert_eq!(inherited_domain(), None);
    }
}
