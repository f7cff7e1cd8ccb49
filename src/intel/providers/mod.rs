//! The remote providers, one file each: the client, its settings and its score rules.

pub mod abuseipdb;
pub mod greynoise;
pub mod internetdb;
pub mod otx;
pub mod rdap;
pub mod virustotal;
