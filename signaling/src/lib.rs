//! The corecast control plane's HTTP side: the API vocabulary ([`api`]), the [`Control`] trait
//! the node implements, the HTTP server over it ([`server`]), a blocking client ([`client`]) and
//! the client half of the `corecast` command line ([`cli`]).

pub mod api;
pub mod cli;
pub mod client;
pub mod server;

pub use api::{ApiError, Control, ErrorBody};
pub use cli::{ChannelCmd, ClientArgs, ClientCommand, SourceCmd, SubscriberCmd};
pub use client::{Client, ClientError};
pub use server::{router, ApiConfig, ApiServer};
