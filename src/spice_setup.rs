//! Maps the validated SPICE settings ([`config::SpiceOptions`]) onto the SPICE server's
//! listeners and TLS files, so that `spice` stays free of `config` and `systemd`.
//!
//! `spice-tls-port`, the activated `spice-tls` socket → TLS listeners; `spice-port`,
//! `spice-unix`, the activated `spice` socket → plaintext ones. With no plaintext listener at
//! all (`--tls-only`, or `--spice-port off` with TLS) every channel is also marked secure, so a
//! plaintext link could only ever be answered `NEED_SECURED`.
#![forbid(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use crate::config::{Endpoint, SpiceOptions};
use crate::spice::{ListenAt, ListenerSpec, SecureChannels, SpiceConfig, TlsSettings};
use crate::systemd::{adopt_listener, InheritedListener};

/// The listener part of a [`SpiceConfig`].
#[derive(Debug)]
pub struct SpiceListeners {
    pub listeners: Vec<ListenerSpec>,
    pub tls: Option<TlsSettings>,
    pub secure_channels: SecureChannels,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("Cannot take over the socket-activated SPICE descriptor {fd}")]
    Adopt {
        fd: RawFd,
        #[source]
        source: io::Error,
    },
}

/// The listeners of `options`. Takes ownership of activated descriptors
/// ([`Endpoint::Fd`]): call it once per configuration.
pub fn listeners_from_config(options: &SpiceOptions) -> Result<SpiceListeners, SetupError> {
    let mut listeners = Vec::with_capacity(options.plain.len() + options.tls_listeners.len());
    for (endpoints, tls) in [(&options.plain, false), (&options.tls_listeners, true)] {
        for endpoint in endpoints {
            let at = match endpoint {
                Endpoint::Tcp(addr) => ListenAt::Bind(*addr),
                Endpoint::Unix(path) => ListenAt::Unix(path.clone()),
                Endpoint::Fd { fd, .. } => match adopt_listener(*fd) {
                    Ok(InheritedListener::Tcp(l)) => ListenAt::Tcp(l),
                    Ok(InheritedListener::Unix(l)) => ListenAt::UnixStd(l),
                    Err(source) => return Err(SetupError::Adopt { fd: *fd, source }),
                },
            };
            listeners.push(ListenerSpec { at, tls });
        }
    }
    let tls = options.tls.as_ref().map(|files| TlsSettings {
        cert: files.cert.clone(),
        key: files.key.clone(),
        client_ca: files.client_ca.clone(),
    });
    let secure_channels = if options.plain.is_empty() {
        SecureChannels::ALL
    } else {
        SecureChannels::NONE
    };
    Ok(SpiceListeners {
        listeners,
        tls,
        secure_channels,
    })
}

/// Sets `config`'s listeners, TLS files and secure channels from `options` (see
/// [`listeners_from_config`]).
pub fn apply(options: &SpiceOptions, config: &mut SpiceConfig) -> Result<(), SetupError> {
    let l = listeners_from_config(options)?;
    config.listeners = l.listeners;
    config.tls = l.tls;
    config.secure_channels = l.secure_channels;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use super::*;
    use crate::config::{InputPolicy, TicketSetting, TlsFiles};

    fn options(plain: Vec<Endpoint>, tls_listeners: Vec<Endpoint>) -> SpiceOptions {
        SpiceOptions {
            plain,
            tls: (!tls_listeners.is_empty()).then(|| TlsFiles {
                cert: PathBuf::from("/c.pem"),
                key: PathBuf::from("/k.pem"),
                client_ca: None,
            }),
            tls_listeners,
            ticketing: TicketSetting::Disabled,
            max_clients: 4,
            input: InputPolicy::All,
            image_compression: Default::default(),
        }
    }

    #[test]
    fn plain_and_tls_endpoints_map_in_order() {
        let a: SocketAddr = "127.0.0.1:5900".parse().unwrap();
        let b: SocketAddr = "0.0.0.0:5901".parse().unwrap();
        let l = listeners_from_config(&options(
            vec![Endpoint::Tcp(a), Endpoint::Unix("/run/s.sock".into())],
            vec![Endpoint::Tcp(b)],
        ))
        .unwrap();
        assert_eq!(l.listeners.len(), 3);
        assert!(
            matches!(&l.listeners[0], ListenerSpec { at: ListenAt::Bind(x), tls: false } if *x == a)
        );
        assert!(matches!(
            &l.listeners[1],
            ListenerSpec {
                at: ListenAt::Unix(_),
                tls: false
            }
        ));
        assert!(
            matches!(&l.listeners[2], ListenerSpec { at: ListenAt::Bind(x), tls: true } if *x == b)
        );
        assert_eq!(l.tls.unwrap().cert, PathBuf::from("/c.pem"));
        assert_eq!(l.secure_channels, SecureChannels::NONE);
    }

    #[test]
    fn tls_only_secures_every_channel() {
        let b: SocketAddr = "0.0.0.0:5901".parse().unwrap();
        let l = listeners_from_config(&options(vec![], vec![Endpoint::Tcp(b)])).unwrap();
        assert_eq!(l.secure_channels, SecureChannels::ALL);
    }

    #[test]
    fn activated_descriptors_are_adopted() {
        let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_l.local_addr().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(std_l);
        let l = listeners_from_config(&options(
            vec![],
            vec![Endpoint::Fd {
                fd,
                local: Some(addr),
            }],
        ))
        .unwrap();
        match &l.listeners[0] {
            ListenerSpec {
                at: ListenAt::Tcp(t),
                tls: true,
            } => assert_eq!(t.local_addr().unwrap(), addr),
            other => panic!("{other:?}"),
        }
        let bad = listeners_from_config(&options(
            vec![],
            vec![Endpoint::Fd {
                fd: -1,
                local: None,
            }],
        ));
        assert!(matches!(bad, Err(SetupError::Adopt { fd: -1, .. })));
    }
}
