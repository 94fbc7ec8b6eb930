//! The corecast control plane: the HTTP control API and the topology that drives the engine's
//! shards. It is filled by the node issue; today it only names the engine types it will use so the
//! workspace shape is fixed.

pub use corecast_engine::{Codec, SourceId, TrackId};
