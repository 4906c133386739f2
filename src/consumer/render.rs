//! Rendering of consumer events: JSON lines for programs, text for people.

use super::event::{ConsumerSummary, Delivery, EventSink, ViolationReport};
use crate::delivery::Release;
use crate::envelope::Form;
use crate::violation::ViolationKind;
use std::io::{self, Write};

/// Writes every event as one JSON object per line:
///
/// ```text
/// {"event":"deliver","partition":P,"offset":O,"release":"ready","message":{…the record as received…}}
/// {"event":"violation","kind":"fifo_gap","node":"…","ids":["…"],"detail":"…"}
/// {"event":"violation","kind":"lost_write","node":"…","ids":["…"],"partition":P,"offsets":[O],"detail":"…"}
/// {"event":"malformed","partition":P,"offset":O,"error":"…"}
/// {"event":"summary","received":N,"delivered":N,"malformed":N,"buffered":N,"duplicates":N,
///  "already_delivered":N,"violations":{"fifo_gap":N,…},"concurrent_pairs":N,"without_seq":N,
///  "without_vector":N,"unordered":N,"nodes":{"<id>":{"messages":N,"offset_ms":X}},
///  "verify":{"acknowledged":N,"failed_sends":N,"delivered":N,"unseen":N,"lost":N,
///            "violations":{"lost_write":N,…},"redelivered":N,"unseen_by_partition":{"P":N}}}
/// ```
///
/// `partition` and `offsets` are present on verification violations only; `verify` with
/// `--verify` only.
///
/// `release` is `ready`, `after-skip`, `timeout`, `buffer-full` or `late` (a predecessor that was
/// given up on and turned up afterwards). A JSON envelope is embedded byte for byte (line breaks
/// removed). A header-stamped record is shown as the equivalent envelope, its value as `content`,
/// and the event ends with `"form":"headers","value_encoding":"text"` (the value is UTF-8, embedded
/// as a JSON string) or `"value_encoding":"base64"` (any other bytes, standard base64 with padding).
#[derive(Debug)]
pub struct JsonSink<W: Write> {
    out: W,
    error: Option<io::Error>,
    /// Lines rendered and not yet written to `out`: events are rendered straight into it (no
    /// intermediate copy) and handed to `out` in chunks of at least [`CHUNK`] bytes, and
    /// whatever is left by [`flush`](Self::flush) or [`into_inner`](Self::into_inner).
    pending: Vec<u8>,
}

/// The size at which [`JsonSink`] hands its pending lines to the writer.
const CHUNK: usize = 1 << 16;

impl<W: Write> JsonSink<W> {
    /// A sink writing to `out` (wrap stdout in a `BufWriter`).
    pub fn new(out: W) -> Self {
        Self {
            out,
            error: None,
            pending: Vec::with_capacity(CHUNK + 4096),
        }
    }

    /// The first write error, if any (e.g. a closed pipe); later writes are skipped.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.drain();
        self.error.take()
    }

    /// Writes the pending lines and flushes the writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.drain();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }

    /// The underlying writer, the pending lines written to it (not flushed).
    pub fn into_inner(mut self) -> W {
        self.drain();
        self.out
    }

    /// Hands the pending lines to the writer (dropped after a write error, as later ones are).
    fn drain(&mut self) {
        if self.error.is_none() && !self.pending.is_empty() {
            if let Err(e) = self.out.write_all(&self.pending) {
                self.error = Some(e);
            }
        }
        self.pending.clear();
    }

    /// Renders one line with `f` into the pending lines.
    fn put(&mut self, f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) {
        if self.error.is_some() {
            return;
        }
        // Writing into a Vec fails only for a value serde cannot represent, which these are not.
        let start = self.pending.len();
        if let Err(e) = f(&mut self.pending) {
            self.pending.truncate(start);
            self.error = Some(e);
            return;
        }
        if self.pending.len() >= CHUNK {
            self.drain();
        }
    }
}

/// Standard base64 (RFC 4648, `+/`, `=` padding).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn json_str<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *w, s).map_err(io::Error::from)
}

