//! Local MaxMind DB files (GeoLite2 / DB-IP Lite, ASN and country): ASN, AS organisation and
//! country of an address, without any network request (reference §8, crate `maxminddb` 0.27).
//!
//! * **Files:** `[providers.mmdb] path` names one `.mmdb` file, or several separated by commas
//!   (typically `GeoLite2-ASN.mmdb,GeoLite2-Country.mmdb`); surrounding spaces are trimmed.
//!   Every file is read into memory when the provider is built; an empty path, an unreadable
//!   file or one that is not a MaxMind DB is a settings error naming the path.
//! * **Fields read:** `autonomous_system_number`, `autonomous_system_organization`,
//!   `country.iso_code`, else `registered_country.iso_code` (anycast, satellite). Files are
//!   asked in configured order and the first file giving a field wins, so an ASN and a country
//!   file complement each other. The AS number and organisation are one field: both come from
//!   the first file with a number (an organisation without a number gives way to it), so one
//!   file's number is never paired with another's organisation.
//! * **Out:** `Found` with facts `asn`, `as_org`, `country` (each only when some file has it),
//!   `country_source` (`"country"` or `"registered_country"`: which field the country came
//!   from; it is geolocation, which may differ from the registry country of RDAP) and
//!   `asn_network` (the database prefix holding the ASN record); `Network` gets `asn`,
//!   `as_org` and `country`. An address that no file holds, or whose records have none of
//!   these fields, is `NotFound`. An IPv6 address asked of an IPv4-only file counts as not held
//!   by that file. IPv4-mapped IPv6 is looked up as IPv4.
//!   Text values are cut to one line of at most 120 characters.
//! * **Errors:** a record that does not decode (a corrupt file, or one of another kind whose
//!   records are not maps) is `invalid_response`, naming the file.
//! * **Reload:** [`Mmdb::reload_if_changed`] re-reads all files when any file's modification
//!   time, length or inode changed, and swaps them in only when every file loads; otherwise
//!   the old databases stay in use. Blocking I/O: call it off the async runtime, like
//!   [`super::feeds::LocalFeeds::reload_if_changed`]. Lookups never block on it.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use maxminddb::{MaxMindDbError, Reader};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{LocalProvider, Lookup, ProviderError};
use crate::intel::registry::{always_available, Build, KeyUse, ProviderSpec};
use crate::model::Network;
use crate::settings::{ProviderSettings, SettingsError};

/// Provider name: the `intel` key and metric label.
pub(crate) const NAME: &str = "mmdb";

/// The GeoIP databases, described for the registry: network facts, not evidence.
pub(crate) const SPEC: ProviderSpec = ProviderSpec {
    name: NAME,
    display_name: "GeoIP database",
    key: KeyUse::None,
    build: Build::Local(|s| Ok(std::sync::Arc::new(Mmdb::new(s)?))),
    check: needs_path,
    unavailable: always_available,
    weights: &[],
    score: None,
};

fn needs_path(settings: &ProviderSettings) -> Result<(), SettingsError> {
    if settings.path.trim().is_empty() {
        return Err(SettingsError::invalid(
            "providers.mmdb.path",
            "required when enabled: one or more GeoLite2/DB-IP .mmdb files, comma-separated",
        ));
    }
    Ok(())
}

/// Why a database file could not be loaded; names the file.
#[derive(Debug, thiserror::Error)]
#[error("MaxMind DB {}: {problem}", path.display())]
pub struct MmdbError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (I/O or format).
    pub problem: String,
}

/// The local MaxMind DB provider.
pub struct Mmdb {
    paths: Vec<PathBuf>,
    current: ArcSwap<Vec<Database>>,
    /// Stamps of the files behind `current`; the mutex also serialises reloads.
    loaded: Mutex<Vec<FileStamp>>,
}

/// One loaded file.
struct Database {
    /// File name, for error details.
    name: String,
    reader: Reader<Vec<u8>>,
}

