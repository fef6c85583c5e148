//! Sessions: one per client, created by its main channel and joined by its other channels
//! through the session id (brief §1.7); the registry is also the link policy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::link::LinkPolicy;
use super::wire::{
    Caps, ChannelId, ChannelType, DisplayCap, InputsCap, LinkMess, MainCap, MouseMode, SpiceLinkErr,
};

/// The channels a session offers, in CHANNELS_LIST order (main is the one already open).
pub const SESSION_CHANNELS: [ChannelId; 3] = [
    ChannelId {
        channel_type: ChannelType::DISPLAY,
        channel_id: 0,
    },
    ChannelId {
        channel_type: ChannelType::INPUTS,
        channel_id: 0,
    },
    ChannelId {
        channel_type: ChannelType::CURSOR,
        channel_id: 0,
    },
];

/// Channel connections one client uses: main plus [`SESSION_CHANNELS`].
pub const CHANNELS_PER_SESSION: usize = 1 + SESSION_CHANNELS.len();

/// One client.
#[derive(Debug)]
pub struct Session {
    id: u32,
    /// The mouse mode the client asked for; a `Mutex` only for the rare request.
    mouse_mode: Mutex<MouseMode>,
    /// Flips to `true` when the main channel ends: the other channels close with it, as
    /// spice-server disconnects the whole client.
    closed: watch::Sender<bool>,
}

impl Session {
    /// The session id clients link their other channels with.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The current mouse mode.
    pub fn mouse_mode(&self) -> MouseMode {
        *self
            .mouse_mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the mouse mode.
    pub fn set_mouse_mode(&self, mode: MouseMode) {
        *self
            .mouse_mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Resolves when the session is closed.
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// All live sessions.
#[derive(Debug)]
pub struct Sessions {
    /// Held for a lookup or an insert, never across an `.await`.
    map: Mutex<HashMap<u32, Arc<Session>>>,
    max: usize,
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The client limit is reached.
    #[error("The server already has its maximum of {0} clients")]
    Full(usize),
    /// The OS random generator failed.
    #[error("The OS random generator failed")]
    Random,
}

impl Sessions {
    /// A registry for at most `max` clients.
    pub fn new(max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Session>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a session with a random, non-zero, unused id (spice: reds.cpp
    /// `reds_handle_main_link`).
    pub fn create(&self) -> Result<Arc<Session>, SessionError> {
        let mut map = self.lock();
        if map.len() >= self.max {
            return Err(SessionError::Full(self.max));
        }
        let id = loop {
            let id = getrandom::u32().map_err(|_| SessionError::Random)?;
            if id != 0 && !map.contains_key(&id) {
                break id;
            }
        };
        let session = Arc::new(Session {
            id,
            mouse_mode: Mutex::new(MouseMode::CLIENT),
            closed: watch::channel(false).0,
        });
        map.insert(id, Arc::clone(&session));
        Ok(session)
    }

    /// The live session `id`.
    pub fn get(&self, id: u32) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// Ends session `id` and tells its channels.
    pub fn remove(&self, id: u32) {
        if let Some(session) = self.lock().remove(&id) {
            session.closed.send_replace(true);
        }
    }

    /// Live sessions.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Ends every session.
    pub fn close_all(&self) {
        for (_, session) in self.lock().drain() {
            session.closed.send_replace(true);
        }
    }
}

impl LinkPolicy for Sessions {
    fn channel_caps(&self, channel_type: ChannelType, channel_id: u8) -> Option<Caps> {
        if channel_id != 0 {
            return None;
        }
        match channel_type {
            // AGENT_CONNECTED_TOKENS: we announce the (pseudo-)agent in INIT already;
            // NAME_AND_UUID obliges nothing. The recommended 0x06 (brief §1.4).
            ChannelType::MAIN => Some(
                Caps::empty()
                    .with(MainCap::NAME_AND_UUID)
                    .with(MainCap::AGENT_CONNECTED_TOKENS),
            ),
            // MONITORS_CONFIG: we always send one (brief §7.8).
            ChannelType::DISPLAY => Some(Caps::empty().with(DisplayCap::MONITORS_CONFIG)),
            ChannelType::INPUTS => Some(Caps::empty().with(InputsCap::KEY_SCANCODE)),
            ChannelType::CURSOR => Some(Caps::empty()),
            _ => None,
        }
    }

    fn admit(&self, link: &LinkMess) -> Result<(), SpiceLinkErr> {
        if link.channel_type == ChannelType::MAIN {
            // A main link with an id we do not know is a new session (no migration: brief
            // §1.7 item 4). Refused here when full, so the client hears why; `create`
            // checks again for links racing to the last place.
            if self.count() >= self.max {
                return Err(SpiceLinkErr::ERROR);
            }
            return Ok(());
        }
        match self.get(link.connection_id) {
            Some(_) => Ok(()),
            None => Err(SpiceLinkErr::BAD_CONNECTION_ID),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_non_zero_and_capped() {
        let s = Sessions::new(3);
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        let _c = s.create().unwrap();
        assert_ne!(a.id(), 0);
        assert_ne!(a.id(), b.id());
        assert_eq!(s.create().unwrap_err(), SessionError::Full(3));
        let mut closed = a.closed();
        s.remove(a.id());
        assert!(*closed.borrow_and_update());
        assert_eq!(s.count(), 2);
        assert!(s.create().is_ok());
    }
}
