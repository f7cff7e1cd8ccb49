//! Renderers of a [`Report`](super::model::Report): Markdown, self-contained HTML and JSON.
//! Every string that came from a log or a provider is escaped for the output format.
//!
//! Contract: each renderer is a pure function of the report: no clock, no environment, no hash
//! map iteration, so the same report gives the same bytes. Markdown and HTML show the same
//! sections in the same order (Threat Report, Actionable Intelligence Report ending in the data
//! gaps, then the model-written narrative when there is one) with the wording from `words`;
//! JSON carries the report's fields losslessly under the schema tag [`REPORT_SCHEMA`].

mod escape;
mod html;
mod json;
mod markdown;
mod words;

#[cfg(test)]
mod tests;

pub(crate) use html::html;
pub(crate) use json::json;
pub(crate) use markdown::markdown;
