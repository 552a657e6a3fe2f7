//! The counters, kept by limitador: in memory, or in Redis through limitador's
//! async Redis storage.
//!
//! Each configured node with a limit is one limitador `Limit` in a namespace of
//! its own (the node's path), with a single variable `key` that carries the
//! request's entries, so a node without a `value` counts each value apart.

use std::collections::HashMap;
use std::time::Duration;

use limitador::limit::{Limit, Namespace};
use limitador::storage::redis::AsyncRedisStorage;
use limitador::{AsyncRateLimiter, RateLimiter};

use crate::config::{Node, Rule};

/// Qualified counters (one per distinct `key`) the in-memory storage keeps.
const MEMORY_COUNTERS: u64 = 100_000;

pub enum Store {
    Memory(RateLimiter),
    Redis(AsyncRateLimiter),
}

/// The outcome of one hit on one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub over_limit: bool,
    /// What is left in the window after this hit (0 when over the limit).
    pub remaining: u64,
    pub reset: Duration,
}

impl Store {
    pub fn memory() -> Self {
        Store::Memory(RateLimiter::new(MEMORY_COUNTERS))
    }

    pub async fn redis(url: &str) -> Result<Self, String> {
        let storage = AsyncRedisStorage::new(url)
            .await
            .map_err(|e| format!("redis {url}: {e}"))?;
        Ok(Store::Redis(AsyncRateLimiter::new_with_storage(Box::new(
            storage,
        ))))
    }

    /// Registers the limit of a configured node (nodes without a counting rule
    /// are skipped).
    pub fn add_node(&self, node: &Node) {
        let Some(Rule::Limited {
            requests_per_unit,
            unit,
            ..
        }) = &node.rule
        else {
            return;
        };
        let limit = Limit::new(
            node.namespace.as_str(),
            i64::from(*requests_per_unit),
            Rule::window_seconds(*unit),
            Vec::<&str>::new(),
            ["key"],
        );
        match self {
            Store::Memory(l) => l.add_limit(limit),
            Store::Redis(l) => l.add_limit(limit),
        };
    }

    /// Adds `delta` to the counter of `key` in `namespace` and says whether it went
    /// over the limit. As envoyproxy/ratelimit does (it INCRBYs, then compares), a
    /// hit over the limit is counted too: limitador's check-and-update does not
    /// count a hit that would overshoot, so that case adds it with a plain update.
    pub async fn hit(&self, namespace: &str, key: &str, delta: u64) -> Result<Hit, String> {
        let namespace = Namespace::from(namespace);
        let values = HashMap::from([("key".to_string(), key.to_string())]);
        let delta = i64::try_from(delta).map_err(|_| format!("hits_addend too large: {delta}"))?;
        let (result, reset) = match self {
            Store::Memory(l) => {
                let r = l
                    .check_rate_limited_and_update(&namespace, &values, delta, true)
                    .map_err(|e| e.to_string())?;
                if r.limited {
                    l.update_counters(&namespace, &values, delta)
                        .map_err(|e| e.to_string())?;
                }
                // The in-memory storage does not report the window's end from a
                // check: read it from the stored counter.
                let reset = l
                    .get_counters(&namespace)
                    .map_err(|e| e.to_string())?
                    .iter()
                    .find(|c| c.set_variables().get("key").map(String::as_str) == Some(key))
                    .and_then(|c| c.expires_in());
                (r, reset)
            }
            Store::Redis(l) => {
                let r = l
                    .check_rate_limited_and_update(&namespace, &values, delta, true)
                    .await
                    .map_err(|e| e.to_string())?;
                if r.limited {
                    l.update_counters(&namespace, &values, delta)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                (r, None)
            }
        };
        let counter = result
            .counters
            .first()
            .ok_or_else(|| format!("no counter for namespace {namespace:?}"))?;
        let window = Duration::from_secs(counter.seconds());
        Ok(Hit {
            over_limit: result.limited,
            remaining: u64::try_from(counter.remaining().unwrap_or(0)).unwrap_or(0),
            reset: reset.or(counter.expires_in()).unwrap_or(window),
        })
    }
}
