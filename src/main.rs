//! The `threatsift` binary: parses the command line, loads settings, starts telemetry and hands
//! over to the library. Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use threatsift::FormatRegistry;
use threatsift::{LogFormat, Metrics};

/// Kafka firewall and proxy events in, scored threat records out.
#[derive(Parser)]
#[command(name = "threatsift", version, about)]
struct Cli {
    /// Log line style on stderr (filter with RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Configuration file (TOML) layered over the built-in defaults.
        #[arg(long, env = "THREATSIFT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the whole pipeline on an in-process Kafka with bundled sample events; no setup.
    Demo,
    /// Validate the configuration and print the effective settings, secrets redacted.
    CheckConfig {
        /// Configuration file (TOML) layered over the built-in defaults.
        #[arg(long, env = "THREATSIFT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Write the Threat Report and the Actionable Intelligence Report of threat records.
    Report {
        /// JSON Lines file of threat records (`-` for standard input).
        #[arg(long, conflicts_with = "topic", required_unless_present = "topic")]
        input: Option<PathBuf>,
        /// Read the records from this topic (the output topic) instead.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: only records produced this long ago or later (e.g. 24h).
        #[arg(long, requires = "topic", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// md, json or html.
        #[arg(long, default_value = "md")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The report date (YYYY-MM-DD); default: the newest record's date.
        #[arg(long)]
        date: Option<String>,
        /// Configuration file (Kafka connection, `[report.narrative]`).
        #[arg(long, env = "THREATSIFT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Look addresses up with the configured providers; one threat record per address on stdout.
    Enrich {
        /// Configuration file (TOML) layered over the built-in defaults.
        #[arg(long, env = "THREATSIFT_CONFIG")]
        config: Option<PathBuf>,
        /// IPv4 or IPv6 addresses.
        #[arg(required = true)]
        ips: Vec<String>,
    },
    /// Parse raw events, one per line, and print the addresses found, one JSON object per line.
    Parse {
        /// Read every line as this format instead of detecting it.
        #[arg(long)]
        format: Option<String>,
        /// Configuration file (for `parse.json_ip_fields`).
        #[arg(long, env = "THREATSIFT_CONFIG")]
        config: Option<PathBuf>,
        /// Input file; standard input when absent.
        file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    threatsift::init_logging(cli.log_format);
    match cli.command {
        Command::Run { config } => run_daemon(config),
        Command::Demo => run_demo(),
        Command::CheckConfig { config } => match threatsift::load_settings(config.as_deref()) {
            Ok(settings) => {
                print!("{}", settings.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Report {
            input,
            topic,
            since,
            format,
            output,
            date,
            config,
        } => write_report(ReportArgs {
            input,
            topic,
            since,
            format,
            output,
            date,
            config,
        }),
        Command::Parse {
            format,
            config,
            file,
        } => parse_lines(config, format, file),
        Command::Enrich { config, ips } => enrich(config, &ips),
    }
}

fn enrich(config: Option<PathBuf>, args: &[String]) -> ExitCode {
    let settings = match threatsift::load_settings(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let ips = match threatsift::parse_addresses(args) {
        Ok(ips) => ips,
        Err(e) => return config_error(&e),
    };
    let metrics = match Metrics::new(&prometheus::Registry::new()) {
        Ok(metrics) => Arc::new(metrics),
        Err(e) => return fail(&e),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match runtime.block_on(threatsift::run_enrich(settings, &ips, metrics, &mut out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("threatsift: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn config_error(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("threatsift: {error}");
    ExitCode::from(2)
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn run_daemon(config: Option<PathBuf>) -> ExitCode {
    let settings = match threatsift::load_settings(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let registry = match prometheus::Registry::new_custom(None, None) {
        Ok(registry) => registry,
        Err(e) => return fail(&e),
    };
    let metrics = match Metrics::new(&registry) {
        Ok(metrics) => Arc::new(metrics),
        Err(e) => return fail(&e),
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        threatsift::watch_signals(shutdown.clone());
        threatsift::run(settings, registry, metrics, shutdown).await
    });
    match result {
        Ok(summary) if summary.drained => ExitCode::SUCCESS,
        Ok(summary) if summary.stage_failed => {
            eprintln!("threatsift: a pipeline stage failed; see the log");
            ExitCode::from(1)
        }
        Ok(summary) => {
            eprintln!(
                "threatsift: drain deadline passed with {} message(s) unfinished; they will be read again",
                summary.unfinished
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("threatsift: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run_demo() -> ExitCode {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    let stdout = std::io::stdout();
    match runtime.block_on(threatsift::run_demo(&mut stdout.lock())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("threatsift: {error}");
    ExitCode::from(1)
}

fn parse_lines(config: Option<PathBuf>, format: Option<String>, file: Option<PathBuf>) -> ExitCode {
    let settings = match threatsift::load_settings(config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let registry = match threatsift::RegistryOptions::from_settings(&settings) {
        Ok(options) => FormatRegistry::builtin(options),
        Err(e) => return config_error(&e),
    };
    if let Some(name) = &format {
        if !registry.knows(name) {
            return config_error(&format!(
                "--format: unknown format {name:?}; known formats: {}",
                registry.names().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let input: Box<dyn BufRead> = match &file {
        Some(path) => match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return config_error(&format!("cannot read {}: {e}", path.display())),
        },
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::new(stdout.lock());
    match threatsift::run_parse(&registry, format.as_deref(), input, out) {
        Ok(_) => ExitCode::SUCCESS,
        // A closed stdout (`| head`) ends the run quietly.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

struct ReportArgs {
    input: Option<PathBuf>,
    topic: Option<String>,
    since: Option<std::time::Duration>,
    format: String,
    output: Option<PathBuf>,
    date: Option<String>,
    config: Option<PathBuf>,
}

fn write_report(args: ReportArgs) -> ExitCode {
    use threatsift::ReportFormat;
    let settings = match threatsift::load_settings(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => return config_error(&e),
    };
    let format: ReportFormat = match args.format.parse() {
        Ok(format) => format,
        Err(e) => return config_error(&format!("--format: {e}")),
    };
    if let Some(date) = &args.date {
        if !threatsift::is_report_date(date) {
            return config_error(&format!("--date: {date:?} is not YYYY-MM-DD"));
        }
    }
    let records = match (&args.input, &args.topic) {
        (Some(path), _) if path.as_os_str() == "-" => {
            threatsift::read_lines(std::io::stdin().lock(), "stdin")
        }
        (Some(path), _) => match std::fs::File::open(path) {
            Ok(file) => {
                threatsift::read_lines(std::io::BufReader::new(file), &path.display().to_string())
            }
            Err(e) => return config_error(&format!("cannot read {}: {e}", path.display())),
        },
        (None, Some(topic)) => threatsift::read_topic(&settings, topic, args.since),
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
    let mut built = threatsift::build_report(records.records, args.date.as_deref());
    if settings.report.narrative.enabled {
        let runtime = match runtime() {
            Ok(runtime) => runtime,
            Err(e) => return fail(&e),
        };
        if let Some(error) = runtime.block_on(threatsift::add_narrative(
            &mut built,
            &settings.report.narrative,
        )) {
            eprintln!("threatsift: report written without the narrative: {error}");
        }
    }
    let text = threatsift::render_report(&built, format);
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
