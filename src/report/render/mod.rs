//! Renderers of a [`Report`](super::model::Report): Markdown, self-contained HTML and JSON.
//! Every string that came from a log or a provider is escaped for the output format.
