//! A small implementation of Envoy's global rate-limit service
//! (`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`) for Tollgate's
//! tests and demo: envoyproxy/ratelimit's YAML configuration, counters kept by the
//! `limitador` crate in memory or in Redis. See README.md for what it implements.

pub mod config;
pub mod limiter;
pub mod service;

/// The messages and the service generated from the vendored Envoy protos
/// (`proto/`), nested by protobuf package as the generated code expects.
#[allow(clippy::all, missing_docs)]
pub mod envoy {
    pub mod config {
        pub mod core {
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    pub mod extensions {
        pub mod common {
            pub mod ratelimit {
                pub mod v3 {
                    tonic::include_proto!("envoy.extensions.common.ratelimit.v3");
                }
            }
        }
    }
    pub mod r#type {
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
    pub mod service {
        pub mod ratelimit {
            pub mod v3 {
                tonic::include_proto!("envoy.service.ratelimit.v3");
            }
        }
    }
}

pub use envoy::extensions::common::ratelimit::v3::{rate_limit_descriptor, RateLimitDescriptor};
pub use envoy::service::ratelimit::v3::{
    rate_limit_response, rate_limit_service_client, rate_limit_service_server, RateLimitRequest,
    RateLimitResponse,
};
