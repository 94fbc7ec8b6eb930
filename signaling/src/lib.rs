//! The corecast control plane's HTTP side: the API vocabulary ([`api`]) and the [`Control`] trait
//! the node implements.

pub mod api;

pub use api::{ApiError, Control};
