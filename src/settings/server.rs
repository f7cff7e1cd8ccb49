//! `[server]`: the address of the metrics and health endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[server]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub listen: String,
}

impl ServerSettings {
    /// `listen` parses as `host:port`.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        self.listen_addr()?;
        Ok(())
    }

    /// `listen`, parsed.
    pub(crate) fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.listen.parse().map_err(|_| {
            SettingsError::invalid("server.listen", "expected host:port, e.g. 127.0.0.1:9464")
        })
    }
}
