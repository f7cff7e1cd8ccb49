//! The `threatsift` binary: parses the command line, loads settings, starts telemetry and hands
//! over to the library. Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use threatsift::{LogFormat, ReportArgs};

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
        Command::Run { config } => threatsift::run_command(config.as_deref()),
        Command::Demo => threatsift::demo_command(),
        Command::CheckConfig { config } => threatsift::check_config_command(config.as_deref()),
        Command::Report {
            input,
            topic,
            since,
            format,
            output,
            date,
            config,
        } => threatsift::report_command(ReportArgs {
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
        } => threatsift::parse_command(config.as_deref(), format.as_deref(), file.as_deref()),
        Command::Enrich { config, ips } => threatsift::enrich_command(config.as_deref(), &ips),
    }
}
