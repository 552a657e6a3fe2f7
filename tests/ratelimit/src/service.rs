//! `ShouldRateLimit`: each descriptor of the request is matched against its
//! domain's tree, and the matched counter charged `hits_addend` (0 counts as 1).

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::config::{Limits, Rule};
use crate::limiter::{Hit, Store};
use crate::rate_limit_response::{Code, DescriptorStatus, RateLimit};
use crate::rate_limit_service_server::RateLimitService;
use crate::{RateLimitRequest, RateLimitResponse};

/// A failed storage call is tried once more after this pause (a Redis restart
/// drops the connection; limitador's connection manager reconnects on the next call).
const RETRY_AFTER: Duration = Duration::from_millis(200);

pub struct Service {
    limits: Arc<Limits>,
    store: Arc<Store>,
}

impl Service {
    pub fn new(limits: Limits, store: Store) -> Self {
        for node in limits.limited_nodes() {
            store.add_node(node);
        }
        Service {
            limits: Arc::new(limits),
            store: Arc::new(store),
        }
    }

    async fn hit(&self, namespace: &str, key: &str, delta: u64) -> Result<Hit, String> {
        match self.store.hit(namespace, key, delta).await {
            Ok(hit) => Ok(hit),
            Err(first) => {
                eprintln!("tollgate-ratelimit: storage error, retrying once: {first}");
                tokio::time::sleep(RETRY_AFTER).await;
                self.store.hit(namespace, key, delta).await
            }
        }
    }

    pub async fn should_rate_limit(
        &self,
        request: RateLimitRequest,
    ) -> Result<RateLimitResponse, Status> {
        if request.domain.is_empty() {
            return Err(Status::invalid_argument(
                "rate limit domain must not be empty",
            ));
        }
        if request.descriptors.is_empty() {
            return Err(Status::invalid_argument(
                "rate limit descriptor list must not be empty",
            ));
        }
        let delta = u64::from(request.hits_addend.max(1));
        let mut overall = Code::Ok;
        let mut statuses = Vec::with_capacity(request.descriptors.len());
        for descriptor in &request.descriptors {
            let entries: Vec<(&str, &str)> = descriptor
                .entries
                .iter()
                .map(|e| (e.key.as_str(), e.value.as_str()))
                .collect();
            let node = self.limits.lookup(&request.domain, &entries);
            let Some((node, name, requests_per_unit, unit)) = node.and_then(|n| match &n.rule {
                Some(Rule::Limited {
                    name,
                    requests_per_unit,
                    unit,
                }) => Some((n, name, *requests_per_unit, *unit)),
                _ => None,
            }) else {
                // No limit, or `unlimited: true`: OK, nothing counted.
                statuses.push(DescriptorStatus {
                    code: Code::Ok.into(),
                    ..Default::default()
                });
                continue;
            };
            let key = serde_json::to_string(&entries).unwrap_or_default();
            let hit = self
                .hit(&node.namespace, &key, delta)
                .await
                .map_err(|e| Status::unavailable(format!("counter storage: {e}")))?;
            // Shadow mode: counted and reported with its limit, but never refused.
            let code = if hit.over_limit && !node.shadow_mode {
                overall = Code::OverLimit;
                Code::OverLimit
            } else {
                Code::Ok
            };
            statuses.push(DescriptorStatus {
                code: code.into(),
                current_limit: Some(RateLimit {
                    name: name.clone(),
                    requests_per_unit,
                    unit: unit.into(),
                }),
                limit_remaining: u32::try_from(hit.remaining).unwrap_or(u32::MAX),
                duration_until_reset: Some(prost_types::Duration {
                    seconds: i64::try_from(hit.reset.as_secs()).unwrap_or(i64::MAX),
                    nanos: i32::try_from(hit.reset.subsec_nanos()).unwrap_or(0),
                }),
            });
        }
        Ok(RateLimitResponse {
            overall_code: overall.into(),
            statuses,
            ..Default::default()
        })
    }
}

/// The gRPC face of [`Service`].
pub struct Grpc(pub Arc<Service>);

#[tonic::async_trait]
impl RateLimitService for Grpc {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        self.0
            .should_rate_limit(request.into_inner())
            .await
            .map(Response::new)
    }
}
