//! The acknowledgement log: what `kafka-producer --format json` prints, one JSON object per line.
//!
//! ```text
//! {"event":"delivered","id":"…","node":"producer-1","seq":7,"partition":2,"offset":41}
//! {"event":"failed","id":"…","node":"producer-1","seq":8,"error":"…"}
//! ```
//!
//! `delivered`: the broker acknowledged the message at that partition and offset. `failed`: its
//! delivery failed (the message may still have been written, which is what `aborted_read`
//! detects). Blank lines and objects with another `event` are skipped (the format may grow new
//! events); anything else is an error naming the line — except a last line cut short (no newline,
//! not JSON: the producer was killed while writing it), which is skipped and counted.

use super::acked::AckedSetBuilder;
use serde::Deserialize;
use std::borrow::Cow;
use std::io::BufRead;

/// A line of an acknowledgement log that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AckLogError {
    /// Reading failed.
    #[error("{source_name}: {error}")]
    Io {
        /// The log's name (its path, or `-` for standard input).
        source_name: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A line is not a usable event.
    #[error("{source_name}:{line}: {message}")]
    Line {
        /// The log's name.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    node: Option<Cow<'a, str>>,
    seq: Option<u64>,
    partition: Option<i32>,
    offset: Option<i64>,
}

/// What reading a log found besides its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AckLogStats {
    /// Events used.
    pub events: u64,
    /// The last line was cut short and skipped.
    pub truncated: bool,
}

/// Reads one acknowledgement log into `into`. `source_name` names it in errors.
pub fn read_ack_log<R: BufRead>(
    source_name: &str,
    mut reader: R,
    into: &mut AckedSetBuilder,
) -> Result<AckLogStats, AckLogError> {
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    let mut used = 0u64;
    let bad = |line: u64, message: String| AckLogError::Line {
        source_name: source_name.to_string(),
        line,
        message,
    };
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|error| AckLogError::Io {
                source_name: source_name.to_string(),
                error,
            })?;
        if n == 0 {
            return Ok(AckLogStats {
                events: used,
                truncated: false,
            });
        }
        line_no += 1;
        let text = buf.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let l: Line<'_> = match serde_json::from_slice(text) {
            Ok(l) => l,
            Err(e) if e.is_eof() && buf.last() != Some(&b'\n') => {
                return Ok(AckLogStats {
                    events: used,
                    truncated: true,
                });
            }
            Err(e) => return Err(bad(line_no, format!("not a JSON event object ({e})"))),
        };
        let event = l
            .event
            .ok_or_else(|| bad(line_no, "no \"event\" field".into()))?;
        match &*event {
            "delivered" => {
                let (Some(id), Some(partition), Some(offset)) = (&l.id, l.partition, l.offset)
                else {
                    return Err(bad(
                        line_no,
                        "a delivered event needs id, partition and offset".into(),
                    ));
                };
                let (Some(node), Some(seq)) = (&l.node, l.seq) else {
                    return Err(bad(
                        line_no,
                        "a delivered event without node and seq (written by an older kafka-producer?)"
                            .into(),
                    ));
                };
                if offset < 0 || partition < 0 {
                    return Err(bad(
                        line_no,
                        format!(
                            "no broker position ({partition}/{offset}): with acks=0 nothing is acknowledged, so nothing can be verified"
                        ),
                    ));
                }
                into.delivered(id, node, seq, partition, offset);
                used += 1;
            }
            "failed" => {
                let id =
                    l.id.as_deref()
                        .ok_or_else(|| bad(line_no, "a failed event needs an id".into()))?;
                // A send refused before it reached librdkafka has no id to look for.
                if !id.is_empty() {
                    into.failed(id, l.node.as_deref(), l.seq);
                }
                used += 1;
            }
            _ => {}
        }
    }
}

/// Reads the acknowledgement logs at `paths` (`-` is standard input) into one acknowledged set.
/// Also returns the names of the logs whose last line was cut short.
pub fn load_ack_logs<P: AsRef<std::path::Path>>(
    paths: &[P],
) -> Result<(super::AckedSet, Vec<String>), AckLogError> {
    let mut builder = AckedSetBuilder::new();
    let mut truncated = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let (name, stats) = if path.as_os_str() == "-" {
            let name = "standard input".to_string();
            let stats = read_ack_log(&name, std::io::stdin().lock(), &mut builder)?;
            (name, stats)
        } else {
            let name = path.display().to_string();
            let file = std::fs::File::open(path).map_err(|error| AckLogError::Io {
                source_name: name.clone(),
                error,
            })?;
            let stats = read_ack_log(&name, std::io::BufReader::new(file), &mut builder)?;
            (name, stats)
        };
        if stats.truncated {
            truncated.push(name);
        }
    }
    Ok((builder.finish(), truncated))
}
