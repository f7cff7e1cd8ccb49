//! Reports: threat records in, the Threat Report and the Actionable Intelligence Report out
//! (Markdown, HTML, JSON). Pure apart from reading the input; the same records and `--date`
//! give the same bytes.

pub(crate) mod build;
pub(crate) mod input;
pub(crate) mod model;
pub(crate) mod narrative;
pub(crate) mod render;
pub(crate) mod scheduled;

use std::str::FromStr;

use crate::settings::NarrativeSettings;
use model::Report;
use narrative::NarrativeError;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// Markdown.
    Markdown,
    /// JSON (`threatsift.report/1`).
    Json,
    /// One self-contained HTML page.
    Html,
}

impl ReportFormat {
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
        }
    }
}

impl FromStr for ReportFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "md" | "markdown" => Ok(ReportFormat::Markdown),
            "json" => Ok(ReportFormat::Json),
            "html" => Ok(ReportFormat::Html),
            other => Err(format!(
                "unknown report format {other:?}: expected md, json or html"
            )),
        }
    }
}

/// The report in `format`.
pub fn render_report(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Markdown => render::markdown(report),
        ReportFormat::Json => render::json(report),
        ReportFormat::Html => render::html(report),
    }
}

/// Adds the model's narrative when configured; on failure the report stays as it is and the
/// error is returned for the caller to mention.
pub async fn add_narrative(
    report: &mut Report,
    settings: &NarrativeSettings,
) -> Option<NarrativeError> {
    if !settings.enabled {
        return None;
    }
    match narrative::write_narrative(settings, report).await {
        Ok(narrative) => {
            report.narrative = Some(narrative);
            None
        }
        Err(error) => Some(error),
    }
}

/// Whether `date` is `YYYY-MM-DD`.
pub fn is_report_date(date: &str) -> bool {
    let b = date.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}
