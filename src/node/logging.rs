//! Node logs through ROS logging: a `tracing` layer that hands every event to a ROS logger (the
//! binaries pass r2r's, which prints, writes log files and publishes `/rosout`, and applies
//! `--ros-args --log-level`). The library keeps logging with `tracing`; this layer only maps
//! levels and renders each event as one line of text: the message, then `key=value` fields,
//! values as written (no quotes, no debug forms of strings).

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// ROS log severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}

impl Severity {
    /// The severity of a tracing level (trace goes to debug).
    pub fn of(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Warn,
            Level::INFO => Self::Info,
            _ => Self::Debug,
        }
    }
}

/// One event, ready for a ROS logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub severity: Severity,
    /// The message and fields, without NUL bytes (C strings cannot hold them).
    pub text: String,
    /// Source file, when known.
    pub file: String,
    /// Source line, when known.
    pub line: u32,
}

#[derive(Default)]
struct Render {
    message: String,
    fields: String,
}

impl Render {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value}");
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl Visit for Render {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `message` arrives as format_args!, whose Debug is its Display.
        self.field(field, format_args!("{value:?}"));
    }
}

/// Render a tracing event as a [`LogLine`].
pub fn log_line(event: &Event<'_>) -> LogLine {
    let mut r = Render::default();
    event.record(&mut r);
    let meta = event.metadata();
    LogLine {
        severity: Severity::of(meta.level()),
        text: format!("{}{}", r.message, r.fields).replace('\0', ""),
        file: meta.file().unwrap_or("").to_string(),
        line: meta.line().unwrap_or(0),
    }
}

/// A tracing layer that sends every event to `sink` (e.g. r2r's logger).
pub struct RosLogLayer<F> {
    sink: F,
}

impl<F: Fn(LogLine) + Send + Sync + 'static> RosLogLayer<F> {
    /// Send events to `sink`.
    pub fn new(sink: F) -> Self {
        Self { sink }
    }
}

impl<S: Subscriber, F: Fn(LogLine) + Send + Sync + 'static> Layer<S> for RosLogLayer<F> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        (self.sink)(log_line(event));
    }
}

/// The tracing filter for a node: `RUST_LOG` when set, else debug for this crate and the node
/// binaries and warnings for dependencies; the ROS log level then decides what is shown.
pub fn node_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,hlfp=debug,hlfp_node=debug,audio_cue_node=debug")
    })
}