/// The fields this provider reads from a record (ASN and country databases, and the country
/// part of city databases). Other fields are skipped.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct MmdbRecord {
    /// AS number (ASN databases).
    pub autonomous_system_number: Option<u32>,
    /// AS organisation (ASN databases).
    pub autonomous_system_organization: Option<String>,
    /// Geolocated country (country and city databases).
    pub country: Option<MmdbCountry>,
    /// Country where the network is registered.
    pub registered_country: Option<MmdbCountry>,
}

/// The part of a country record this provider reads.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub(crate) struct MmdbCountry {
    /// ISO 3166-1 alpha-2 code.
    pub iso_code: Option<String>,
}

/// What the files said about one address, merged; the first file giving a field wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// AS number.
    pub asn: Option<u32>,
    /// AS organisation.
    pub as_org: Option<String>,
    /// Database prefix of the record that gave the ASN.
    pub asn_network: Option<String>,
    /// Country code.
    pub country: Option<String>,
    /// `"country"` or `"registered_country"`.
    pub country_source: Option<&'static str>,
}

impl Answer {
    /// Adds what `record` (found under `network`) has and this answer lacks.
    pub(crate) fn merge(&mut self, record: MmdbRecord, network: Option<String>) {
        // Bounded like the remote providers' text facts: the file is not ours.
        let org = record
            .autonomous_system_organization
            .map(|org| super::http::short_message(&org))
            .filter(|org| !org.is_empty());
        // The AS number and its organisation come from the same file (README "network"): the
        // first file with a number gives both; an organisation without a number gives way.
        if self.asn.is_none() {
            if let Some(asn) = record.autonomous_system_number {
                self.asn = Some(asn);
                self.as_org = org;
                self.asn_network = network;
            } else if self.as_org.is_none() {
                self.as_org = org;
            }
        }
        if self.country.is_none() {
            let iso = |c: Option<MmdbCountry>| {
                c.and_then(|c| c.iso_code)
                    .map(|code| super::http::short_message(&code))
                    .filter(|code| !code.is_empty())
            };
            if let Some(code) = iso(record.country) {
                self.country = Some(code);
                self.country_source = Some("country");
            } else if let Some(code) = iso(record.registered_country) {
                self.country = Some(code);
                self.country_source = Some("registered_country");
            }
        }
    }

    /// True when no field is known.
    pub(crate) fn is_empty(&self) -> bool {
        self.asn.is_none() && self.as_org.is_none() && self.country.is_none()
    }

    /// The lookup result: `NotFound` when empty, else the facts and network.
    pub(crate) fn into_lookup(self) -> Lookup {
        if self.is_empty() {
            return Lookup::NotFound;
        }
        let mut facts = Map::new();
        if let Some(asn) = self.asn {
            facts.insert("asn".into(), asn.into());
        }
        if let Some(org) = &self.as_org {
            facts.insert("as_org".into(), org.clone().into());
        }
        if let Some(network) = self.asn_network {
            facts.insert("asn_network".into(), network.into());
        }
        if let Some(country) = &self.country {
            facts.insert("country".into(), country.clone().into());
        }
        if let Some(source) = self.country_source {
            facts.insert("country_source".into(), Value::from(source));
        }
        Lookup::Found {
            facts,
            network: Network {
                asn: self.asn,
                as_org: self.as_org,
                country: self.country,
                rir: None,
                cidr: None,
            },
        }
    }
}

impl Mmdb {
    /// The provider from the `[providers.mmdb]` settings; loads every file now.
    pub fn new(settings: &ProviderSettings) -> Result<Self, SettingsError> {
        let invalid = |problem: String| SettingsError::Invalid {
            key: "providers.mmdb.path".to_owned(),
            problem,
        };
        let paths = split_paths(&settings.path);
        if paths.is_empty() {
            return Err(invalid("no .mmdb file configured".to_owned()));
        }
        Mmdb::open(paths).map_err(|e| SettingsError::Unusable {
            key: "providers.mmdb.path".to_owned(),
            source: Box::new(e),
        })
    }

    /// The provider over these files, in this order; loads every file now.
    pub fn open(paths: Vec<PathBuf>) -> Result<Self, MmdbError> {
        let (databases, stamps) = load_all(&paths)?;
        Ok(Mmdb {
            paths,
            current: ArcSwap::from_pointee(databases),
            loaded: Mutex::new(stamps),
        })
    }

