//! The integration test binary: every test starts its own application on its own database
//! (a temporary SQLite file, or a fresh PostgreSQL schema when `CUSTODIA_TEST_DATABASE_URL`
//! names a PostgreSQL server) and talks to it over HTTP.

mod audit;
mod auth;
mod authorization;
mod cli;
mod consents;
mod console;
mod crash;
mod epochs;
mod erasure;
mod erasure_files;
mod errors;
mod export;
mod first_start;
mod helpers;
mod holds;
mod identity;
mod import;
mod insights;
mod interactions;
mod keys;
mod legal_basis;
mod limits;
mod logs;
mod migrations;
mod opendsr;
mod ops;
mod paging;
mod policy;
mod races;
mod reports;
mod requests;
mod retention;
mod rotation;
mod scaling;
mod sdks;
mod segments;
mod standards;
mod subjects;
mod tracking;
