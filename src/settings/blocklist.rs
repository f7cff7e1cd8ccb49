//! `[blocklist]`: the plain-text blocklist endpoint for firewalls; `[published]`: the index of
//! published records that withdrawals and the blocklist read (ef-withdraw).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};
use crate::model::Verdict;

/// `[blocklist]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BlocklistSettings {
    /// Address of `/blocklist/ipv4.txt` and `/blocklist/ipv6.txt`; off when empty.
    pub listen: String,
    /// Bearer token the client must send (secret); none when empty.
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub token: Secret,
    /// File holding the token (used when `token` is empty).
    #[serde(default)]
    pub token_file: String,
    /// Lowest verdict listed.
    pub min_verdict: Verdict,
    /// Most addresses per list (newest first).
    pub max_entries: usize,
}

impl BlocklistSettings {
    /// `listen` parses when set; a verdict that is produced; a cap above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        self.listen_addr()?;
        if self.min_verdict < Verdict::Suspicious {
            return Err(SettingsError::invalid(
                "blocklist.min_verdict",
                "a firewall list blocks: use `suspicious` or `malicious`",
            ));
        }
        if self.max_entries == 0 {
            return Err(SettingsError::invalid(
                "blocklist.max_entries",
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// `listen`, parsed; `None` when the endpoint is off.
    pub(crate) fn listen_addr(&self) -> Result<Option<SocketAddr>, SettingsError> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            SettingsError::invalid(
                "blocklist.listen",
                "expected host:port, e.g. 0.0.0.0:9465, or \"\" for off",
            )
        })
    }

    /// The token, from `token` or `token_file`; `None` when neither is set.
    pub(crate) fn resolved_token(&self) -> Result<Option<Secret>, SettingsError> {
        let token = self
            .token
            .resolve(&self.token_file, "blocklist.token_file")?;
        Ok((!token.is_empty()).then_some(token))
    }
}

/// `[published]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedSettings {
    /// Most addresses the index of published records holds.
    pub max_entries: u64,
    /// About the most bytes of records it holds.
    pub max_bytes: u64,
}

impl PublishedSettings {
    /// Both above 0.
    pub(crate) fn validate(&self) -> Result<(), SettingsError> {
        if self.max_entries == 0 {
            return Err(SettingsError::invalid(
                "published.max_entries",
                "must be > 0",
            ));
        }
        if self.max_bytes == 0 {
            return Err(SettingsError::invalid("published.max_bytes", "must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::Settings;

    #[test]
    fn the_endpoint_is_off_by_default_and_its_token_never_printed() {
        let defaults = Settings::from_toml_overrides("").unwrap();
        assert_eq!(defaults.blocklist.listen_addr().unwrap(), None);
        assert_eq!(defaults.blocklist.resolved_token().unwrap(), None);
        let on = Settings::from_toml_overrides(
            "[blocklist]\nlisten = \"127.0.0.1:9465\"\ntoken = \"tok-5e1f\"\n",
        )
        .unwrap();
        assert!(on.blocklist.listen_addr().unwrap().is_some());
        assert_eq!(
            on.blocklist.resolved_token().unwrap().unwrap().expose(),
            "tok-5e1f"
        );
        let printed = on.to_redacted_toml();
        assert!(!printed.contains("tok-5e1f"), "{printed}");
        assert!(!format!("{on:?}").contains("tok-5e1f"));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (overrides, key) in [
            ("[blocklist]\nlisten = \"nowhere\"\n", "blocklist.listen"),
            (
                "[blocklist]\nmin_verdict = \"unknown\"\n",
                "blocklist.min_verdict",
            ),
            ("[blocklist]\nmax_entries = 0\n", "blocklist.max_entries"),
            ("[published]\nmax_bytes = 0\n", "published.max_bytes"),
        ] {
            let error = Settings::from_toml_overrides(overrides).unwrap_err();
            assert!(error.to_string().contains(key), "{overrides}: {error}");
        }
    }
}
