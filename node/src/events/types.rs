//! Event types, their stable names, and masks (sets of types) parsed from `types=` lists.

use std::fmt;
use std::str::FromStr;

/// Why a flag value (an event type, a mask, a handler option) could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub(crate) String);

impl ParseError {
    pub(crate) fn new(message: impl Into<String>) -> ParseError {
        ParseError(message.into())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// What happened. The names (`EventType::name`) are the wire vocabulary: receivers filter on them,
/// so they never change once published; new kinds get new names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventType {
    /// The node is up: sockets bound, threads running.
    NodeStarted,
    /// The node is shutting down (the last event a handler is sent).
    NodeStopping,
    /// A source was added through the control API.
    SourceCreated,
    /// A source was removed.
    SourceDeleted,
    /// A source's first packet arrived.
    SourceActive,
    /// A source stopped sending for longer than the idle threshold.
    SourceIdle,
    /// An idle source started sending again.
    SourceResumed,
    /// A source with a fallback was idle for `--idle-timeout` (or never sent) while its
    /// fallback sends: its subscribers are switched to the fallback (`data`: `fallback`,
    /// `reason`, `silent_ms`, `subscribers`).
    SourceFailover,
    /// A failed-over source sends again: the subscribers moved away go back to it at its next
    /// switch point (`data`: `fallback`, `subscribers`).
    SourceRestored,
    /// A source's sender restarted its stream (a new epoch: new SSRC or a sequence jump).
    SourceRestarted,
    /// A channel was created (`data`: its `channel` id, `name`, `video`, `audio`).
    ChannelCreated,
    /// A channel was removed (`data` as for `channel.created`).
    ChannelRemoved,
    /// A subscriber was added.
    SubscriberAdded,
    /// A subscriber was removed.
    SubscriberRemoved,
    /// A WHEP viewer finished ICE and DTLS: its tracks started (`data`: `addr`, `profile`,
    /// `after_ms` since its offer).
    ViewerConnected,
    /// A switch of a subscriber to another source was asked for.
    SwitchRequested,
    /// A switch was applied at the new source's switch point.
    SwitchCompleted,
    /// A switch was cancelled because no switch point came in time.
    SwitchTimedOut,
    /// A pending switch was cancelled (superseded, or its source or subscriber removed).
    SwitchCancelled,
    /// A keyframe (PLI) was requested from a source.
    KeyframeRequested,
    /// A periodic counter snapshot.
    Stats,
    /// Packets were dropped (a periodic summary by reason).
    Drops,
}

impl EventType {
    /// Every type, in declaration order (the bit order of [`EventMask`]).
    pub const ALL: [EventType; 22] = [
        EventType::NodeStarted,
        EventType::NodeStopping,
        EventType::SourceCreated,
        EventType::SourceDeleted,
        EventType::SourceActive,
        EventType::SourceIdle,
        EventType::SourceResumed,
        EventType::SourceFailover,
        EventType::SourceRestored,
        EventType::SourceRestarted,
        EventType::ChannelCreated,
        EventType::ChannelRemoved,
        EventType::SubscriberAdded,
        EventType::SubscriberRemoved,
        EventType::ViewerConnected,
        EventType::SwitchRequested,
        EventType::SwitchCompleted,
        EventType::SwitchTimedOut,
        EventType::SwitchCancelled,
        EventType::KeyframeRequested,
        EventType::Stats,
        EventType::Drops,
    ];

    /// The stable wire name, e.g. `switch.completed`.
    pub const fn name(self) -> &'static str {
        match self {
            EventType::NodeStarted => "node.started",
            EventType::NodeStopping => "node.stopping",
            EventType::SourceCreated => "source.created",
            EventType::SourceDeleted => "source.deleted",
            EventType::SourceActive => "source.active",
            EventType::SourceIdle => "source.idle",
            EventType::SourceResumed => "source.resumed",
            EventType::SourceFailover => "source.failover",
            EventType::SourceRestored => "source.restored",
            EventType::SourceRestarted => "source.restarted",
            EventType::ChannelCreated => "channel.created",
            EventType::ChannelRemoved => "channel.removed",
            EventType::SubscriberAdded => "subscriber.added",
            EventType::SubscriberRemoved => "subscriber.removed",
            EventType::ViewerConnected => "viewer.connected",
            EventType::SwitchRequested => "switch.requested",
            EventType::SwitchCompleted => "switch.completed",
            EventType::SwitchTimedOut => "switch.timed_out",
            EventType::SwitchCancelled => "switch.cancelled",
            EventType::KeyframeRequested => "keyframe.requested",
            EventType::Stats => "stats",
            EventType::Drops => "drops",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u8
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventType {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<EventType, ParseError> {
        EventType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| ParseError::new(format!("unknown event type {s:?} ({})", known())))
    }
}

/// The list of valid names, for error messages: an operator who mistyped a name sees the fix.
fn known() -> String {
    let names: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
    format!("known: {}, or a glob like source.* or *", names.join(", "))
}

/// A set of event types: which events a handler receives. One bit per type, so the emitter's
/// check per handler is a single AND.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventMask(u32);

impl EventMask {
    /// No type.
    pub const NONE: EventMask = EventMask(0);
    /// Every type (what `*` parses to, and a handler's default).
    pub const ALL: EventMask = EventMask((1 << EventType::ALL.len()) - 1);

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: EventType) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The set with `kind` added.
    #[must_use]
    pub const fn with(self, kind: EventType) -> EventMask {
        EventMask(self.0 | kind.bit())
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: EventMask) -> EventMask {
        EventMask(self.0 | other.0)
    }

