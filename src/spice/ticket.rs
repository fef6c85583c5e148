//! Ticket authentication: the server's RSA-1024 key, decrypting the client's 128-byte
//! RSA-OAEP(SHA-1) ticket and checking it against the password and its expiry (brief §1.5).

use std::fmt;
use std::time::Instant;

use rsa::pkcs8::EncodePublicKey;
use sha1::{Digest, Sha1};

use super::wire::{EncryptedTicket, SPICE_MAX_PASSWORD_LENGTH, SPICE_TICKET_PUBKEY_BYTES};

/// spice-protocol protocol.h: `SPICE_TICKET_KEY_PAIR_LENGTH`. Clients only accept a key whose
/// DER fills the 162-byte `pub_key` field, which is exactly a 1024-bit modulus.
const KEY_BITS: usize = 1024;

/// Why a ticket or the key failed. Every ticket failure is answered `PERMISSION_DENIED`.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Generating the server's RSA key failed (the OS RNG failed).
    #[error("Failed to generate the server's RSA key")]
    KeyGeneration(#[source] rsa::Error),
    /// The public key did not encode to 162 DER bytes.
    #[error("The server's public key encodes to {0} DER bytes, not 162")]
    KeyEncoding(usize),
    /// Client's ticket is not a valid RSA-OAEP(SHA-1) block for our key. spice-server
    /// refuses these even with ticketing disabled.
    #[error("Client's ticket does not decrypt with the server key")]
    Undecryptable,
    /// Ticketing is on and no password is set: everybody is refused, as spice-server does.
    #[error("Ticketing is enabled but no password is set")]
    NoPasswordSet,
    /// The password's lifetime has ended.
    #[error("Client's ticket has expired")]
    Expired,
    /// Client sent the wrong password.
    #[error("Client sent a wrong password")]
    WrongPassword,
}

/// A password, redacted in `Debug` and overwritten on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the password bytes (without the NUL the client adds).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Whether the password is empty (which refuses everybody).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

/// The password policy, as spice-server's `spice_server_set_ticket` / `set_noauth` keep it.
#[derive(Debug, Clone)]
pub enum Ticketing {
    /// `disable-ticketing`: any ticket that decrypts is accepted (the client still sends one).
    Disabled,
    /// A password, valid until `expires` if set.
    Password {
        /// The password; empty refuses everybody.
        secret: Secret,
        /// After this instant the password is refused.
        expires: Option<Instant>,
    },
}

impl Ticketing {
    /// Decrypts `ticket` and checks it against the policy at `now`.
    pub fn check(
        &self,
        key: &ServerKey,
        ticket: &EncryptedTicket,
        now: Instant,
    ) -> Result<(), TicketError> {
        // Decrypt first in every mode: spice-server refuses an undecryptable ticket even with
        // ticketing off (`reds_handle_ticket`).
        let plain = key.decrypt(ticket)?;
        match self {
            Self::Disabled => Ok(()),
            Self::Password { secret, .. } if secret.is_empty() => Err(TicketError::NoPasswordSet),
            Self::Password {
                expires: Some(at), ..
            } if now >= *at => Err(TicketError::Expired),
            Self::Password { secret, .. } => {
                if constant_time_eq(password_part(&plain.0), &secret.0) {
                    Ok(())
                } else {
                    Err(TicketError::WrongPassword)
                }
            }
        }
    }
}

/// The password is everything before the first NUL (spice-gtk and spice-html5 encrypt
/// password + "\0"); a ticket without a NUL is taken whole, capped at the protocol maximum.
fn password_part(plain: &[u8]) -> &[u8] {
    let end = plain
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(plain.len())
        .min(SPICE_MAX_PASSWORD_LENGTH);
    plain.get(..end).unwrap_or_default()
}

/// Compares SHA-1 digests of both sides without early exit, so neither the content nor the
/// length of the password shows in the time taken.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (da, db) = (Sha1::digest(a), Sha1::digest(b));
    let diff = da
        .iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

/// The server's RSA-1024 key pair. spice-server makes one per link; clients accept any valid
/// key, so one per server (rotated by making a new one) is enough (brief §1.5 step 1).
pub struct ServerKey {
    private: rsa::PrivateKey,
    public_der: [u8; SPICE_TICKET_PUBKEY_BYTES],
}

impl fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKey(..)")
    }
}

