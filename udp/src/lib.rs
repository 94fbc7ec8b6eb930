//! The kernel's UDP features, as corecast uses them (Linux), behind one safe API: the only crate
//! of the project with `unsafe` syscalls, shared by the node, the load generator and the
//! benches' `rawlimit` probe.
//!
//! - [`SendBatch`]: `sendmmsg` of many datagrams, each up to [`SendBatch`]'s segment count of
//!   iovecs to its own destination, never blocking; what the kernel refuses is told back per
//!   datagram ([`Refusal`]).
//! - [`RecvBatch`]: `recvmmsg` into caller-owned buffers, with the sender's address, the
//!   truncation flag and the kernel's receive timestamp ([`Received`]).
//! - [`options`]: receive timestamps and buffer sizes.
//! - [`time`]: the calling thread's CPU clock, and the fixed grid that stats windows follow.
//! - [`PortRange`]: a range of UDP ports as the command line writes them (`40000-40999`).
//!
//! The API knows nothing of RTP: a datagram is a destination and byte segments
//! ([`Datagram`]). The node builds them from the engine's transmits
//! (`Transmit::segments`), `rawlimit` from its probe payload.
//!
//! Every `unsafe` block says why it is sound (`// SAFETY:`). The kernel is handed pointers into
//! slices borrowed for the duration of one call, and header arrays owned by a batch and not
//! resized while a call is in flight.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod memory;
pub mod options;
mod ports;
mod recv;
mod send;
mod sockaddr;
pub mod time;

pub use memory::release_free_memory;
pub use options::{enable_receive_timestamps, Buffer};
pub use ports::PortRange;
pub use recv::{Received, RecvBatch};
pub use send::{
    gso_supported, Datagram, Refusal, SendBatch, SendOutcome, MAX_GSO_BYTES, MAX_GSO_SEGMENTS,
    SEGMENTS,
};
