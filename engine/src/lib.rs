//! corecast's forwarding engine: a pure library with no sockets, threads or clock reads.
//!
//! # The packet path
//!
//! 1. The I/O layer receives a datagram on a source's port and calls
//!    [`SourceIngress::accept`]`(bytes, from, now)`: a latching source takes it only from its
//!    sender's address (else it is dropped as `wrong_sender`; a sender silent for the source's
//!    idle time is replaced by the next), the RTP header is parsed and bounds-checked once
//!    ([`rtp::RtpHeader::parse`]), the codec's payload is inspected once ([`codec::inspect`]:
//!    frame start, keyframe, picture ID), and the packet is placed in its source's stream
//!    (64-bit sequence number and timestamp, duplicates and stragglers dropped, restarts seen as a
//!    new epoch). The result is an [`RxPacket`]: small `Copy` metadata stored next to the bytes.
//!    A packet of another stream than the source's current one (another SSRC, or a sequence far
//!    off) is held while that stream is on probation, and released, in order, if it takes over
//!    ([`SourceIngress::ingest`] hands out every packet that comes out of one datagram).
//! 2. Each shard that hosts tracks of that source calls [`Shard::fan_out`]`(pkt, bytes, now)` and
//!    drives the returned [`FanOut`]: it walks only the tracks on that source (one contiguous
//!    slice), and each track's [`Splicer`] decides (keyframe gate, stale, mapping) and writes an
//!    output [`Transmit`] (destination and rewritten header bytes; the payload is referenced, not
//!    copied) into the caller's [`TransmitBatch`].
//! 3. The I/O layer sends each batch (one `sendmmsg`), and reports failures back with
//!    [`Shard::record_send_failure`].
//!
//! # Feedback, events and timers
//!
//! Everything that is not a transmit leaves the engine as a typed event or a keyframe request:
//!
//! - Subscribers' RTCP from a shard's socket goes to [`Shard::handle_rtcp`]`(bytes, from, now)`:
//!   the shard finds the track by its output SSRC, takes a PLI/FIR only from that track's
//!   subscriber ([`shard::is_subscribers_address`]; others counted as `rtcp_wrong_sender`), and
//!   queues [`ShardEvent::KeyframeWanted`] for the track's source, coalesced per source.
//! - [`Shard::switch`]`(track, to, now)` queues a keyframe wish for `to` and records the switch's
//!   deadline; the switch is applied at `to`'s switch point ([`ShardEvent::SwitchApplied`]),
//!   put off once if the old source is mid-frame ([`ShardEvent::SwitchDeferred`]), or
//!   cancelled by [`Shard::handle_timeout`] at its deadline ([`ShardEvent::SwitchTimedOut`]).
//! - The I/O layer hands each keyframe wish to the source's ingress
//!   ([`SourceIngress::request_keyframe`]), which coalesces and rate limits them and gives the
//!   PLI to send, with its destination, from [`SourceIngress::poll_transmit`].
//!
//! The run loop of each thread is the same: hand in what arrived (packets, RTCP, commands), poll
//! transmits and events until there are none, and sleep until the earliest `poll_timeout`
//! ([`Shard::poll_timeout`], [`SourceIngress::poll_timeout`]), then call `handle_timeout(now)`.
//!
//! H.264/H.265 keyframes sent without their parameter sets: [`SourceIngress::prelude_for`] gives
//! the ones cached from earlier in the stream (or configured from an SDP); the caller stores them
//! after the packet's bytes ([`RxPacket::attach_prelude`]), and every track that starts at that
//! packet sends them first, as a packet of their own
//! ([`codec::parameter_sets`]).
//!
//! Every packet is forwarded or dropped with a [`DropReason`], counted per source and per track.
//!
//! # Rules
//! - `now` is always an argument ([`Nanos`]); tests drive the engine with virtual time.
//! - Nothing derived from network bytes can panic; per-packet problems are counted drop reasons,
//!   control operations return typed errors ([`ControlError`]).
//! - The per-packet path does not allocate (`tests/no_alloc.rs` proves it).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod drop;
pub mod failover;
pub mod history;
pub mod rtcp;
pub mod rtp;
pub mod shard;
pub mod source;
pub mod splicer;
// Test support, not the node's: its own unit tests, and with the `synth` feature the
// integration tests, benches, fuzz targets and the load generator.
#[cfg(any(test, feature = "synth"))]
pub mod synth;
pub mod transmit;
pub mod types;

pub use drop::{DropCounts, DropReason, DropScope};
pub use failover::{Failover, FailoverMove};
pub use shard::{
    ControlError, FanOut, JoinPolicy, Layout, RunFanOut, Shard, ShardCounters, ShardEvent,
    SourceCounters, SwitchOutcome, TrackConfig, TrackCounters, TrackInfo, MAX_RUN,
};
pub use source::{
    IngressConfig, IngressCounters, KeyframeRequest, Prelude, RxPacket, SourceIngress,
};
pub use splicer::Splicer;
pub use transmit::{Transmit, TransmitBatch};
pub use types::{Codec, ExtSeq, ExtTime, Nanos, RtpTime, SeqNo, SourceId, Ssrc, TrackId};
