//! The per-socket ICE-lite agent: viewers, their addresses and their deadlines.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;

use corecast_engine::Nanos;
use stun::attributes::{
    ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_USERNAME, ATTR_USE_CANDIDATE,
};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, BINDING_REQUEST};

use super::binding::{attribute, decode, verify_fingerprint, verify_integrity, write_success};
use super::{
    AddError, Checked, Credentials, IceConfig, IceCounters, IceEvent, StunDrop, ViewerKey,
};

/// One viewer's ICE state.
pub(super) struct Viewer {
    local_ufrag: Box<str>,
    remote_ufrag: Box<str>,
    /// The local password as the `stun` crate's short-term key, built once rather than per check.
    key: MessageIntegrity,
    /// Addresses that passed a check, oldest first, at most `max_addresses_per_viewer`.
    addresses: Vec<SocketAddr>,
    selected: Option<SocketAddr>,
    added: Nanos,
    /// The last valid check from the selected address; `None` until the first nomination.
    consent: Option<Nanos>,
    /// When this viewer's live entry in the deadline queue is due: entries at other times are
    /// stale and skipped.
    scheduled: Nanos,
}

impl Viewer {
    /// When the viewer expires unless a check comes first.
    fn deadline(&self, config: &IceConfig) -> Nanos {
        match self.consent {
            Some(at) => at.saturating_add(config.consent_timeout),
            None => self.added.saturating_add(config.connect_timeout),
        }
    }
}

/// ICE-lite for one shard socket: answers the viewers' checks and tracks their consent.
///
/// The node hands every STUN datagram (first byte 0..=3, RFC 7983) to [`IceLite::handle_stun`]
/// and sends `response` back to `from` when it returns `Ok`; it calls
/// [`IceLite::handle_timeout`] when [`IceLite::poll_timeout`] comes due, and drains
/// [`IceLite::poll_event`] after either.
pub struct IceLite {
    config: IceConfig,
    viewers: HashMap<ViewerKey, Viewer>,
    by_ufrag: HashMap<Box<str>, ViewerKey>,
    by_addr: HashMap<SocketAddr, ViewerKey>,
    /// `(due, viewer)`, earliest first; see [`Viewer::scheduled`].
    deadlines: BinaryHeap<Reverse<(Nanos, ViewerKey)>>,
    events: VecDeque<IceEvent>,
    counters: IceCounters,
    /// Reused across calls so the crate's buffers keep their capacity.
    request: Message,
    reply: Message,
}

impl std::fmt::Debug for IceLite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceLite")
            .field("config", &self.config)
            .field("viewers", &self.viewers.len())
            .field("addresses", &self.by_addr.len())
            .field("queued_deadlines", &self.deadlines.len())
            .field("events", &self.events.len())
            .field("counters", &self.counters)
            .finish()
    }
}

impl IceLite {
    /// An agent with no viewers.
    pub fn new(config: IceConfig) -> IceLite {
        IceLite {
            config,
            viewers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            deadlines: BinaryHeap::new(),
            events: VecDeque::new(),
            counters: IceCounters::default(),
            request: Message::new(),
            reply: Message::new(),
        }
    }

    /// Admits `viewer`, whose checks will carry USERNAME `local.ufrag:remote_ufrag` and be signed
    /// with `local.pwd`. Its connect deadline starts at `now`.
    pub fn add(
        &mut self,
        viewer: ViewerKey,
        local: Credentials,
        remote_ufrag: &str,
        now: Nanos,
    ) -> Result<(), AddError> {
        let valid_ufrag = |u: &str| !u.is_empty() && !u.contains(':');
        if !valid_ufrag(&local.ufrag) || !valid_ufrag(remote_ufrag) || local.pwd.is_empty() {
            return Err(AddError::InvalidCredentials);
        }
        if self.viewers.contains_key(&viewer) {
            return Err(AddError::DuplicateViewer);
        }
        if self.by_ufrag.contains_key(local.ufrag.as_str()) {
            return Err(AddError::DuplicateUfrag);
        }
        let local_ufrag: Box<str> = local.ufrag.into();
        let entry = Viewer {
            local_ufrag: local_ufrag.clone(),
            remote_ufrag: remote_ufrag.into(),
            key: MessageIntegrity::new_short_term_integrity(local.pwd),
            addresses: Vec::new(),
            selected: None,
            added: now,
            consent: None,
            scheduled: now.saturating_add(self.config.connect_timeout),
        };
        self.deadlines.push(Reverse((entry.scheduled, viewer)));
        self.by_ufrag.insert(local_ufrag, viewer);
        self.viewers.insert(viewer, entry);
        Ok(())
    }

