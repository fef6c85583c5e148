//! Sessions: one per client, created by its main channel and joined by its other channels
//! through the session id (brief §1.7); the registry is also the link policy, decides whose
//! input reaches the guest (`--input`), and holds each client's statistics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

use super::encode_pool::EncodePool;
use super::image_cache::{ImageCache, DEFAULT_IMAGE_CACHE_BYTES};
use super::link::LinkPolicy;
use super::pipe::PipeStats;
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

/// What one client's display channel has done, for [`Sessions::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DisplayStats {
    /// The pipe's counters (images, squashed damage, encode-once cache hits…).
    pub pipe: PipeStats,
    /// The client gets LZ4 images where they pay.
    pub lz4: bool,
    /// The client gets QUIC images where LZ4 does not pay (else raw bitmaps).
    pub quic: bool,
    /// Bytes framed for the client and not yet written to its socket, when last sampled.
    pub pending_bytes: usize,
    /// The most bytes ever waiting for its socket.
    pub peak_pending_bytes: usize,
    /// Bytes framed for it so far.
    pub bytes_framed: u64,
}

/// One client as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStats {
    /// Its session id.
    pub session_id: u32,
    /// How long it has been connected.
    pub connected_for: Duration,
    /// Its keyboard and mouse reach the guest (the input policy allows them now).
    pub input_allowed: bool,
    /// Its display channel, once linked.
    pub display: Option<DisplayStats>,
}

/// Which clients' keyboard and mouse reach the guest (`--input`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InputPolicy {
    /// Every connected client.
    #[default]
    All,
    /// Only the longest-connected client; the others watch.
    First,
    /// Nobody: view only.
    None,
}

/// Who may type: the policy and, for [`InputPolicy::First`], the longest-connected session.
#[derive(Debug)]
struct InputGate {
    policy: InputPolicy,
    /// Id of the oldest live session (0: none; ids are never 0).
    first: AtomicU32,
}

/// One client.
#[derive(Debug)]
pub struct Session {
    id: u32,
    /// Creation order: the smallest live one is the "first" client.
    seq: u64,
    connected: Instant,
    gate: Arc<InputGate>,
    /// Shared by every session of the server.
    cache: Arc<ImageCache>,
    /// Shared by every session of the server.
    pool: Arc<EncodePool>,
    /// Written by the display channel after each batch; a `Mutex` for a short copy.
    display: Mutex<Option<DisplayStats>>,
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

    /// Whether this client's keyboard, mouse and layout requests reach the guest now.
    pub fn input_allowed(&self) -> bool {
        match self.gate.policy {
            InputPolicy::All => true,
            InputPolicy::None => false,
            InputPolicy::First => self.gate.first.load(Ordering::Acquire) == self.id,
        }
    }

    /// The input policy.
    pub fn input_policy(&self) -> InputPolicy {
        self.gate.policy
    }

    /// The server's encode-once image cache.
    pub fn image_cache(&self) -> &Arc<ImageCache> {
        &self.cache
    }

    /// The server's encode pool.
    pub fn encode_pool(&self) -> &Arc<EncodePool> {
        &self.pool
    }

    /// Records the display channel's counters.
    pub fn set_display_stats(&self, stats: DisplayStats) {
        *self.display.lock().unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    /// The client's statistics now.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            session_id: self.id,
            connected_for: self.connected.elapsed(),
            input_allowed: self.input_allowed(),
            display: *self.display.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// All live sessions.
#[derive(Debug)]
pub struct Sessions {
    /// Held for a lookup or an insert, never across an `.await`.
    map: Mutex<HashMap<u32, Arc<Session>>>,
    max: usize,
    gate: Arc<InputGate>,
    cache: Arc<ImageCache>,
    pool: Arc<EncodePool>,
    /// The next session's `seq`; only changed under `map`'s lock.
    next_seq: AtomicU64,
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
    /// A registry for at most `max` clients whose input reaches the guest as `input` says.
    pub fn new(max: usize, input: InputPolicy) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max,
            gate: Arc::new(InputGate {
                policy: input,
                first: AtomicU32::new(0),
            }),
            cache: Arc::new(ImageCache::new(DEFAULT_IMAGE_CACHE_BYTES)),
            pool: Arc::default(),
            next_seq: AtomicU64::new(0),
        }
    }

    /// The encode-once image cache the sessions share.
    pub fn image_cache(&self) -> &Arc<ImageCache> {
        &self.cache
    }

    /// Makes the oldest live session the "first" one (called under `map`'s lock).
    fn elect_first(&self, map: &HashMap<u32, Arc<Session>>) {
        let first = map.values().min_by_key(|s| s.seq).map_or(0, |s| s.id);
        let old = self.gate.first.swap(first, Ordering::AcqRel);
        if old != first && first != 0 && self.gate.policy == InputPolicy::First {
            info!(
                session = format!("{first:#x}"),
                "SPICE client now has the input"
            );
        }
    }

    /// Every live client's statistics, oldest first.
    pub fn stats(&self) -> Vec<ClientStats> {
        let mut sessions: Vec<Arc<Session>> = self.lock().values().cloned().collect();
        sessions.sort_by_key(|s| s.seq);
        sessions.iter().map(|s| s.stats()).collect()
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
            seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
            connected: Instant::now(),
            gate: Arc::clone(&self.gate),
            cache: Arc::clone(&self.cache),
            pool: Arc::clone(&self.pool),
            display: Mutex::new(None),
            mouse_mode: Mutex::new(MouseMode::CLIENT),
            closed: watch::channel(false).0,
        });
        map.insert(id, Arc::clone(&session));
        self.elect_first(&map);
        Ok(session)
    }

    /// The live session `id`.
    pub fn get(&self, id: u32) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// Ends session `id` and tells its channels.
    pub fn remove(&self, id: u32) {
        let mut map = self.lock();
        if let Some(session) = map.remove(&id) {
            self.elect_first(&map);
            drop(map);
            session.closed.send_replace(true);
        }
    }

    /// Live sessions.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// Ends every session.
    pub fn close_all(&self) {
        let mut map = self.lock();
        let all: Vec<Arc<Session>> = map.drain().map(|(_, s)| s).collect();
        self.elect_first(&map);
        drop(map);
        for session in all {
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
        let s = Sessions::new(3, InputPolicy::All);
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

    #[test]
    fn first_policy_follows_the_longest_connected_session() {
        let s = Sessions::new(4, InputPolicy::First);
        let a = s.create().unwrap();
        let b = s.create().unwrap();
        let c = s.create().unwrap();
        assert!(a.input_allowed() && !b.input_allowed() && !c.input_allowed());
        s.remove(b.id());
        assert!(a.input_allowed());
        s.remove(a.id());
        assert!(c.input_allowed(), "c is the oldest left");
        let d = s.create().unwrap();
        assert!(!d.input_allowed());
        let stats = s.stats();
        assert_eq!(
            stats.iter().map(|st| st.session_id).collect::<Vec<_>>(),
            [c.id(), d.id()]
        );
        assert!(stats[0].input_allowed && !stats[1].input_allowed);
    }

    #[test]
    fn all_and_none_policies() {
        let all = Sessions::new(2, InputPolicy::All);
        assert!(all.create().unwrap().input_allowed());
        assert!(all.create().unwrap().input_allowed());
        let none = Sessions::new(2, InputPolicy::None);
        assert!(!none.create().unwrap().input_allowed());
    }
}
