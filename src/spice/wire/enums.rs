//! Wire enums as integer newtypes with named constants, and the ones shared by every channel.
//!
//! As rustls `msgs/enums.rs`: an unknown value still decodes (the channel decides what to do
//! with it) and `Debug` prints the constant's name, or the number in hex.

use super::codec::{Reader, WireError};

/// An unsigned integer that a wire enum is carried in.
pub trait WireInt: Copy + Sized {
    /// Reads it little-endian.
    fn read_le(r: &mut Reader<'_>, what: &'static str) -> Result<Self, WireError>;
    /// Writes it little-endian.
    fn write_le(self, out: &mut Vec<u8>);
}

impl WireInt for u8 {
    fn read_le(r: &mut Reader<'_>, what: &'static str) -> Result<Self, WireError> {
        r.u8(what)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl WireInt for u16 {
    fn read_le(r: &mut Reader<'_>, what: &'static str) -> Result<Self, WireError> {
        r.u16(what)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl WireInt for u32 {
    fn read_le(r: &mut Reader<'_>, what: &'static str) -> Result<Self, WireError> {
        r.u32(what)
    }
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Declares `struct Name(pub uN)` with named constants, `name()`, a `Debug` that prints the
/// name, and its `Codec` impl.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($int:ty) {
            $( $(#[$cmeta:meta])* $konst:ident = $val:expr ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        $vis struct $name(pub $int);

        impl $name {
            $( $(#[$cmeta])* pub const $konst: Self = Self($val); )*

            /// The constant's name, if this value has one.
            pub fn name(self) -> Option<&'static str> {
                $( if self == Self::$konst { return Some(stringify!($konst)); } )*
                None
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({:#x})", stringify!($name), self.0),
                }
            }
        }

        impl<'a> $crate::spice::wire::codec::Codec<'a> for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                $crate::spice::wire::enums::WireInt::write_le(self.0, out);
            }
            fn read(
                r: &mut $crate::spice::wire::codec::Reader<'a>,
            ) -> Result<Self, $crate::spice::wire::codec::WireError> {
                <$int as $crate::spice::wire::enums::WireInt>::read_le(r, stringify!($name)).map(Self)
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// spice-protocol enums.h: `SpiceChannelType` (u8 in `SpiceLinkMess` and CHANNELS_LIST).
    #[doc(alias = "SPICE_CHANNEL_MAIN")]
    pub struct ChannelType(u8) {
        /// The session's control channel; linked first.
        MAIN = 1,
        /// Surfaces and drawing.
        DISPLAY = 2,
        /// Keyboard and mouse from the client.
        INPUTS = 3,
        /// The pointer shape and position.
        CURSOR = 4,
        /// Audio to the client.
        PLAYBACK = 5,
        /// Audio from the client.
        RECORD = 6,
        /// Obsolete.
        TUNNEL = 7,
        /// Smartcard passthrough.
        SMARTCARD = 8,
        /// USB redirection.
        USBREDIR = 9,
        /// Named character ports.
        PORT = 10,
        /// Folder sharing.
        WEBDAV = 11,
    }
}

impl ChannelType {
    /// Whether spice-protocol defines this type.
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

wire_enum! {
    /// spice-protocol protocol.h: `SpiceLinkErr`, the u32 in `SpiceLinkReply.error`, in the
    /// 4-byte link result and in DISCONNECTING (brief §1.6).
    #[doc(alias = "SPICE_LINK_ERR_OK")]
    pub struct SpiceLinkErr(u32) {
        /// Success.
        OK = 0,
        /// Unspecified failure.
        ERROR = 1,
        /// The first four bytes were not "REDQ".
        INVALID_MAGIC = 2,
        /// Bad sizes or capability counts, or an unknown auth mechanism.
        INVALID_DATA = 3,
        /// Major version is not 2.
        VERSION_MISMATCH = 4,
        /// Use the TLS port (spice-gtk reconnects there).
        NEED_SECURED = 5,
        /// Use the plain port.
        NEED_UNSECURED = 6,
        /// Bad, expired or missing ticket.
        PERMISSION_DENIED = 7,
        /// A non-main channel named a session we do not know.
        BAD_CONNECTION_ID = 8,
        /// The (type, id) asked for is not served.
        CHANNEL_NOT_AVAILABLE = 9,
    }
}

#[cfg(test)]
// Tests index freely: a panic there is a failed test, not a crash.
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::spice::wire::Codec;

    #[test]
    fn debug_prints_name_or_hex() {
        assert_eq!(format!("{:?}", ChannelType::CURSOR), "CURSOR");
        assert_eq!(format!("{:?}", ChannelType(0x42)), "ChannelType(0x42)");
        assert_eq!(format!("{:?}", SpiceLinkErr(7)), "PERMISSION_DENIED");
    }

    #[test]
    fn unknown_values_decode() {
        assert_eq!(
            SpiceLinkErr::read_bytes(&[99, 0, 0, 0]),
            Ok(SpiceLinkErr(99))
        );
        assert_eq!(ChannelType::read_bytes(&[200]), Ok(ChannelType(200)));
        assert!(!ChannelType(200).is_known());
    }
}
