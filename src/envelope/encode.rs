//! The hand-written encoder: compact JSON, byte for byte what serde_json's derived serializer
//! writes for an [`Envelope`] (the property test `encode_matches_serde_json` holds it to that),
//! and faster (BENCHMARKS.md).

use super::Envelope;

/// Appends the compact JSON of `env`, with `content` in place of its own, to `buf`: the fields
/// in declaration order, absent optional ones omitted.
pub(super) fn write_envelope(env: &Envelope, content: &str, buf: &mut Vec<u8>) {
    write_envelope_with(env, content.len(), |buf| write_json_str(buf, content), buf);
}

/// Appends the compact JSON of `env` with a `content` that is the bytes `value` when they are
/// UTF-8, and returns true; appends nothing and returns false otherwise. ASCII text without
/// control characters, `"` or `\\` (the common case) is tested in one pass and copied as is.
pub(super) fn write_envelope_with_value(env: &Envelope, value: &[u8], buf: &mut Vec<u8>) -> bool {
    if is_plain_json_text(value) {
        write_envelope_with(
            env,
            value.len(),
            |buf| {
                buf.push(b'"');
                buf.extend_from_slice(value);
                buf.push(b'"');
            },
            buf,
        );
        return true;
    }
    match std::str::from_utf8(value) {
        Ok(text) => {
            write_envelope(env, text, buf);
            true
        }
        Err(_) => false,
    }
}

/// True when every byte is ASCII from 0x20 up (DEL included) other than `"` and `\\`: the bytes
/// are then UTF-8 and a JSON string holds them unescaped. Tested as [`needs_escaping`] tests.
fn is_plain_json_text(bytes: &[u8]) -> bool {
    /// 1 for the bytes that are not plain.
    const NOT_PLAIN: [u8; 256] = byte_table!(not_plain);
    !any_marked(bytes, not_plain, &NOT_PLAIN)
}

#[inline]
const fn not_plain(b: u8) -> bool {
    (b.wrapping_sub(0x20) >= 0x60) | (b == b'"') | (b == b'\\')
}

/// The table of the `const fn(u8) -> bool` `$f` over every byte, 1 where it holds.
macro_rules! byte_table {
    ($f:ident) => {{
        let mut table = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            table[i] = $f(i as u8) as u8;
            i += 1;
        }
        table
    }};
}
use byte_table;

/// True when `table` marks a byte of `bytes`: a lookup per byte, the short strings' (and short
/// tails') test, where a vectorized one never gets past its scalar prologue.
#[inline]
fn any_in(bytes: &[u8], table: &[u8; 256]) -> bool {
    bytes
        .iter()
        .fold(0u8, |acc, &b| acc | table[usize::from(b)])
        != 0
}

/// [`write_envelope`] with the content string written by `content` (`content_len` bytes before
/// escaping, for the reservation).
fn write_envelope_with(
    env: &Envelope,
    content_len: usize,
    content: impl FnOnce(&mut Vec<u8>),
    buf: &mut Vec<u8>,
) {
    let ts = &env.timestamp;
    let vector_len = ts.vector_time.as_ref().map_or(0, |v| v.len());
    buf.reserve(240 + env.id.len() + content_len + ts.node_id.len() * (1 + vector_len));
    buf.extend_from_slice(b"{\"id\":");
    write_json_str(buf, &env.id);
    buf.extend_from_slice(b",\"content\":");
    content(buf);
    if let Some(seq) = env.seq {
        buf.extend_from_slice(b",\"seq\":");
        write_u64(buf, seq);
    }
    buf.extend_from_slice(b",\"timestamp\":{\"node_id\":");
    write_json_str(buf, &ts.node_id);
    buf.extend_from_slice(b",\"timestamp\":");
    write_f64(buf, ts.timestamp);
    buf.extend_from_slice(b",\"clock_type\":\"");
    // Clock type names are lower-case ASCII letters: nothing to escape.
    buf.extend_from_slice(ts.clock_type.as_str().as_bytes());
    buf.push(b'"');
    if let Some(physical) = ts.physical_time {
        buf.extend_from_slice(b",\"physical_time\":");
        write_f64(buf, physical);
    }
    if let Some(logical) = ts.logical_time {
        buf.extend_from_slice(b",\"logical_time\":");
        write_u64(buf, logical);
    }
    if let Some(v) = &ts.vector_time {
        buf.extend_from_slice(b",\"vector_time\":{");
        for (i, (node, count)) in v.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write_json_str(buf, node);
            buf.push(b':');
            write_u64(buf, count);
        }
        buf.push(b'}');
    }
    if let Some(h) = &ts.hybrid_time {
        buf.extend_from_slice(b",\"hybrid_time\":{\"wall_ms\":");
        write_u64(buf, h.wall_ms);
        buf.extend_from_slice(b",\"logical\":");
        write_u64(buf, u64::from(h.logical));
        buf.push(b'}');
    }
    if let Some(sim) = ts.simulated_time {
        buf.extend_from_slice(b",\"simulated_time\":");
        write_f64(buf, sim);
    }
    buf.push(b'}');
    if let Some(skew) = env.simulated_skew_ms {
        buf.extend_from_slice(b",\"simulated_skew_ms\":");
        write_f64(buf, skew);
    }
    buf.push(b'}');
}