    /// The configured files, in lookup order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Re-reads all files when any file's modification time, length or inode changed.
    /// `Ok(true)`: the new databases are in use; `Ok(false)`: nothing changed; on error the old
    /// databases stay in use and the next call tries again. Blocking I/O; concurrent calls are
    /// serialised.
    pub fn reload_if_changed(&self) -> Result<bool, MmdbError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let mut changed = false;
        for (path, old) in self.paths.iter().zip(loaded.iter()) {
            let meta = std::fs::metadata(path).map_err(|e| load_error(path, e))?;
            if FileStamp::of(&meta) != *old {
                changed = true;
                break;
            }
        }
        if !changed {
            return Ok(false);
        }
        let (databases, stamps) = load_all(&self.paths)?;
        self.current.store(Arc::new(databases));
        *loaded = stamps;
        Ok(true)
    }

    fn lookup_ip(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        let ip = ip.to_canonical();
        let databases = self.current.load();
        let mut answer = Answer::default();
        for database in databases.iter() {
            let found = match database.reader.lookup(ip) {
                Ok(found) => found,
                // An IPv6 address asked of an IPv4-only file: not held by this file.
                Err(MaxMindDbError::InvalidInput { .. }) => continue,
                Err(e) => return Err(corrupt(database, &e)),
            };
            if !found.has_data() {
                continue;
            }
            let Some(record) = found
                .decode::<MmdbRecord>()
                .map_err(|e| corrupt(database, &e))?
            else {
                continue;
            };
            let network = found.network().ok().map(|n| n.to_string());
            answer.merge(record, network);
        }
        Ok(answer.into_lookup())
    }
}

impl LocalProvider for Mmdb {
    fn name(&self) -> &'static str {
        NAME
    }

    fn lookup(&self, ip: IpAddr) -> Result<Lookup, ProviderError> {
        self.lookup_ip(ip)
    }

    fn reload_if_changed(&self) -> Result<bool, String> {
        Mmdb::reload_if_changed(self).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for Mmdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let databases = self.current.load();
        let types: Vec<&str> = databases
            .iter()
            .map(|d| d.reader.metadata.database_type.as_str())
            .collect();
        f.debug_struct("Mmdb")
            .field("paths", &self.paths)
            .field("database_types", &types)
            .finish_non_exhaustive()
    }
}

/// The comma-separated paths of the `path` setting, trimmed, empty parts dropped.
pub fn split_paths(setting: &str) -> Vec<PathBuf> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(PathBuf::from)
        .collect()
}

fn corrupt(database: &Database, error: &MaxMindDbError) -> ProviderError {
    ProviderError::InvalidResponse(format!(
        "MaxMind DB {}: {}",
        database.name,
        super::http::short_message(&error.to_string())
    ))
}

/// What identifies a version of a file without reading it (as for local feeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    file_id: (u64, u64),
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            file_id: (meta.dev(), meta.ino()),
        }
    }
}

fn load_error(path: &Path, error: impl fmt::Display) -> MmdbError {
    MmdbError {
        path: path.to_path_buf(),
        problem: error.to_string(),
    }
}

fn load_all(paths: &[PathBuf]) -> Result<(Vec<Database>, Vec<FileStamp>), MmdbError> {
    let mut databases = Vec::with_capacity(paths.len());
    let mut stamps = Vec::with_capacity(paths.len());
    for path in paths {
        let (database, stamp) = load_one(path)?;
        databases.push(database);
        stamps.push(stamp);
    }
    Ok((databases, stamps))
}