impl<W: Write> EventSink for JsonSink<W> {
    fn deliver(&mut self, d: &Delivery<'_>) {
        // Written piecewise (numbers with itoa): one line per record, where `write!`'s
        // formatting machinery cost 3.5 % of a causal consumer's instructions.
        self.put(|w| {
            let mut num = itoa::Buffer::new();
            w.extend_from_slice(b"{\"event\":\"deliver\",\"partition\":");
            w.extend_from_slice(num.format(d.partition).as_bytes());
            w.extend_from_slice(b",\"offset\":");
            w.extend_from_slice(num.format(d.offset).as_bytes());
            w.extend_from_slice(b",\"release\":\"");
            w.extend_from_slice(d.release.as_str().as_bytes());
            w.extend_from_slice(b"\",\"message\":");
            match d.form {
                Form::Json => w.extend_from_slice(d.raw),
                // A header-stamped record is shown as the equivalent envelope, its value the
                // content.
                Form::Headers => {
                    let encoding = if d.envelope.encode_with_value(d.raw, w) {
                        "text"
                    } else {
                        d.envelope.encode_with_content(&base64(d.raw), w);
                        "base64"
                    };
                    w.extend_from_slice(b",\"form\":\"headers\",\"value_encoding\":\"");
                    w.extend_from_slice(encoding.as_bytes());
                    w.push(b'"');
                }
            }
            w.extend_from_slice(b"}\n");
            Ok(())
        });
    }

    fn violation(&mut self, v: &ViolationReport<'_>) {
        self.put(|w| {
            write!(
                w,
                "{{\"event\":\"violation\",\"kind\":\"{}\",\"node\":",
                v.kind
            )?;
            json_str(w, v.node)?;
            w.write_all(b",\"ids\":")?;
            serde_json::to_writer(&mut *w, v.ids).map_err(io::Error::from)?;
            if let Some(p) = v.partition {
                write!(w, ",\"partition\":{p},\"offsets\":")?;
                serde_json::to_writer(&mut *w, v.offsets).map_err(io::Error::from)?;
            }
            w.write_all(b",\"detail\":")?;
            json_str(w, v.detail)?;
            w.write_all(b"}\n")
        });
    }

    fn malformed(&mut self, partition: i32, offset: i64, error: &str) {
        self.put(|w| {
            write!(w, "{{\"event\":\"malformed\",\"partition\":{partition},\"offset\":{offset},\"error\":")?;
            json_str(w, error)?;
            w.write_all(b"}\n")
        });
    }

    fn summary(&mut self, s: &ConsumerSummary) {
        #[derive(serde::Serialize)]
        struct Tagged<'a> {
            event: &'static str,
            #[serde(flatten)]
            summary: &'a ConsumerSummary,
        }
        self.put(|w| {
            serde_json::to_writer(
                &mut *w,
                &Tagged {
                    event: "summary",
                    summary: s,
                },
            )
            .map_err(io::Error::from)?;
            w.write_all(b"\n")
        });
    }
}

/// Writes events for people: one line per delivered message and violation on `out`, malformed
/// records as warnings on `diag` (stderr), and a readable report at the end.
#[derive(Debug)]
pub struct TextSink<W: Write, E: Write> {
    out: W,
    diag: E,
    error: Option<io::Error>,
}

impl<W: Write, E: Write> TextSink<W, E> {
    /// A sink writing messages to `out` and diagnostics to `diag`.
    pub fn new(out: W, diag: E) -> Self {
        Self {
            out,
            diag,
            error: None,
        }
    }

    /// The first write error on `out`, if any.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    /// Flushes both writers.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let _ = self.diag.flush();
        self.out.flush()
    }

    /// The underlying writers.
    pub fn into_inner(self) -> (W, E) {
        (self.out, self.diag)
    }

    fn put(&mut self, f: impl FnOnce(&mut W) -> io::Result<()>) {
        if self.error.is_none() {
            if let Err(e) = f(&mut self.out) {
                self.error = Some(e);
            }
        }
    }
}

/// `HH:MM:SS.mmm` (UTC) of a time in seconds since the epoch; `?` for non-finite input.
/// An optional field in a text line: its value, or `-` when the message lacks it.
struct Or<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Or<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

pub(crate) fn clock_time(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".to_string();
    }
    let ms = (secs * 1000.0).round() as i64;
    let day_ms = ms.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

impl<W: Write, E: Write> EventSink for TextSink<W, E> {
    fn deliver(&mut self, d: &Delivery<'_>) {
        let env = d.envelope;
        let ts = &env.timestamp;
        self.put(|w| {
            write!(w, "p{}@{:<6} ", d.partition, d.offset)?;
            if d.release != Release::Ready {
                write!(w, "[{}] ", d.release.as_str())?;
            }
            write!(
                w,
                "{}#{} {} {} L{}",
                ts.node_id,
                Or(env.seq),
                ts.clock_type,
                clock_time(ts.clock_reading()),
                Or(ts.logical_time)
            )?;
            if let Some(vt) = &ts.vector_time {
                w.write_all(b" {")?;
                for (i, (k, v)) in vt.iter().enumerate() {
                    write!(w, "{}{k}:{v}", if i == 0 { "" } else { "," })?;
                }
                w.write_all(b"}")?;
            }
            if let Some(h) = &ts.hybrid_time {
                write!(w, " hlc {}.{}", h.wall_ms, h.logical)?;
            }
            match (d.form, std::str::from_utf8(d.raw)) {
                (Form::Json, _) => writeln!(w, "  {}", env.content.escape_debug()),
                (Form::Headers, Ok(text)) => writeln!(w, "  {}", text.escape_debug()),
                (Form::Headers, Err(_)) => {
                    writeln!(w, "  [{} bytes, base64] {}", d.raw.len(), base64(d.raw))
                }
            }
        });
    }

