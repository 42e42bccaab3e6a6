//! The JSON log line, written straight into the subscriber's reused buffer: the same
//! object `tracing_subscriber`'s JSON format writes (`timestamp`, `level`, the event's
//! fields flattened, `target`, and the current span's fields with its `name` under `span`),
//! without what made it cost (issue 16): that format parses the span's fields, already
//! JSON text, back into a `serde_json::Value` map for every line and serialises them
//! again, and builds each event through a serde map. Here the span's stored text is
//! copied as it is, and the event's fields are escaped directly into the line.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (use with `.fmt_fields(JsonFields::new())`, which stores each
/// span's fields as a JSON object).
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        w.write_str("{\"timestamp\":\"")?;
        SystemTime.format_time(&mut w)?;
        write!(w, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            w: &mut w,
            result: Ok(()),
            log_target: None,
        };
        event.record(&mut fields);
        fields.result?;
        // An event from the `log` crate names its real target in a field.
        let target = fields.log_target.take();
        w.write_str(",\"target\":")?;
        string(&mut w, target.as_deref().unwrap_or(meta.target()))?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            w.write_str(",\"span\":{")?;
            let ext = span.extensions();
            if let Some(stored) = ext.get::<FormattedFields<JsonFields>>() {
                // `JsonFields` keeps an object's text: `{"k":v,…}` (or nothing yet).
                let inner = stored
                    .fields
                    .trim()
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .unwrap_or_default();
                if !inner.trim().is_empty() {
                    w.write_str(inner)?;
                    w.write_char(',')?;
                }
            }
            w.write_str("\"name\":")?;
            string(&mut w, span.metadata().name())?;
            w.write_char('}')?;
        }
        w.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    result: fmt::Result,
    log_target: Option<String>,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.w.write_char(',')?;
        string(&mut *self.w, field.name())?;
        self.w.write_char(':')
    }

    fn put(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        if field.name().starts_with("log.") {
            // The `log` crate's metadata, which the standard format leaves out too.
            return;
        }
        self.result = self.key(field).and_then(|()| value(&mut *self.w));
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "log.target" {
            self.log_target = Some(value.to_owned());
            return;
        }
        self.put(field, |w| string(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // Both of Rust's float formats print the shortest digits that read back as the
        // same value, and both are JSON numbers; the exponent form keeps very large and
        // very small ones short, as serde_json does. JSON has no NaN or infinity.
        self.put(field, |w| {
            if !value.is_finite() {
                w.write_str("null")
            } else if value == 0.0 || (1e-5..1e16).contains(&value.abs()) {
                write!(w, "{value}")
            } else {
                write!(w, "{value:e}")
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |w| {
            w.write_char('"')?;
            write!(Escaped(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A JSON string.
fn string(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(&mut *w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what passes through for the inside of a JSON string.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if esc.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(esc)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io;
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    /// The lines `emit` logs through `JsonLine` and through the standard JSON format
    /// (as `telemetry::init` configured it before), parsed.
    fn both(emit: impl Fn()) -> (serde_json::Value, serde_json::Value) {
        let ours = Sink::default();
        let theirs = Sink::default();
        let sub = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine)
            .with_writer(ours.clone())
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        let sub = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(theirs.clone())
            .finish();
        tracing::subscriber::with_default(sub, &emit);
        let parse = |s: &Sink| {
            let bytes = s.0.lock().unwrap().clone();
            let text = String::from_utf8(bytes).unwrap();
            assert!(
                text.ends_with('\n') && text.matches('\n').count() == 1,
                "{text}"
            );
            serde_json::from_str::<serde_json::Value>(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (parse(&ours), parse(&theirs))
    }

    fn without_timestamp(mut v: serde_json::Value) -> serde_json::Value {
        assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        v.as_object_mut().unwrap().remove("timestamp");
        v
    }

    #[test]
    fn the_request_line_is_the_standard_format_s_object() {
        let (ours, theirs) = both(|| {
            let span = tracing::info_span!("request", request_id = %"r-1", method = %"GET", path = %"/api/orgs/a\"b");
            let _g = span.enter();
            tracing::info!(status = 200u16, latency_ms = 1.25, "request finished");
        });
        assert_eq!(without_timestamp(ours), without_timestamp(theirs));
    }

    #[test]
    fn a_line_outside_any_span_has_no_span() {
        let (ours, theirs) = both(|| {
            tracing::warn!(error = %"bad\nthing", count = -3i64, ok = true, "rate limiter unavailable");
        });
        assert!(ours.get("span").is_none());
        assert_eq!(without_timestamp(ours), without_timestamp(theirs));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any text in a message, a field or a span field comes out as the same JSON
        /// value the standard format writes.
        #[test]
        fn any_text_is_escaped_as_serde_json_would(a in "\\PC{0,40}", b in any::<String>(), n in any::<f64>()) {
            let (ours, theirs) = both(|| {
                let span = tracing::info_span!("request", request_id = %a);
                let _g = span.enter();
                tracing::info!(detail = %b, n, "{a}");
            });
            let (ours, theirs) = (without_timestamp(ours), without_timestamp(theirs));
            prop_assert_eq!(&ours["message"], &theirs["message"]);
            prop_assert_eq!(&ours["detail"], &theirs["detail"]);
            prop_assert_eq!(&ours["span"], &theirs["span"]);
            if n.is_finite() {
                // serde_json's default reader may miss the last bit of 17-digit numbers, in
                // either line: the same number within that.
                let (a, b) = (ours["n"].as_f64().unwrap(), theirs["n"].as_f64().unwrap());
                prop_assert!((a - b).abs() <= a.abs() * 1e-15, "{} vs {}", a, b);
            } else {
                prop_assert!(ours["n"].is_null());
            }
        }
    }
}
