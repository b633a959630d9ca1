//! Custodia: a privacy- and consent-first customer data platform.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod coalesce;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod export;
pub mod http;
pub mod interactions;
pub mod jobs;
pub mod net;
pub mod page;
pub mod policy;
pub mod population;
pub mod rejection;
pub mod requests;
pub mod retention;
pub mod segments;
pub mod startup;
pub mod store;
pub mod subjects;
pub mod telemetry;
pub mod vault;
