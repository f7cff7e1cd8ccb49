//! Reports: threat records in, the Threat Report and the Actionable Intelligence Report out
//! (Markdown, HTML, JSON). Pure apart from reading the input; the same records and `--date`
//! give the same bytes.

pub mod build;
pub mod input;
pub mod model;
pub mod narrative;
pub mod render;
