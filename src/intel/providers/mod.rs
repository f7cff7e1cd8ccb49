//! The remote providers, one file each: the client, its settings and its score rules.

pub(crate) mod abuseipdb;
pub(crate) mod greynoise;
pub(crate) mod internetdb;
pub(crate) mod otx;
pub(crate) mod rdap;
pub(crate) mod virustotal;
