//! A cap on the connections one client address holds open at once
//! (`--max-connections-per-address`).
//!
//! Each accepted connection takes a slot for its peer address, given back when the connection
//! closes (the slot lives in the connection's data). A connection past the cap is not refused
//! at accept (actix has no hook for that); its first request is answered 429
//! `too_many_connections` without being read, and the connection is closed. Connections from a
//! trusted proxy are not counted: the proxy carries many clients, and limiting them is its job.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::Error;

use super::problem::problem_response;
use crate::net::TrustedProxies;

/// Open connections per peer address.
pub(crate) struct ConnectionCounts {
    open: Mutex<HashMap<IpAddr, u32>>,
    cap: u32,
    exempt: TrustedProxies,
}

/// A connection's slot: counted while it lives; `over` when it was past the cap.
pub(crate) struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    address: IpAddr,
    over: bool,
}

impl ConnectionCounts {
    /// Counts for a cap of `cap` connections per address, trusted proxies exempt.
    pub(crate) fn new(cap: u32, exempt: TrustedProxies) -> Arc<ConnectionCounts> {
        Arc::new(ConnectionCounts {
            open: Mutex::new(HashMap::new()),
            cap,
            exempt,
        })
    }

    /// Takes a slot for a new connection from `address`; `None` for an exempt address.
    pub(crate) fn open(self: &Arc<Self>, address: IpAddr) -> Option<ConnectionSlot> {
        if self.exempt.trusts(address) {
            return None;
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        *count += 1;
        Some(ConnectionSlot {
            counts: self.clone(),
            address,
            over: *count > self.cap,
        })
    }

    /// Connections now open from `address`.
    #[cfg(test)]
    pub(crate) fn open_from(&self, address: IpAddr) -> u32 {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&address).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .counts
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Answers every request of a connection past its address's cap with 429, and closes it.
pub(crate) async fn cap(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let over = req
        .conn_data::<ConnectionSlot>()
        .is_some_and(|slot| slot.over);
    if !over {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    }
    let mut refused = problem_response(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
        "this address has too many connections open; reuse one of them or try again later"
            .to_owned(),
    );
    refused
        .head_mut()
        .set_connection_type(actix_web::http::ConnectionType::Close);
    refused.headers_mut().insert(
        actix_web::http::header::RETRY_AFTER,
        actix_web::http::header::HeaderValue::from_static("1"),
    );
    let (request, _) = req.into_parts();
    Ok(ServiceResponse::new(request, refused).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_address_and_given_back() {
        let counts = ConnectionCounts::new(2, TrustedProxies::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = counts.open(a).unwrap();
        let second = counts.open(a).unwrap();
        let third = counts.open(a).unwrap();
        let other = counts.open(b).unwrap();
        assert!(!first.over && !second.over && third.over && !other.over);
        drop(third);
        drop(first);
        assert_eq!(counts.open_from(a), 1);
        assert!(!counts.open(a).unwrap().over);
        drop((second, other));
        assert_eq!(counts.open_from(a), 0);
        assert!(counts.open.lock().unwrap().is_empty());
    }

    #[test]
    fn trusted_proxies_are_not_counted() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let counts = ConnectionCounts::new(1, proxies);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(counts.open(proxy).is_none());
        assert_eq!(counts.open_from(proxy), 0);
    }
}