    /// Forgets `viewer` (its addresses, credentials and deadline); no event. Returns whether it
    /// was a viewer.
    pub fn remove(&mut self, viewer: ViewerKey) -> bool {
        let Some(entry) = self.viewers.remove(&viewer) else {
            return false;
        };
        self.by_ufrag.remove(&entry.local_ufrag);
        for addr in &entry.addresses {
            if self.by_addr.get(addr) == Some(&viewer) {
                self.by_addr.remove(addr);
            }
        }
        // Its queue entry stays until due and is skipped then: removing from a heap is a scan.
        true
    }

    /// Checks one STUN datagram from `from`. On `Ok` the Binding success response to send back
    /// to `from` is in `response` (cleared first; its capacity is reused). On `Err` `response`
    /// is empty and the reason is counted.
    pub fn handle_stun(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        now: Nanos,
        response: &mut Vec<u8>,
    ) -> Result<Checked, StunDrop> {
        response.clear();
        match self.check(bytes, from, now, response) {
            Ok(checked) => {
                self.counters.answered += 1;
                Ok(checked)
            }
            Err(reason) => {
                self.counters.count_drop(reason);
                Err(reason)
            }
        }
    }

    fn check(
        &mut self,
        bytes: &[u8],
        from: SocketAddr,
        now: Nanos,
        response: &mut Vec<u8>,
    ) -> Result<Checked, StunDrop> {
        let message = &mut self.request;
        decode(bytes, message)?;
        if message.typ != BINDING_REQUEST {
            return Err(StunDrop::NotBindingRequest);
        }
        verify_fingerprint(message)?;
        let username = attribute(message, ATTR_USERNAME).ok_or(StunDrop::MissingUsername)?;
        let viewer = viewer_for_username(&self.by_ufrag, &self.viewers, username)?;
        let entry = self
            .viewers
            .get_mut(&viewer)
            .ok_or(StunDrop::UnknownUsername)?;
        verify_integrity(message, &entry.key)?;
        // The role is read only once the request is authentic, so that an unauthenticated
        // sender learns nothing from which reason it gets.
        if message.contains(ATTR_ICE_CONTROLLED) {
            return Err(StunDrop::RoleConflict);
        }
        if !message.contains(ATTR_ICE_CONTROLLING) {
            return Err(StunDrop::MissingRole);
        }
        let nominated = message.contains(ATTR_USE_CANDIDATE);

        let selected_changed = nominated && entry.selected != Some(from);
        if selected_changed {
            entry.selected = Some(from);
            self.events
                .push_back(IceEvent::Selected { viewer, addr: from });
        }
        if entry.selected == Some(from) {
            entry.consent = Some(now);
            let due = entry.deadline(&self.config);
            // Deadlines only move later, except when a first nomination swaps a long connect
            // timeout for a shorter consent timeout: then the queue needs an earlier entry.
            if due < entry.scheduled {
                entry.scheduled = due;
                self.deadlines.push(Reverse((due, viewer)));
            }
        }
        write_success(
            &mut self.reply,
            message.transaction_id,
            from,
            &entry.key,
            response,
        );
        self.remember(viewer, from);
        Ok(Checked {
            viewer,
            nominated,
            selected_changed,
        })
    }

    /// Records that `from` passed a check of `viewer`, so [`IceLite::viewer_at`] routes it.
    fn remember(&mut self, viewer: ViewerKey, from: SocketAddr) {
        match self.by_addr.insert(from, viewer) {
            Some(previous) if previous == viewer => return,
            // The address moved to another viewer (a NAT reused the port): the latest check wins.
            Some(previous) => {
                if let Some(other) = self.viewers.get_mut(&previous) {
                    other.addresses.retain(|a| *a != from);
                }
            }
            None => {}
        }
        let Some(entry) = self.viewers.get_mut(&viewer) else {
            return;
        };
        entry.addresses.push(from);
        if entry.addresses.len() > self.config.max_addresses_per_viewer.max(1) {
            let selected = entry.selected;
            if let Some(oldest) = entry
                .addresses
                .iter()
                .position(|a| Some(*a) != selected && *a != from)
            {
                let gone = entry.addresses.remove(oldest);
                if self.by_addr.get(&gone) == Some(&viewer) {
                    self.by_addr.remove(&gone);
                }
            }
        }
    }

