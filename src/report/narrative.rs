//! The optional narrative: a short prose summary written by a language model behind an
//! OpenAI-compatible chat completions endpoint.
//!
//! * In: the built [`Report`] (its deterministic facts only: the top threats' scores, evidence,
//!   roles and where they were seen, and the data gaps) and `[report.narrative]`.
//! * Out: a [`Narrative`], or a [`NarrativeError`] — the caller then produces the report
//!   without it. The model never sees raw logs, and its text is escaped like any other outside
//!   text and printed in its own labelled section.
//! * The API key goes only into the `Authorization` header; no error text includes it.

use std::time::Duration;

use serde_json::{json, Value};

use super::model::{Narrative, Report};
use crate::settings::{NarrativeSettings, Secret};

/// Longest narrative kept, in characters.
const MAX_NARRATIVE_CHARS: usize = 4000;

/// Why no narrative was written.
#[derive(Debug, thiserror::Error)]
pub enum NarrativeError {
    /// The key file could not be read, or the client could not be built.
    #[error("narrative not configured: {0}")]
    Config(String),
    /// No answer within `report.narrative.timeout`.
    #[error("the model endpoint did not answer within {0:?}")]
    Timeout(Duration),
    /// Connection refused, TLS failure, reset.
    #[error("cannot reach the model endpoint: {0}")]
    Unreachable(String),
    /// A non-2xx answer.
    #[error("the model endpoint answered HTTP {0}")]
    Status(u16),
    /// 2xx, but not a chat completion with text.
    #[error("the model endpoint's answer is not a chat completion: {0}")]
    InvalidResponse(String),
}

impl NarrativeError {
    /// Short label for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            NarrativeError::Config(_) => "config",
            NarrativeError::Timeout(_) => "timeout",
            NarrativeError::Unreachable(_) => "unreachable",
            NarrativeError::Status(_) => "status",
            NarrativeError::InvalidResponse(_) => "invalid_response",
        }
    }
}

const INSTRUCTIONS: &str = "You are a security operations analyst. Write a short narrative \
(at most 150 words, plain text, no headings) summarising the threat findings given as JSON. \
Use only the facts given; do not invent addresses, numbers or sources. A provider listed under \
data_gaps returned no data: that is a gap in the data, not evidence about any address and not a \
statement about credentials. Never call an address clean or safe.";

/// The facts the model is given: nothing but what the report already says.
pub(crate) fn model_input(report: &Report, max_threats: usize) -> Value {
    let threats: Vec<Value> = report
        .threats
        .iter()
        .take(max_threats)
        .map(|t| {
            json!({
                "ip": t.ip,
                "verdict": t.verdict,
                "severity": t.severity,
                "score": t.score,
                "evidence": t.evidence.iter().map(|r| &r.detail).collect::<Vec<_>>(),
                "roles": t.roles,
                "sightings": t.sightings,
                "seen_by": [&t.seen_in.vendor, &t.seen_in.product],
                "device_action": t.seen_in.action,
            })
        })
        .collect();
    json!({
        "date": report.date,
        "addresses": report.total_count,
        "suspicious_or_malicious": report.suspicious_count,
        "threats": threats,
        "data_gaps": report.data_gaps.iter().map(|g| &g.message).collect::<Vec<_>>(),
    })
}

/// Asks the model for a narrative of `report`.
pub(crate) async fn write_narrative(
    settings: &NarrativeSettings,
    report: &Report,
) -> Result<Narrative, NarrativeError> {
    let key: Secret = settings
        .api_key
        .resolve(&settings.api_key_file, "report.narrative.api_key_file")
        .map_err(|e| NarrativeError::Config(e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .build()
        .map_err(|e| NarrativeError::Config(e.without_url().to_string()))?;
    let url = format!(
        "{}/chat/completions",
        settings.base_url.trim_end_matches('/')
    );
    let body = json!({
        "model": settings.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": model_input(report, settings.max_threats).to_string()},
        ],
    });
    let mut request = client.post(&url).json(&body);
    if !key.is_empty() {
        request = request.bearer_auth(key.expose());
    }
    let response = request
        .send()
        .await
        .map_err(|e| classify(e, settings.timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(NarrativeError::Status(status.as_u16()));
    }
    let answer: Value = response
        .json()
        .await
        .map_err(|e| match classify(e, settings.timeout) {
            NarrativeError::Unreachable(why) => NarrativeError::InvalidResponse(why),
            other => other,
        })?;
    let text = answer
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            NarrativeError::InvalidResponse("no choices[0].message.content text".to_owned())
        })?;
    Ok(Narrative {
        model: settings.model.clone(),
        text: text.chars().take(MAX_NARRATIVE_CHARS).collect(),
    })
}

fn classify(error: reqwest::Error, timeout: Duration) -> NarrativeError {
    if error.is_timeout() {
        NarrativeError::Timeout(timeout)
    } else {
        // `without_url`: the URL is configuration, but keep errors short and free of it.
        NarrativeError::Unreachable(error.without_url().to_string())
    }
}
