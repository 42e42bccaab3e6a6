//! Logging: JSON lines when stdout is not a terminal, human-readable when it is.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The JSON line, built without re-serialising the span's fields.
mod json_line;

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops).
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = if json {
        // One line per event, the shape of `fmt().json().flatten_event(true)
        // .with_current_span(true)`, written by `JsonLine` (issue 16: its cost).
        builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json_line::JsonLine)
            .try_init()
    } else {
        builder.try_init()
    };
}
