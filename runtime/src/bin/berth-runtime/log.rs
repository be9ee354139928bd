//! Logs in runc's formats, so tools that read runc's --log file (conmon,
//! podman) understand ours: JSON lines {"level","msg","time"} or logrus
//! text `time="…" level=… msg="…"`.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::cli::LogFormat;

pub struct RuncLog {
    pub out: Mutex<Box<dyn Write + Send>>,
    pub format: LogFormat,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.msg, "{value:?}");
        } else {
            let _ = write!(self.extra, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg.push_str(value);
        } else {
            let _ = write!(self.extra, " {}={value}", field.name());
        }
    }
}

pub fn level_name(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl RuncLog {
    pub fn line(&self, level: &str, msg: &str) {
        let time = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let line = match self.format {
            LogFormat::Json => {
                serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
            }
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// The subscriber's handle on the logger main also keeps for fatal errors.
pub struct Shared(pub std::sync::Arc<RuncLog>);

impl<S: Subscriber> Layer<S> for Shared {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        self.0.line(
            level_name(event.metadata().level()),
            &format!("{}{}", f.msg, f.extra),
        );
    }
}