    /// The viewer an address that passed one of its checks belongs to, so the node can route
    /// that address's DTLS and SRTCP.
    pub fn viewer_at(&self, addr: SocketAddr) -> Option<ViewerKey> {
        self.by_addr.get(&addr).copied()
    }

    /// Where the viewer's media goes: the address of its latest nominating check.
    pub fn selected(&self, viewer: ViewerKey) -> Option<SocketAddr> {
        self.viewers.get(&viewer).and_then(|v| v.selected)
    }

    /// Whether `viewer` is (still) a viewer of this agent.
    pub fn contains(&self, viewer: ViewerKey) -> bool {
        self.viewers.contains_key(&viewer)
    }

    /// Viewers of this agent.
    pub fn len(&self) -> usize {
        self.viewers.len()
    }

    /// No viewers.
    pub fn is_empty(&self) -> bool {
        self.viewers.is_empty()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// When [`IceLite::handle_timeout`] should next be called. It may come due with nothing to
    /// do (a refreshed or removed viewer's entry is rechecked lazily), never late.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        self.deadlines.peek().map(|Reverse((due, _))| *due)
    }

    /// Expires every viewer whose deadline is at or before `now`, queueing
    /// [`IceEvent::ConsentExpired`] or [`IceEvent::ConnectTimedOut`] and removing it.
    pub fn handle_timeout(&mut self, now: Nanos) {
        while let Some(&Reverse((due, viewer))) = self.deadlines.peek() {
            if due > now {
                break;
            }
            self.deadlines.pop();
            let Some(entry) = self.viewers.get_mut(&viewer) else {
                continue;
            };
            if entry.scheduled != due {
                continue;
            }
            let deadline = entry.deadline(&self.config);
            if deadline > now {
                entry.scheduled = deadline;
                self.deadlines.push(Reverse((deadline, viewer)));
                continue;
            }
            let event = if entry.consent.is_some() {
                IceEvent::ConsentExpired { viewer }
            } else {
                IceEvent::ConnectTimedOut { viewer }
            };
            self.remove(viewer);
            self.events.push_back(event);
        }
    }

    /// Entries in the deadline queue, live and stale.
    #[cfg(test)]
    pub(super) fn queued_deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// Requests answered and refused, by reason.
    pub fn counters(&self) -> IceCounters {
        self.counters
    }

    /// An estimate of the heap and table bytes one connected viewer costs (its entry, the two
    /// map slots and queue entry that point at it, its strings, key and remembered addresses),
    /// for the memory budget. Hash maps are counted at one slot plus a control byte per entry
    /// and a load factor of 7/8.
    pub fn bytes_per_viewer(&self, ufrag_len: usize, pwd_len: usize) -> usize {
        use std::mem::size_of;
        let slot = |bytes: usize| (bytes + 1) * 8 / 7;
        let addresses = self.config.max_addresses_per_viewer.max(1);
        slot(size_of::<(ViewerKey, Viewer)>())
            + slot(size_of::<(Box<str>, ViewerKey)>())
            + addresses * slot(size_of::<(SocketAddr, ViewerKey)>())
            + size_of::<Reverse<(Nanos, ViewerKey)>>()
            + 2 * ufrag_len
            + ufrag_len
            + pwd_len
            + addresses * size_of::<SocketAddr>()
    }
}

/// The viewer whose USERNAME (`local:remote`, RFC 8445 §7.2.2) this is.
fn viewer_for_username(
    by_ufrag: &HashMap<Box<str>, ViewerKey>,
    viewers: &HashMap<ViewerKey, Viewer>,
    username: &[u8],
) -> Result<ViewerKey, StunDrop> {
    let username = std::str::from_utf8(username).map_err(|_| StunDrop::UnknownUsername)?;
    let (local, remote) = username.split_once(':').ok_or(StunDrop::UnknownUsername)?;
    let viewer = *by_ufrag.get(local).ok_or(StunDrop::UnknownUsername)?;
    match viewers.get(&viewer) {
        Some(entry) if *entry.remote_ufrag == *remote => Ok(viewer),
        _ => Err(StunDrop::UnknownUsername),
    }
}