/// Appends `n` in decimal, as serde_json writes integers.
pub(crate) fn write_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `x` as serde_json writes an `f64`: the shortest round-tripping decimal (`zmij`, with
/// `.0` for integral values), or `null` when it is not finite.
fn write_f64(buf: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        buf.extend_from_slice(b"null");
    }
}

/// True for the bytes a JSON string must escape (branch-free, so a fold over it can vectorize).
#[inline]
const fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Bytes [`write_json_str`] tests per step.
const SCAN: usize = 32;

/// True when a byte of `bytes` needs escaping: [`SCAN`] bytes per step without branches (the
/// compiler vectorizes it), the tail by table.
fn needs_escaping(bytes: &[u8]) -> bool {
    /// 1 for the bytes to escape.
    const ESCAPED: [u8; 256] = byte_table!(needs_escape);
    any_marked(bytes, needs_escape, &ESCAPED)
}

/// True when `marked` holds for a byte of `bytes`: [`SCAN`] bytes per step without branches (the
/// compiler vectorizes the fold), the tail by `table` (1 where `marked` holds).
#[inline(always)]
fn any_marked(bytes: &[u8], marked: impl Fn(u8) -> bool, table: &[u8; 256]) -> bool {
    let mut chunks = bytes.chunks_exact(SCAN);
    for chunk in &mut chunks {
        if chunk.iter().fold(0u8, |acc, &b| acc | u8::from(marked(b))) != 0 {
            return true;
        }
    }
    any_in(chunks.remainder(), table)
}

/// Appends `s` as a JSON string literal, byte for byte what serde_json writes: `"` and `\\`
/// backslash-escaped, `\b \t \n \f \r` as short escapes, other bytes below 0x20 as `\u00xx`
/// (lower-case hex), everything else (DEL and non-ASCII UTF-8 included) copied as is.
///
/// A string with nothing to escape (ids, node ids, most content) is tested in one pass
/// ([`needs_escaping`]) and copied whole; otherwise [`SCAN`] bytes are tested per step and runs
/// with nothing to escape are copied in bulk.
pub(crate) fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.push(b'"');
    // The common case, whatever the length: nothing to escape.
    if !needs_escaping(bytes) {
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..).and_then(|b| b.first_chunk::<SCAN>()) {
            let clean = chunk
                .iter()
                .fold(0u8, |acc, &b| acc | u8::from(needs_escape(b)))
                == 0;
            if clean {
                i += SCAN;
                continue;
            }
        }
        // A short tail, or this chunk holds something to escape: byte by byte.
        let end = (i + SCAN).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x09 => b't',
                0x0a => b'n',
                0x0c => b'f',
                0x0d => b'r',
                0x00..=0x1f => b'u',
                _ => {
                    i += 1;
                    continue;
                }
            };
            buf.extend_from_slice(&bytes[start..i]);
            if short == b'u' {
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            } else {
                buf.extend_from_slice(&[b'\\', short]);
            }
            i += 1;
            start = i;
        }
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}
