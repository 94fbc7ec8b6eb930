//! The corecast node: the engine driven by real sockets and threads.
//!
//! - [`node::Node`] starts and stops everything, as a [`node::NodeConfig`] says; [`config`] reads
//!   `corecast serve`'s flags.
//! - [`ingest`]: the thread that receives sources' packets and hands them to shards.
//! - [`shard`]: the core-pinned workers that fan packets out with `sendmmsg` (`corecast_udp`).
//! - [`control`]: the thread that owns the topology; [`views`] answers the HTTP API from it.
//!
//! `corecast loadgen`, `demo` and `check` are the `corecast_loadgen` crate's, run by this
//! package's binary.
//!
//! DESIGN.md shows the threads, the queues between them and the packet path through them.

pub mod clock;
pub mod config;
pub mod control;
pub mod events;
pub mod ingest;
pub mod node;
pub(crate) mod pool;
pub(crate) mod sdp;
pub mod shard;
pub mod telemetry;
pub mod views;
pub mod wake;
pub mod webrtc;

pub use node::Node;
