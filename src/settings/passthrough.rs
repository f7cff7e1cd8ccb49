//! `kafka.librdkafka` passthrough properties, and the list-or-comma-separated deserialiser shared
//! by list-valued keys.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// The `kafka.librdkafka` passthrough, as `name=value` entries. Accepted forms: a table
/// (`[kafka.librdkafka]` with `"fetch.min.bytes" = 65536`; the config crate splits dotted names
/// into nested tables, which are joined back here), a list of `"name=value"` strings, or, from
/// the environment, a comma-separated string. Values of secret-looking properties (passwords,
/// secrets, tokens, PEM material) are redacted when printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Passthrough(pub Vec<String>);

impl<'de> Deserialize<'de> for Passthrough {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Leaf {
            Text(String),
            Integer(i64),
            Float(f64),
            Flag(bool),
            Table(BTreeMap<String, Leaf>),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
            Table(BTreeMap<String, Leaf>),
        }
        fn flatten(prefix: &str, table: BTreeMap<String, Leaf>, out: &mut Vec<String>) {
            for (key, leaf) in table {
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                match leaf {
                    Leaf::Text(v) => out.push(format!("{name}={v}")),
                    Leaf::Integer(v) => out.push(format!("{name}={v}")),
                    Leaf::Float(v) => out.push(format!("{name}={v}")),
                    Leaf::Flag(v) => out.push(format!("{name}={v}")),
                    Leaf::Table(inner) => flatten(&name, inner, out),
                }
            }
        }
        Ok(Passthrough(match Form::deserialize(deserializer)? {
            Form::List(items) => items,
            Form::Text(text) if text.trim().is_empty() => Vec::new(),
            Form::Text(text) => text.split(',').map(|t| t.trim().to_owned()).collect(),
            Form::Table(table) => {
                let mut out = Vec::new();
                flatten("", table, &mut out);
                out
            }
        }))
    }
}

/// A list from a file, or a comma-separated string from the environment. Environment values are
/// taken verbatim otherwise (no guessing of numbers or booleans, which would mangle secrets).
pub(super) fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrText {
        List(Vec<String>),
        Text(String),
    }
    Ok(match ListOrText::deserialize(deserializer)? {
        ListOrText::List(items) => items,
        ListOrText::Text(text) if text.trim().is_empty() => Vec::new(),
        ListOrText::Text(text) => text.split(',').map(|t| t.trim().to_owned()).collect(),
    })
}

impl Passthrough {
    fn redacted(&self) -> Vec<String> {
        const SECRET_PARTS: [&str; 5] = ["password", "secret", "token", "pem", "jaas"];
        self.0
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, _))
                    if SECRET_PARTS
                        .iter()
                        .any(|p| name.to_ascii_lowercase().contains(p)) =>
                {
                    format!("{}=<redacted>", name.trim())
                }
                _ => entry.clone(),
            })
            .collect()
    }
}

impl fmt::Debug for Passthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.redacted()).finish()
    }
}

impl Serialize for Passthrough {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}
