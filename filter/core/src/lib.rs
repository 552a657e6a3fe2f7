//! Tollgate core: every piece of the filter's logic, free of proxy-wasm so it
//! runs and tests natively. The plugin crate is a thin adapter over [`host::Host`].

pub mod access;
pub mod agency;
pub mod anomaly;
pub mod api;
pub mod build;
pub mod config;
pub mod detect;
pub mod eval;
pub mod fuzz;
pub mod host;
pub mod metrics;
pub mod ratelimit;
pub mod redact;
pub mod reply;
pub mod scan;
pub mod sse;
pub mod stream;
pub mod telemetry;
pub mod tokens;

pub use config::{PluginConfig, Policy};
