//! What can go wrong with a request to the control thread, in the node's own terms. The HTTP
//! API's status codes are chosen in one place: `impl From<NodeError> for ApiError` below.

use std::fmt;
use std::io;
use std::net::IpAddr;

use corecast_engine::{Codec, SourceId, TrackId};
use corecast_signaling::ApiError;

use super::topology::ChannelId;
use crate::config::PortRange;

/// Why the control thread refused or could not carry out a request.
#[derive(Debug)]
pub enum NodeError {
    /// The request names something the node does not have.
    NotFound(What),
    /// The request cannot be carried out as things are (a name or port in use, a codec that
    /// does not fit).
    Conflict(Conflict),
    /// The node cannot do it now (a thread not taking commands, no free port, shutting down).
    Unavailable(Unavailable),
    /// The request itself is wrong; the message names the field and what is wrong with it.
    BadRequest(String),
    /// A conditional request's `If-Match` names another version of the resource.
    PreconditionFailed(String),
    /// Adding `asked` subscribers in all would exceed `--max-subscribers` (`limit`).
    TooManySubscribers { asked: usize, limit: usize },
    /// Another source would exceed `--max-sources`.
    TooManySources { limit: usize },
    /// Entry `index` of a batch request was refused; `error` says why.
    InEntry { index: usize, error: Box<NodeError> },
    /// Field `field` of the request was refused; `error` says why.
    InField {
        field: &'static str,
        error: Box<NodeError>,
    },
}

/// The thing a request names and the node does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Source(SourceId),
    Subscriber(TrackId),
    Channel(ChannelId),
    /// A WHEP viewer (a subscriber that is not one is not found as one).
    Viewer(TrackId),
}

/// A request that clashes with the node's state.
#[derive(Debug)]
pub enum Conflict {
    /// Another source has this name.
    SourceName(String),
    /// Another channel has this name.
    ChannelName(String),
    /// A channel's video slot names an audio source, or its audio slot a video source.
    TrackKind {
        source: SourceId,
        is: Codec,
        wanted: &'static str,
    },
    /// Another source receives on this port.
    PortInUse(u16),
    /// The port is free as far as the node knows, but the kernel refused to bind it.
    CannotBind {
        ip: IpAddr,
        port: u16,
        error: io::Error,
    },
    /// The subscriber was set up for one codec and the source it would switch to is another.
    Codec {
        subscriber: TrackId,
        receives: Codec,
        source: SourceId,
        is: Codec,
    },
}

/// The node cannot carry out the request now; retrying later may work.
#[derive(Debug)]
pub enum Unavailable {
    /// Shard `shard`'s command queue stayed full. `nothing_changed`: the request was refused
    /// whole (the check before a change that goes to several queues).
    ShardQueueFull { shard: usize, nothing_changed: bool },
    /// The ingest thread's command queue stayed full; `nothing_changed` as for a shard.
    IngestQueueFull { nothing_changed: bool },
    /// Every port of `--rtp-ports` is taken.
    NoFreePort(PortRange),
    /// The control thread is gone.
    ShuttingDown,
    /// The node was started without WebRTC (no DTLS certificate).
    NoWebrtc,
    /// The handshake thread's queue is full: too many viewers joining at once.
    HandshakesBusy,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::NotFound(What::Source(id)) => write!(f, "no source {}", id.0),
            NodeError::NotFound(What::Subscriber(id)) => write!(f, "no subscriber {}", id.0),
            NodeError::NotFound(What::Channel(id)) => write!(f, "no channel {}", id.0),
            NodeError::NotFound(What::Viewer(id)) => write!(f, "no WHEP viewer {}", id.0),
            NodeError::Conflict(c) => c.fmt(f),
            NodeError::Unavailable(u) => u.fmt(f),
            NodeError::BadRequest(message) | NodeError::PreconditionFailed(message) => {
                f.write_str(message)
            }
            NodeError::TooManySubscribers { asked, limit } => {
                write!(
                    f,
                    "{asked} subscribers would exceed --max-subscribers {limit}"
                )
            }
            NodeError::TooManySources { limit } => write!(
                f,
                "the node has --max-sources {limit} sources already (its packet pool is sized \
                 for their histories)"
            ),
            NodeError::InEntry { index, error } => write!(f, "entry {index}: {error}"),
            NodeError::InField { field, error } => write!(f, "`{field}`: {error}"),
        }
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::SourceName(name) => write!(f, "a source named `{name}` exists"),
            Conflict::ChannelName(name) => write!(f, "a channel named `{name}` exists"),
            Conflict::TrackKind { source, is, wanted } => {
                write!(f, "source {} is {is}, not {wanted}", source.0)
            }
            Conflict::PortInUse(port) => write!(f, "port {port} is used by another source"),
            Conflict::CannotBind { ip, port, error } => {
                write!(f, "cannot bind {ip}:{port}: {error}")
            }
            Conflict::Codec {
                subscriber,
                receives,
                source,
                is,
            } => write!(
                f,
                "subscriber {} receives {receives} and source {} is {is}",
                subscriber.0, source.0
            ),
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unchanged = |nothing_changed: bool| {
            if nothing_changed {
                "; nothing was changed"
            } else {
                ""
            }
        };
        match self {
            Unavailable::ShardQueueFull {
                shard,
                nothing_changed,
            } => write!(
                f,
                "shard {shard} is not taking commands{}",
                unchanged(*nothing_changed)
            ),
            Unavailable::IngestQueueFull { nothing_changed } => write!(
                f,
                "the ingest thread is not taking commands{}",
                unchanged(*nothing_changed)
            ),
            Unavailable::NoFreePort(range) => write!(f, "no free ingest port in {range}"),
            Unavailable::ShuttingDown => f.write_str("the node is shutting down"),
            Unavailable::NoWebrtc => f.write_str("this node serves no WebRTC viewers"),
            Unavailable::HandshakesBusy => {
                f.write_str("too many viewers are joining at once; try again shortly")
            }
        }
    }
}

