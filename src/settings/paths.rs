//! Relative paths in a `--config` file are taken from that file's directory, so a config file
//! and the feeds, key files and mmdb files beside it work from any working directory (a systemd
//! unit, a container, a shell in another directory). Paths from the environment stay relative
//! to the working directory, as a shell user expects.

use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// `kafka` keys that hold a path.
const KAFKA_PATHS: &[&str] = &[
    "sasl_password_file",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
];

/// The file's text with every relative path key made absolute against the file's directory, or
/// `None` when the file cannot be read as TOML (the caller lets the config crate report it).
pub(super) fn file_with_resolved_paths(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let mut table: Table = toml::from_str(&text).ok()?;
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let base = absolute
        .parent()
        .map_or_else(PathBuf::new, Path::to_path_buf);
    resolve_paths(&mut table, &base);
    toml::to_string(&table).ok()
}

/// Makes the path keys of a config file table absolute against `base`.
pub(super) fn resolve_paths(table: &mut Table, base: &Path) {
    if let Some(kafka) = section(table, "kafka") {
        for key in KAFKA_PATHS {
            resolve(kafka.get_mut(*key), base, false);
        }
    }
    if let Some(Value::Array(feeds)) = table.get_mut("feeds") {
        for feed in feeds.iter_mut().filter_map(Value::as_table_mut) {
            resolve(feed.get_mut("path"), base, false);
        }
    }
    if let Some(providers) = section(table, "providers") {
        for (_, provider) in providers.iter_mut() {
            let Some(provider) = provider.as_table_mut() else {
                continue;
            };
            // mmdb takes a comma-separated list of files.
            resolve(provider.get_mut("path"), base, true);
            resolve(provider.get_mut("api_key_file"), base, false);
        }
    }
    if let Some(allowlist) = section(table, "allowlist") {
        resolve(allowlist.get_mut("path"), base, false);
    }
    if let Some(report) = section(table, "report") {
        resolve(report.get_mut("directory"), base, false);
        if let Some(narrative) = section(report, "narrative") {
            resolve(narrative.get_mut("api_key_file"), base, false);
        }
    }
}

fn section<'a>(table: &'a mut Table, name: &str) -> Option<&'a mut Table> {
    table.get_mut(name).and_then(Value::as_table_mut)
}

fn resolve(value: Option<&mut Value>, base: &Path, list: bool) {
    let Some(Value::String(text)) = value else {
        return;
    };
    let resolved: Vec<String> = if list {
        text.split(',')
            .map(|part| resolve_one(part, base))
            .collect()
    } else {
        vec![resolve_one(text, base)]
    };
    *text = resolved.join(",");
}

/// An empty value stays empty (it means "not set"), an absolute one stays as it is.
fn resolve_one(path: &str, base: &Path) -> String {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return path.to_owned();
    }
    if Path::new(trimmed).is_absolute() {
        return trimmed.to_owned();
    }
    base.join(trimmed).display().to_string()
}
