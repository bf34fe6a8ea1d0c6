//! The command line: `ocelot [--config FILE]...` runs; `validate` and `components`
//! inspect.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ocelot",
    version,
    about = "Collects logs, metrics and traces; speaks the OpenTelemetry Collector's config."
)]
pub struct Cli {
    /// Config file; repeat to merge several, later ones winning. Without it, the
    /// embedded default config runs.
    #[arg(long = "config", short = 'c', global = true, value_name = "FILE")]
    pub config: Vec<PathBuf>,

    /// Log level (error, warn, info, debug, trace); RUST_LOG, if set, wins.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,

    /// How long shutdown may take to drain queues before what is left is dropped.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg, value_name = "DURATION")]
    pub shutdown_timeout: std::time::Duration,

    /// Where state that survives restarts is kept (file offsets and fingerprints).
    #[arg(long, default_value = "/var/lib/ocelot", value_name = "DIR")]
    pub storage_dir: PathBuf,

    /// Reload the config when a --config file changes (an edit, a replaced file, a
    /// Kubernetes ConfigMap update). SIGHUP and POST /-/reload on the self-metrics
    /// address reload it in any case.
    #[arg(long)]
    pub watch_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks config files; exits 0 when valid, 1 otherwise, printing every problem.
    Validate {
        /// Also check a storage directory: every persistent queue record and state
        /// file, reporting what is corrupt (nothing is changed).
        #[arg(long, value_name = "DIR")]
        storage: Option<PathBuf>,
    },
    /// Lists every component type by kind, with the signals it supports.
    Components,
    /// A live view of a running agent from its self-metrics: items per second per
    /// component, refusals and drops by reason, queue fill, memory level, CPU and RSS.
    /// Quits on q.
    Top {
        /// The agent's self-metrics endpoint: host:port, or an http:// URL with a path
        /// (default /metrics).
        #[arg(long, default_value = "127.0.0.1:8888")]
        url: String,
        /// How often it scrapes.
        #[arg(long, default_value = "1s", value_parser = parse_duration_arg)]
        interval: std::time::Duration,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::types::parse_duration(text)
}
