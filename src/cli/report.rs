//! `threatsift report`: the Threat Report and the Actionable Intelligence Report of threat
//! records read from a JSON Lines file, standard input or the output topic.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{config_error, fail, load_settings};
use crate::report::build::build_report;
use crate::report::input::{read_lines, read_topic};
use crate::report::{add_narrative, is_report_date, render_report, ReportFormat};
use crate::topology;

/// `threatsift report`'s arguments.
pub struct ReportArgs {
    /// See `threatsift report --help`.
    pub input: Option<PathBuf>,
    /// See `threatsift report --help`.
    pub topic: Option<String>,
    /// See `threatsift report --help`.
    pub since: Option<std::time::Duration>,
    /// See `threatsift report --help`.
    pub format: String,
    /// See `threatsift report --help`.
    pub output: Option<PathBuf>,
    /// See `threatsift report --help`.
    pub date: Option<String>,
    /// See `threatsift report --help`.
    pub config: Option<PathBuf>,
}

/// Writes the report of the records in a file or a topic.
pub fn report_command(args: ReportArgs) -> ExitCode {
    let settings = match load_settings(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let format: ReportFormat = match args.format.parse() {
        Ok(format) => format,
        Err(e) => return config_error(&format!("--format: {e}")),
    };
    if let Some(date) = &args.date {
        if !is_report_date(date) {
            return config_error(&format!("--date: {date:?} is not YYYY-MM-DD"));
        }
    }
    let records = match (&args.input, &args.topic) {
        (Some(path), _) if path.as_os_str() == "-" => read_lines(std::io::stdin().lock(), "stdin"),
        (Some(path), _) => match std::fs::File::open(path) {
            Ok(file) => read_lines(std::io::BufReader::new(file), &path.display().to_string()),
            Err(e) => return config_error(&format!("cannot read {}: {e}", path.display())),
        },
        (None, Some(topic)) => read_topic(&settings, topic, args.since),
        (None, None) => return config_error(&"give --input FILE or --topic TOPIC"),
    };
    let records = match records {
        Ok(records) => records,
        Err(e) => return fail(&e),
    };
    if !records.skipped.is_empty() {
        eprintln!(
            "threatsift: skipped {} input line(s) that are not threat records; first: {}",
            records.skipped.len(),
            records.skipped[0]
        );
    }
    let mut built = build_report(records.records, args.date.as_deref());
    if settings.report.narrative.enabled {
        match topology::block_on(add_narrative(&mut built, &settings.report.narrative)) {
            Ok(None) => {}
            Ok(Some(error)) => {
                eprintln!("threatsift: report written without the narrative: {error}")
            }
            Err(e) => return fail(&e),
        }
    }
    let text = render_report(&built, format);
    let written = match &args.output {
        Some(path) => std::fs::write(path, text.as_bytes()),
        None => {
            let mut stdout = std::io::stdout().lock();
            std::io::Write::write_all(&mut stdout, text.as_bytes())
                .and_then(|()| std::io::Write::flush(&mut stdout))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}