    /// Whether no type is in the set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types in the set, in [`EventType::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .into_iter()
            .filter(move |t| self.contains(*t))
    }
}

impl FromIterator<EventType> for EventMask {
    fn from_iter<I: IntoIterator<Item = EventType>>(iter: I) -> EventMask {
        iter.into_iter().fold(EventMask::NONE, EventMask::with)
    }
}

/// Parses a comma-separated list of names and globs: `source.created,switch.*`, `*`. A glob is a
/// prefix ending in `*` (`source.*` is every `source.` type). Every item must match at least one
/// type, and all unknown items are named in the error at once.
impl FromStr for EventMask {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<EventMask, ParseError> {
        let mut mask = EventMask::NONE;
        let mut unknown = Vec::new();
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                continue;
            }
            let matched: EventMask = match item.strip_suffix('*') {
                Some(prefix) => EventType::ALL
                    .into_iter()
                    .filter(|t| t.name().starts_with(prefix))
                    .collect(),
                // An unknown name matches nothing, and is reported below with the others.
                None => item
                    .parse::<EventType>()
                    .map(|t| EventMask::NONE.with(t))
                    .unwrap_or_default(),
            };
            if matched.is_empty() {
                unknown.push(item);
            }
            mask = mask.union(matched);
        }
        if !unknown.is_empty() {
            return Err(ParseError::new(format!(
                "unknown event type{} {} ({})",
                if unknown.len() > 1 { "s" } else { "" },
                unknown.join(", "),
                known()
            )));
        }
        if mask.is_empty() {
            return Err(ParseError::new(format!(
                "empty event type list ({})",
                known()
            )));
        }
        Ok(mask)
    }
}

/// The canonical list that parses back to the same mask: `*` for all, a whole category as
/// `category.*`, otherwise names; the empty mask is the empty string.
impl fmt::Display for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == EventMask::ALL {
            return f.write_str("*");
        }
        let mut items: Vec<String> = Vec::new();
        let mut done = EventMask::NONE;
        for kind in self.iter() {
            if done.contains(kind) {
                continue;
            }
            let category = kind.name().split_once('.').map(|(c, _)| c);
            let members: EventMask = match category {
                Some(c) => EventType::ALL
                    .into_iter()
                    .filter(|t| t.name().split_once('.').map(|(tc, _)| tc) == Some(c))
                    .collect(),
                None => EventMask::NONE.with(kind),
            };
            // A category of one type reads better as its name than as a glob.
            match category {
                Some(c) if members.0 & self.0 == members.0 && members.iter().count() > 1 => {
                    items.push(format!("{c}.*"));
                    done = done.union(members);
                }
                _ => {
                    items.push(kind.name().to_owned());
                    done = done.with(kind);
                }
            }
        }
        f.write_str(&items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for t in EventType::ALL {
            assert_eq!(t.name().parse::<EventType>(), Ok(t));
            assert_eq!(t.to_string(), t.name());
        }
        let mut names: Vec<_> = EventType::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), EventType::ALL.len());
        assert!("source.nope".parse::<EventType>().is_err());
    }

    #[test]
    fn globs_and_names() {
        let m: EventMask = "source.*, switch.completed".parse().unwrap();
        assert!(m.contains(EventType::SourceCreated));
        assert!(m.contains(EventType::SourceRestarted));
        assert!(m.contains(EventType::SourceFailover));
        assert!(m.contains(EventType::SwitchCompleted));
        assert!(!m.contains(EventType::SwitchRequested));
        assert!(!m.contains(EventType::Stats));
        assert_eq!(m.iter().count(), 9);

        let all: EventMask = "*".parse().unwrap();
        assert_eq!(all, EventMask::ALL);
        assert!(EventType::ALL.iter().all(|t| all.contains(*t)));

        let sw: EventMask = "switch.*".parse().unwrap();
        assert_eq!(
            sw.iter().collect::<Vec<_>>(),
            [
                EventType::SwitchRequested,
                EventType::SwitchCompleted,
                EventType::SwitchTimedOut,
                EventType::SwitchCancelled
            ]
        );
        // A bare name without a dot and a glob over the whole prefix space both work.
        let m: EventMask = "stats,drops".parse().unwrap();
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            [EventType::Stats, EventType::Drops]
        );
    }

    #[test]
    fn unknown_items_are_all_named() {
        let err = "source.*,bogus,switch.done,nope.*"
            .parse::<EventMask>()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bogus, switch.done, nope.*"), "{msg}");
        assert!(msg.contains("known: node.started"), "{msg}");
        assert!("".parse::<EventMask>().is_err());
        assert!(" , ".parse::<EventMask>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "*",
            "source.*",
            "switch.*,stats",
            "node.started,keyframe.requested",
            "drops",
        ] {
            let m: EventMask = text.parse().unwrap();
            assert_eq!(m.to_string(), text);
            assert_eq!(m.to_string().parse::<EventMask>().unwrap(), m);
        }
        // Every single type, and every category, round-trips too.
        for t in EventType::ALL {
            let m = EventMask::NONE.with(t);
            assert_eq!(m.to_string().parse::<EventMask>().unwrap(), m);
        }
        assert_eq!(EventMask::NONE.to_string(), "");
    }
}