    fn violation(&mut self, v: &ViolationReport<'_>) {
        self.put(|w| writeln!(w, "!! {} ({}): {}", v.kind, v.node, v.detail));
    }

    fn malformed(&mut self, partition: i32, offset: i64, error: &str) {
        let _ = writeln!(
            self.diag,
            "warning: partition {partition} offset {offset}: malformed record skipped: {error}"
        );
    }

    fn summary(&mut self, s: &ConsumerSummary) {
        self.put(|w| {
            writeln!(w, "── summary ──")?;
            writeln!(w, "received    {:>8}", s.received)?;
            writeln!(w, "delivered   {:>8}", s.delivered)?;
            writeln!(w, "malformed   {:>8}", s.malformed)?;
            write!(w, "buffered    {:>8}", s.buffered)?;
            if s.buffered > 0 {
                write!(
                    w,
                    "  (held at exit: not committed, read again by the next run)"
                )?;
            }
            writeln!(w)?;
            writeln!(w, "duplicates  {:>8}", s.duplicates)?;
            for (label, n) in [
                ("without seq", s.without_seq),
                ("without vector", s.without_vector),
                ("unordered", s.unordered),
            ] {
                if n > 0 {
                    writeln!(w, "{label:<14}{n:>6}")?;
                }
            }
            if s.already_delivered > 0 {
                writeln!(
                    w,
                    "already delivered {:>3}  (read again after the restart; not delivered twice)",
                    s.already_delivered
                )?;
            }
            let total: u64 = s.violations.values().sum();
            writeln!(w, "violations  {total:>8}")?;
            for kind in ViolationKind::CONSUMER.map(ViolationKind::as_str) {
                let n = s.violations.get(kind).copied().unwrap_or(0);
                if n > 0 {
                    writeln!(w, "  {kind:<22}{n:>8}")?;
                }
            }
            writeln!(w, "concurrent pairs {:>3}", s.concurrent_pairs)?;
            if !s.nodes.is_empty() {
                writeln!(w, "nodes:")?;
                let width = s
                    .nodes
                    .keys()
                    .map(|k| k.chars().count())
                    .max()
                    .unwrap_or(0)
                    .min(40);
                for (id, n) in &s.nodes {
                    write!(w, "  {id:<width$}  {:>8} messages", n.messages)?;
                    if let Some(off) = n.offset_ms {
                        write!(w, "  clock offset {off:+.1} ms")?;
                    }
                    writeln!(w)?;
                }
            }
            if let Some(v) = &s.verify {
                verify_report(w, v)?;
            }
            Ok(())
        });
    }
}

/// The `verify` part of the text summary.
fn verify_report<W: Write>(w: &mut W, v: &crate::verify::Report) -> io::Result<()> {
    writeln!(w, "── verify ──")?;
    writeln!(w, "acknowledged {:>8}", v.acknowledged)?;
    writeln!(w, "  delivered  {:>8}", v.delivered)?;
    write!(w, "  unseen     {:>8}", v.unseen)?;
    if v.unseen > 0 {
        write!(w, "  (not reached; by partition:")?;
        for (p, n) in &v.unseen_by_partition {
            write!(w, " p{p}={n}")?;
        }
        write!(w, ")")?;
    }
    writeln!(w)?;
    writeln!(w, "  lost       {:>8}", v.lost)?;
    writeln!(w, "failed sends {:>8}", v.failed_sends)?;
    writeln!(w, "redelivered  {:>8}", v.redelivered)?;
    for (kind, n) in &v.violations {
        writeln!(w, "  {kind:<22}{n:>8}")?;
    }
    let verdict = match v.outcome() {
        crate::verify::Outcome::Loss => "LOSS: acknowledged writes are missing",
        crate::verify::Outcome::Violations => "VIOLATIONS (no acknowledged write missing)",
        crate::verify::Outcome::Incomplete => "INCOMPLETE: no violation, some writes not reached",
        crate::verify::Outcome::Clean => "OK: every acknowledged write was read where acknowledged",
    };
    writeln!(w, "verdict: {verdict}")
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_is_rfc_4648() {
        // The RFC's test vectors.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
