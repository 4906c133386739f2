//! librdkafka's key partitioners, reimplemented: which partition a keyed record goes to.
//!
//! The producer does not set `partitioner`, so librdkafka's default `consistent_random` applies
//! (CRC-32 of the key); `-X partitioner=…` may choose another. For a non-empty key every
//! partitioner but `random` is a pure function of (key, partition count); the `*_random`
//! variants only randomise empty (`consistent_random`) or absent keys, and the producer always
//! sends a key. [`Partitioner::partition`] returns `None` when the partition is not a function of
//! the key (then a record may be in any partition).

/// A librdkafka `partitioner` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// `random`: any partition.
    Random,
    /// `consistent`: CRC-32 of the key, empty keys included.
    Consistent,
    /// `consistent_random` (librdkafka's default): CRC-32, empty keys random.
    ConsistentRandom,
    /// `murmur2` / `murmur2_random`: the Java producer's murmur2 of the key.
    Murmur2,
    /// `fnv1a` / `fnv1a_random`: FNV-1a of the key.
    Fnv1a,
}

impl Partitioner {
    /// librdkafka's default.
    pub const DEFAULT: Partitioner = Partitioner::ConsistentRandom;

    /// The partitioner named by a `partitioner` property value; `None` for an unknown name
    /// (librdkafka refuses it when the producer is created).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "random" => Self::Random,
            "consistent" => Self::Consistent,
            "consistent_random" => Self::ConsistentRandom,
            "murmur2" | "murmur2_random" => Self::Murmur2,
            "fnv1a" | "fnv1a_random" => Self::Fnv1a,
            _ => return None,
        })
    }

    /// The partition of a record with `key` among `partitions` (> 0), as librdkafka computes it;
    /// `None` when it is chosen at random.
    pub fn partition(self, key: &[u8], partitions: i32) -> Option<i32> {
        let n = u32::try_from(partitions).ok().filter(|&n| n > 0)?;
        let h = match self {
            Self::Random => return None,
            Self::ConsistentRandom if key.is_empty() => return None,
            Self::Consistent | Self::ConsistentRandom => crc32(key),
            Self::Murmur2 => murmur2(key) & 0x7fff_ffff,
            Self::Fnv1a => fnv1a(key),
        };
        Some((h % n) as i32)
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The Java client's murmur2 (seed 0x9747b28c, little-endian words).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u32::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// FNV-1a 32-bit, then the absolute value as a signed integer (Sarama's hash partitioner).
fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h as i32).wrapping_abs() as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rdkafka::bindings as rd;
    use std::ffi::c_void;

    type RdPartitioner = unsafe extern "C" fn(
        *const rd::rd_kafka_topic_t,
        *const c_void,
        usize,
        i32,
        *mut c_void,
        *mut c_void,
    ) -> i32;

    /// librdkafka's own partitioner. The hash partitioners read neither the topic handle nor the
    /// opaques for a non-empty key, so null pointers are fine there.
    fn librdkafka(f: RdPartitioner, key: &[u8], n: i32) -> i32 {
        assert!(!key.is_empty());
        unsafe {
            f(
                std::ptr::null(),
                key.as_ptr().cast(),
                key.len(),
                n,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        }
    }

    #[test]
    fn known_hashes() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Kafka's Java client: Utils.murmur2("21".getBytes()) == -973932308.
        assert_eq!(murmur2(b"21") as i32, -973_932_308);
        // FNV-1a("a") = 0xe40c292c, negative as i32: its absolute value.
        assert_eq!(fnv1a(b"a"), 0x1bf3_d6d4);
    }

    #[test]
    fn random_and_empty_keys_have_no_fixed_partition() {
        assert_eq!(Partitioner::Random.partition(b"k", 3), None);
        assert_eq!(Partitioner::ConsistentRandom.partition(b"", 3), None);
        assert_eq!(Partitioner::Consistent.partition(b"", 3), Some(0));
        assert_eq!(Partitioner::Murmur2.partition(b"k", 0), None);
        assert_eq!(Partitioner::from_name("nope"), None);
        assert_eq!(
            Partitioner::from_name("murmur2_random"),
            Some(Partitioner::Murmur2)
        );
    }

    proptest! {
        #[test]
        fn matches_librdkafka(key in proptest::collection::vec(any::<u8>(), 1..64), n in 1i32..200) {
            prop_assert_eq!(
                Partitioner::Consistent.partition(&key, n),
                Some(librdkafka(rd::rd_kafka_msg_partitioner_consistent, &key, n))
            );
            prop_assert_eq!(
                Partitioner::ConsistentRandom.partition(&key, n),
                Some(librdkafka(rd::rd_kafka_msg_partitioner_consistent_random, &key, n))
            );
            prop_assert_eq!(
                Partitioner::Murmur2.partition(&key, n),
                Some(librdkafka(rd::rd_kafka_msg_partitioner_murmur2, &key, n))
            );
            prop_assert_eq!(
                Partitioner::Fnv1a.partition(&key, n),
                Some(librdkafka(rd::rd_kafka_msg_partitioner_fnv1a, &key, n))
            );
        }
    }
}
