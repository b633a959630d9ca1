//! Limits that keep one caller from taking the service from the others: a request rate per API
//! key, a rate of token exchanges per client address (each costs an argon2id hash, ~25 ms of
//! CPU), and a bound on concurrent population queries (segment counts and member pages). A
//! refusal is a 429 (rates) or 503 (queries) problem with `Retry-After`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::clock::Clock;

use super::problem::problem_response;

/// Token exchanges per second from one address (twice that in a burst).
pub(crate) const TOKEN_EXCHANGES_PER_SECOND: u32 = 20;

/// A rate limiter per `K`, measuring on the service's clock.
type KeyedLimiter<K> = RateLimiter<K, DashMapStateStore<K>, Clock, NoOpMiddleware<Duration>>;

/// How often callers back at a full burst are forgotten.
pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The rate limiters of one process.
pub(crate) struct RateLimits {
    per_key: Option<KeyedLimiter<String>>,
    token_exchanges: KeyedLimiter<IpAddr>,
    clock: Clock,
}

fn quota(per_second: NonZeroU32) -> Quota {
    Quota::per_second(per_second)
        .allow_burst(per_second.saturating_mul(NonZeroU32::new(2).expect("two")))
}

impl RateLimits {
    /// `per_key_per_second` requests per second per API key (bursts of twice that); `0` turns
    /// the per-key limit off. Waits are measured on `clock`.
    pub(crate) fn new(per_key_per_second: u32, clock: Clock) -> RateLimits {
        RateLimits {
            per_key: NonZeroU32::new(per_key_per_second)
                .map(|n| RateLimiter::dashmap_with_clock(quota(n), clock.clone())),
            token_exchanges: RateLimiter::dashmap_with_clock(
                quota(NonZeroU32::new(TOKEN_EXCHANGES_PER_SECOND).expect("a positive rate")),
                clock.clone(),
            ),
            clock,
        }
    }

    /// Forgets callers that have been quiet long enough to be back at a full burst (the
    /// periodic job `rate_limit_upkeep`, every [`UPKEEP_INTERVAL`]).
    pub(crate) fn forget_quiet_callers(&self) {
        if let Some(per_key) = &self.per_key {
            per_key.retain_recent();
        }
        self.token_exchanges.retain_recent();
    }

    /// `Err(wait)` when the key has used its rate.
    pub(crate) fn check_key(&self, key_id: &str) -> Result<(), Duration> {
        let Some(per_key) = &self.per_key else {
            return Ok(());
        };
        per_key
            .check_key(&key_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.elapsed()))
    }

    /// `Err(wait)` when the address has used its rate of token exchanges.
    pub(crate) fn check_token_exchange(&self, address: IpAddr) -> Result<(), Duration> {
        self.token_exchanges
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(self.clock.elapsed()))
    }
}

/// Whole seconds to wait, at least one.
fn retry_after(wait: Duration) -> String {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
        .max(1)
        .to_string()
}

/// 429 `rate_limited`, with `Retry-After`.
pub(crate) fn too_many_requests(wait: Duration, what: &str) -> HttpResponse {
    too_many(
        wait,
        "rate_limited",
        format!("too many {what}; retry after the time in Retry-After"),
    )
}

/// 429 with this code and detail, and `Retry-After`.
pub(crate) fn too_many(wait: Duration, code: &'static str, detail: String) -> HttpResponse {
    let mut response = problem_response(StatusCode::TOO_MANY_REQUESTS, code, detail);
    if let Ok(value) = header::HeaderValue::from_str(&retry_after(wait)) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after(Duration::from_millis(1)), "1");
        assert_eq!(retry_after(Duration::from_millis(1500)), "2");
        assert_eq!(retry_after(Duration::from_secs(3)), "3");
        assert_eq!(retry_after(Duration::ZERO), "1");
    }
}