impl ServerKey {
    /// Generates a fresh key from the OS RNG (about 40 ms in a debug build).
    pub fn generate() -> Result<Self, TicketError> {
        let private = rsa::PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
            .map_err(TicketError::KeyGeneration)?;
        let der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| TicketError::KeyEncoding(0))?;
        let public_der = der
            .as_bytes()
            .try_into()
            .map_err(|_| TicketError::KeyEncoding(der.as_bytes().len()))?;
        Ok(Self {
            private,
            public_der,
        })
    }

    /// The DER SubjectPublicKeyInfo for `SpiceLinkReply.pub_key`.
    pub fn public_der(&self) -> &[u8; SPICE_TICKET_PUBKEY_BYTES] {
        &self.public_der
    }

    /// The public half, for tests and tools that play the client.
    pub fn public_key(&self) -> rsa::PublicKey {
        self.private.to_public_key()
    }

    /// RSA-OAEP with SHA-1 and MGF1-SHA-1, empty label: OpenSSL's `RSA_PKCS1_OAEP_PADDING`
    /// as the clients use it. rsa 0.10 blinds the private operation with the OS RNG.
    fn decrypt(&self, ticket: &EncryptedTicket) -> Result<Secret, TicketError> {
        self.private
            .oaep_decrypt::<Sha1>(&ticket.0)
            .map(Secret)
            .map_err(|_| TicketError::Undecryptable)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::*;

    /// One key per test process: generation is the slow part.
    pub(crate) fn test_key() -> &'static ServerKey {
        static KEY: OnceLock<ServerKey> = OnceLock::new();
        KEY.get_or_init(|| ServerKey::generate().expect("the OS RNG works in tests"))
    }

    /// What a client sends for `password`.
    pub(crate) fn client_ticket(password: &[u8]) -> EncryptedTicket {
        let mut plain = password.to_vec();
        plain.push(0);
        let ct = test_key()
            .public_key()
            .oaep_encrypt::<Sha1>(&plain)
            .unwrap();
        EncryptedTicket(ct.try_into().unwrap())
    }

    fn password(p: &str, expires: Option<Instant>) -> Ticketing {
        Ticketing::Password {
            secret: Secret::new(p),
            expires,
        }
    }

    #[test]
    fn public_key_is_162_byte_spki_with_e_65537() {
        let der = test_key().public_der();
        assert_eq!(&der[..4], &[0x30, 0x81, 0x9f, 0x30]);
        assert_eq!(&der[157..], &[0x02, 0x03, 0x01, 0x00, 0x01]);
    }

    #[test]
    fn accepts_right_password() {
        let now = Instant::now();
        password("s3cret", None)
            .check(test_key(), &client_ticket(b"s3cret"), now)
            .unwrap();
    }

    #[test]
    fn rejects_wrong_password() {
        let r =
            password("s3cret", None).check(test_key(), &client_ticket(b"s3cre"), Instant::now());
        assert!(matches!(r, Err(TicketError::WrongPassword)));
    }

    #[test]
    fn rejects_expired_ticket() {
        let now = Instant::now();
        let t = password("pw", Some(now + Duration::from_secs(5)));
        t.check(test_key(), &client_ticket(b"pw"), now).unwrap();
        let r = t.check(
            test_key(),
            &client_ticket(b"pw"),
            now + Duration::from_secs(5),
        );
        assert!(matches!(r, Err(TicketError::Expired)));
    }

    #[test]
    fn rejects_everyone_without_password() {
        let r = password("", None).check(test_key(), &client_ticket(b""), Instant::now());
        assert!(matches!(r, Err(TicketError::NoPasswordSet)));
    }

    #[test]
    fn disabled_accepts_empty_ticket_but_not_garbage() {
        let t = Ticketing::Disabled;
        t.check(test_key(), &client_ticket(b""), Instant::now())
            .unwrap();
        let r = t.check(test_key(), &EncryptedTicket([0x42; 128]), Instant::now());
        assert!(matches!(r, Err(TicketError::Undecryptable)));
    }

    #[test]
    fn password_stops_at_nul() {
        assert_eq!(password_part(b"abc\0def"), b"abc");
        assert_eq!(password_part(b"abc"), b"abc");
        assert_eq!(password_part(&[b'x'; 90]).len(), SPICE_MAX_PASSWORD_LENGTH);
    }
}
