//! How a run's delivery order starts: from the checkpoint committed with the offsets, or, when
//! there is none to use, by assuming that what lies before the start was delivered.
//!
//! The shell reads the committed offsets' metadata strings and where each partition starts, and
//! hands them to [`resume`], which decides and prepares the engine (see the rules on
//! [`Resumed`]). Pure: no I/O.

use super::ConsumerEngine;
use crate::consumer::DeliveryMode;
use crate::delivery::Checkpoint;

/// How the delivery order of this run started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// Nothing to continue: arrival mode, or every partition starts at the first retained record.
    Fresh,
    /// The checkpoint stored with the committed offsets was restored: the order continues
    /// exactly where the last commit left it.
    Restored {
        /// Nodes it describes.
        nodes: usize,
    },
    /// Causal mode: everything a node sent before its first message read in this run counts as
    /// delivered (`--history N`, a committed start without a usable checkpoint, a start at the
    /// end). Total mode needs no such assumption and is `Fresh`.
    Assumed {
        /// Why the stored checkpoint was not used (a warning for the user); `None` when none
        /// was expected.
        why: Option<String>,
    },
}

/// Prepares `engine` (before its first record). `metadata`: the metadata strings of the partitions
/// that start at a committed offset (empty when the run does not resume from commits).
/// `from_log_start`: every partition starts at its first retained record.
pub fn resume(engine: &mut ConsumerEngine, metadata: &[&str], from_log_start: bool) -> Resumed {
    let mode = engine.config().mode;
    if mode == DeliveryMode::Arrival {
        return Resumed::Fresh;
    }
    let mut why = None;
    if !metadata.is_empty() {
        match Checkpoint::from_partitions(metadata.iter().copied()) {
            Ok(Some(cp)) => match engine.restore(&cp) {
                Ok(()) => return Resumed::Restored { nodes: cp.nodes() },
                Err(e) => why = Some(e.to_string()),
            },
            Ok(None) => {}
            Err(e) => why = Some(e.to_string()),
        }
    }
    if why.is_none() && from_log_start {
        return Resumed::Fresh;
    }
    if mode == DeliveryMode::Total {
        return match why {
            Some(why) => Resumed::Assumed { why: Some(why) },
            None => Resumed::Fresh,
        };
    }
    engine.assume_delivered_before_start();
    Resumed::Assumed { why }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::EngineConfig;
    use crate::delivery::checkpoint::OMITTED;

    fn engine(mode: DeliveryMode) -> ConsumerEngine {
        ConsumerEngine::new(EngineConfig {
            mode,
            ..EngineConfig::default()
        })
    }

    #[test]
    fn a_stored_checkpoint_is_restored() {
        let mut e = engine(DeliveryMode::Causal);
        let text = "kts1c;A=3;B=2";
        assert_eq!(
            resume(&mut e, &[text, text], false),
            Resumed::Restored { nodes: 2 }
        );
        assert_eq!(e.checkpoint().unwrap().encode(), text);
    }

    #[test]
    fn unusable_metadata_falls_back_with_a_reason() {
        for (metadata, reason) in [
            (vec!["", ""], "no ordering state"),
            (vec!["{\"java\":1}"], "not a kafka-timesync checkpoint"),
            (vec![OMITTED], "did not fit"),
            (vec!["kts1c;A=1", "kts1c;A=2"], "disagree"),
            (vec!["kts1c;A=0"], "corrupt"),
            (vec!["kts1t;-"], "total delivery"),
        ] {
            let mut e = engine(DeliveryMode::Causal);
            match resume(&mut e, &metadata, false) {
                Resumed::Assumed { why: Some(why) } => {
                    assert!(why.contains(reason), "{metadata:?}: {why}")
                }
                other => panic!("{metadata:?}: {other:?}"),
            }
            assert_eq!(e.checkpoint().unwrap().encode(), "kts1c");
        }
    }

    #[test]
    fn no_commit_starts_fresh_at_the_log_start_and_assumes_elsewhere() {
        let mut e = engine(DeliveryMode::Causal);
        assert_eq!(resume(&mut e, &[], true), Resumed::Fresh);
        let mut e = engine(DeliveryMode::Causal);
        assert_eq!(resume(&mut e, &[], false), Resumed::Assumed { why: None });
        let mut e = engine(DeliveryMode::Total);
        assert_eq!(resume(&mut e, &[], false), Resumed::Fresh);
        let mut e = engine(DeliveryMode::Arrival);
        assert_eq!(resume(&mut e, &["kts1c;A=1"], false), Resumed::Fresh);
    }
}