/// Reads one file. The stamp is taken from the open file before reading, so a write racing
/// with the read changes the stamp and is picked up by the next reload.
fn load_one(path: &Path) -> Result<(Database, FileStamp), MmdbError> {
    let mut file = File::open(path).map_err(|e| load_error(path, e))?;
    let meta = file.metadata().map_err(|e| load_error(path, e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .map_err(|e| load_error(path, e))?;
    let reader = Reader::from_source(bytes).map_err(|e| load_error(path, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok((Database { name, reader }, FileStamp::of(&meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: serde_json::Value) -> MmdbRecord {
        serde_json::from_value(json).expect("record")
    }

    #[test]
    fn asn_record_maps_to_facts_and_network() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({
                "autonomous_system_number": 64500,
                "autonomous_system_organization": "Example Hosting Ltd"
            })),
            Some("203.0.113.0/24".into()),
        );
        let Lookup::Found { facts, network } = answer.into_lookup() else {
            panic!("not found");
        };
        assert_eq!(
            Value::Object(facts),
            serde_json::json!({
                "asn": 64500,
                "as_org": "Example Hosting Ltd",
                "asn_network": "203.0.113.0/24"
            })
        );
        assert_eq!(network.asn, Some(64500));
        assert_eq!(network.as_org.as_deref(), Some("Example Hosting Ltd"));
        assert_eq!(network.country, None);
    }

    #[test]
    fn the_as_number_keeps_its_own_files_organisation_and_files_complement_each_other() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({"autonomous_system_number": 64500})),
            Some("203.0.113.0/24".into()),
        );
        answer.merge(
            record(serde_json::json!({
                "autonomous_system_number": 64511,
                "autonomous_system_organization": "Second",
                "country": {"iso_code": "NL", "names": {"en": "Netherlands"}}
            })),
            Some("203.0.0.0/16".into()),
        );
        // The first file's number wins and it named no organisation: the second file's
        // organisation belongs to another number and must not be paired with 64500.
        assert_eq!(
            answer,
            Answer {
                asn: Some(64500),
                as_org: None,
                asn_network: Some("203.0.113.0/24".into()),
                country: Some("NL".into()),
                country_source: Some("country"),
            }
        );
    }

    #[test]
    fn an_organisation_without_a_number_gives_way_to_a_later_number_and_its_organisation() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({"autonomous_system_organization": "No Number Org"})),
            None,
        );
        answer.merge(
            record(serde_json::json!({
                "autonomous_system_number": 64511,
                "autonomous_system_organization": "Numbered Org"
            })),
            Some("198.51.100.0/24".into()),
        );
        assert_eq!(answer.asn, Some(64511));
        assert_eq!(answer.as_org.as_deref(), Some("Numbered Org"));
        assert_eq!(answer.asn_network.as_deref(), Some("198.51.100.0/24"));

        // Alone, an organisation without a number is still reported.
        let mut alone = Answer::default();
        alone.merge(
            record(serde_json::json!({"autonomous_system_organization": "No Number Org"})),
            None,
        );
        assert_eq!(
            (alone.asn, alone.as_org.as_deref()),
            (None, Some("No Number Org"))
        );
    }

    #[test]
    fn a_later_files_organisation_never_replaces_the_numbers_own() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({
                "autonomous_system_number": 64500,
                "autonomous_system_organization": "First"
            })),
            None,
        );
        answer.merge(
            record(serde_json::json!({"autonomous_system_organization": "Other"})),
            None,
        );
        assert_eq!(
            (answer.asn, answer.as_org.as_deref()),
            (Some(64500), Some("First"))
        );
    }

    #[test]
    fn registered_country_is_the_fallback_and_says_so() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({
                "country": {},
                "registered_country": {"iso_code": "DE"}
            })),
            None,
        );
        let Lookup::Found { facts, network } = answer.into_lookup() else {
            panic!("not found");
        };
        assert_eq!(facts["country"], "DE");
        assert_eq!(facts["country_source"], "registered_country");
        assert_eq!(network.country.as_deref(), Some("DE"));
    }

    #[test]
    fn a_record_without_our_fields_is_not_found() {
        let mut answer = Answer::default();
        answer.merge(
            record(serde_json::json!({"continent": {"code": "EU"}})),
            Some("192.0.2.0/24".into()),
        );
        assert_eq!(answer.into_lookup(), Lookup::NotFound);
    }

    #[test]
    fn paths_are_split_on_commas() {
        assert_eq!(
            split_paths(" a.mmdb , b.mmdb,,"),
            vec![PathBuf::from("a.mmdb"), PathBuf::from("b.mmdb")]
        );
        assert!(split_paths("  ").is_empty());
    }
}