// The cause is part of the message, so `source` stays empty (a reporter would print it twice).
impl std::error::Error for NodeError {}

impl From<Conflict> for NodeError {
    fn from(c: Conflict) -> NodeError {
        NodeError::Conflict(c)
    }
}

impl Conflict {
    /// `self` as a [`NodeError`], where a method chain reads better than `From`.
    pub(crate) fn into_error(self) -> NodeError {
        NodeError::Conflict(self)
    }
}

impl From<Unavailable> for NodeError {
    fn from(u: Unavailable) -> NodeError {
        NodeError::Unavailable(u)
    }
}

impl NodeError {
    /// The error as the request's entry `index` of a batch, if the batch has more than one.
    pub(crate) fn in_entry(self, index: usize, batch: usize) -> NodeError {
        if batch > 1 {
            NodeError::InEntry {
                index,
                error: Box::new(self),
            }
        } else {
            self
        }
    }

    /// The error as one about the request's field `field`.
    pub(crate) fn in_field(self, field: &'static str) -> NodeError {
        NodeError::InField {
            field,
            error: Box::new(self),
        }
    }
}

/// The one place a domain failure gets its HTTP status and code.
impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> ApiError {
        status_of(&e)(e.to_string())
    }
}

/// The `ApiError` constructor for `e`'s kind; a batch entry's is its cause's.
fn status_of(e: &NodeError) -> fn(String) -> ApiError {
    match e {
        NodeError::NotFound(_) => ApiError::not_found,
        NodeError::Conflict(_) => ApiError::conflict,
        NodeError::Unavailable(_) => ApiError::unavailable,
        NodeError::BadRequest(_) => ApiError::bad_request,
        NodeError::PreconditionFailed(_) => ApiError::precondition_failed,
        NodeError::TooManySubscribers { .. } | NodeError::TooManySources { .. } => {
            ApiError::too_many
        }
        NodeError::InEntry { error, .. } | NodeError::InField { error, .. } => status_of(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(e: NodeError) -> (u16, &'static str, String) {
        let e = ApiError::from(e);
        (e.status, e.code, e.message)
    }

    #[test]
    fn each_kind_maps_to_its_status_and_keeps_its_message() {
        assert_eq!(
            api(NodeError::NotFound(What::Source(SourceId(3)))),
            (404, "not_found", "no source 3".into())
        );
        assert_eq!(
            api(Conflict::PortInUse(40_000).into()),
            (
                409,
                "conflict",
                "port 40000 is used by another source".into()
            )
        );
        let full = Unavailable::ShardQueueFull {
            shard: 1,
            nothing_changed: true,
        };
        assert_eq!(
            api(full.into()),
            (
                503,
                "unavailable",
                "shard 1 is not taking commands; nothing was changed".into()
            )
        );
        assert_eq!(
            api(NodeError::TooManySubscribers { asked: 5, limit: 4 }),
            (
                429,
                "limit_reached",
                "5 subscribers would exceed --max-subscribers 4".into()
            )
        );
    }

    #[test]
    fn a_batch_entry_keeps_the_status_of_its_cause() {
        let e = NodeError::NotFound(What::Subscriber(TrackId(9))).in_entry(2, 3);
        assert_eq!(
            api(e),
            (404, "not_found", "entry 2: no subscriber 9".into())
        );
        let alone = NodeError::BadRequest("`dest` is wrong".into()).in_entry(0, 1);
        assert_eq!(api(alone), (400, "bad_request", "`dest` is wrong".into()));
    }

    #[test]
    fn a_field_keeps_the_status_of_its_cause_and_is_named() {
        let e = NodeError::NotFound(What::Source(SourceId(7))).in_field("video");
        assert_eq!(api(e), (404, "not_found", "`video`: no source 7".into()));
        let e = NodeError::from(Conflict::TrackKind {
            source: SourceId(2),
            is: Codec::Vp8,
            wanted: "audio",
        })
        .in_field("audio");
        assert_eq!(
            api(e),
            (
                409,
                "conflict",
                "`audio`: source 2 is vp8, not audio".into()
            )
        );
        assert_eq!(
            api(NodeError::NotFound(What::Channel(ChannelId(4)))),
            (404, "not_found", "no channel 4".into())
        );
    }
}
