//! Broker requests repeated through the broker's passing states: a new topic's partitions
//! without a leader yet, a leader moving, a group coordinator loading, a request that timed out.
//!
//! [`is_transient`] says which errors pass by themselves; [`Backoff`] spaces the attempts;
//! [`retry`] repeats a request within the time it was given and returns its last outcome, so a
//! caller fails with the same error as without retrying, only later. Every metadata, watermark
//! and committed-offset request that places a client goes through [`retry`], and every commit.

use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode as Code};
use std::time::{Duration, Instant};

/// What an "unknown topic or partition" answer may mean for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The topic may have just been created: for the first [`Topic::CREATION_GRACE`] of the
    /// retries the answer is a broker that has not caught up with it yet, and passes; after
    /// that the topic is missing.
    MayBeNew,
    /// The topic was being read and may have been deleted: the answer is final at once.
    MayBeGone,
}

impl Topic {
    /// How long an unknown topic is asked for again before it counts as missing: long enough
    /// for a broker to learn of a topic just created, short enough for the error about a missing
    /// one to come at once.
    pub const CREATION_GRACE: Duration = Duration::from_secs(2);

    fn grace(self) -> Duration {
        match self {
            Topic::MayBeNew => Self::CREATION_GRACE,
            Topic::MayBeGone => Duration::ZERO,
        }
    }
}

/// True for an error that the same request can outlive, `elapsed` after its first attempt:
/// partitions without a leader or with a moving one, a group coordinator not (yet) available, a
/// request that timed out, and an unknown topic or partition as [`Topic`] says. Anything else
/// (access denied, unreachable brokers, invalid requests) is final.
pub fn is_transient(code: Code, topic: Topic, elapsed: Duration) -> bool {
    match code {
        Code::LeaderNotAvailable
        | Code::NotLeaderForPartition
        | Code::PreferredLeaderNotAvailable
        | Code::ReplicaNotAvailable
        | Code::BrokerNotAvailable
        | Code::FencedLeaderEpoch
        | Code::UnknownLeaderEpoch
        | Code::OffsetNotAvailable
        | Code::NotCoordinator
        | Code::CoordinatorLoadInProgress
        | Code::CoordinatorNotAvailable
        | Code::RequestTimedOut
        | Code::OperationTimedOut => true,
        Code::UnknownTopicOrPartition | Code::UnknownTopic => elapsed < topic.grace(),
        _ => false,
    }
}

/// The waits between attempts: [`Backoff::FIRST`], doubling up to [`Backoff::MAX`]; no wait
/// after which the attempt would have less time than the wait itself (it would only time out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    /// The first wait.
    pub const FIRST: Duration = Duration::from_millis(50);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(1);

    /// The wait before the next attempt when `left` of the time remains; `None` (give up) when
    /// waiting would leave the attempt less time than the wait.
    pub fn next_wait(&mut self, left: Duration) -> Option<Duration> {
        let wait = self.next;
        if wait * 2 > left {
            return None;
        }
        self.next = (wait * 2).min(Self::MAX);
        Some(wait)
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not [transient](is_transient),
/// or `within` has passed; returns its last outcome. `attempt` is given the time left, the bound
/// of its own request.
pub fn retry<T>(
    within: Duration,
    topic: Topic,
    mut attempt: impl FnMut(Duration) -> Result<T, RdError>,
) -> Result<T, RdError> {
    let started = Instant::now();
    let deadline = started + within;
    let mut backoff = Backoff::default();
    loop {
        let err = match attempt(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let transient = err
            .rdkafka_error_code()
            .is_some_and(|c| is_transient(c, topic, started.elapsed()));
        let left = deadline.saturating_duration_since(Instant::now());
        match backoff.next_wait(left) {
            Some(wait) if transient => {
                tracing::debug!("retrying in {wait:?}: {err}");
                std::thread::sleep(wait);
            }
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn leaderless_and_timed_out_requests_are_transient() {
        for code in [
            Code::LeaderNotAvailable,
            Code::NotLeaderForPartition,
            Code::RequestTimedOut,
            Code::OperationTimedOut,
            Code::CoordinatorNotAvailable,
            Code::NotCoordinator,
            Code::OffsetNotAvailable,
        ] {
            assert!(is_transient(code, Topic::MayBeGone, HOUR), "{code:?}");
            assert!(is_transient(code, Topic::MayBeNew, HOUR), "{code:?}");
        }
    }

    #[test]
    fn an_unknown_topic_passes_during_the_creation_grace_only() {
        let grace = Topic::CREATION_GRACE;
        for code in [Code::UnknownTopicOrPartition, Code::UnknownTopic] {
            assert!(
                is_transient(code, Topic::MayBeNew, Duration::ZERO),
                "{code:?}"
            );
            assert!(is_transient(code, Topic::MayBeNew, grace / 2), "{code:?}");
            assert!(!is_transient(code, Topic::MayBeNew, grace), "{code:?}");
            assert!(
                !is_transient(code, Topic::MayBeGone, Duration::ZERO),
                "{code:?}"
            );
        }
    }

    #[test]
    fn access_transport_and_request_errors_are_final() {
        for code in [
            Code::TopicAuthorizationFailed,
            Code::GroupAuthorizationFailed,
            Code::SaslAuthenticationFailed,
            Code::AllBrokersDown,
            Code::BrokerTransportFailure,
            Code::Resolve,
            Code::InvalidPartitions,
            Code::OffsetMetadataTooLarge,
            Code::Fatal,
        ] {
            assert!(
                !is_transient(code, Topic::MayBeNew, Duration::ZERO),
                "{code:?}"
            );
        }
    }

    #[test]
    fn waits_double_up_to_the_cap_and_stop_when_no_time_is_left() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..7)
            .map(|_| b.next_wait(HOUR).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.next_wait(Duration::from_millis(1999)), None);
        assert_eq!(
            Backoff::default().next_wait(Duration::from_millis(99)),
            None
        );
        assert_eq!(
            Backoff::default().next_wait(Duration::from_millis(100)),
            Some(Backoff::FIRST)
        );
    }

    #[test]
    fn a_transient_error_is_retried_until_the_request_succeeds() {
        let calls = Cell::new(0);
        let got = retry(Duration::from_secs(10), Topic::MayBeNew, |_| {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(RdError::MetadataFetch(Code::NotLeaderForPartition))
            } else {
                Ok(7)
            }
        });
        assert_eq!(got.unwrap(), 7);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn a_final_error_is_returned_at_once() {
        let calls = Cell::new(0);
        let got: Result<(), _> = retry(Duration::from_secs(10), Topic::MayBeGone, |_| {
            calls.set(calls.get() + 1);
            Err(RdError::MetadataFetch(Code::TopicAuthorizationFailed))
        });
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(Code::TopicAuthorizationFailed)
        );
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn an_unknown_topic_is_asked_for_during_its_grace_only() {
        let started = Instant::now();
        let calls = Cell::new(0);
        let got: Result<(), _> = retry(Duration::from_secs(60), Topic::MayBeNew, |_| {
            calls.set(calls.get() + 1);
            Err(RdError::MetadataFetch(Code::UnknownTopicOrPartition))
        });
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(Code::UnknownTopicOrPartition)
        );
        assert!(calls.get() >= 2, "{}", calls.get());
        assert!(started.elapsed() >= Topic::CREATION_GRACE);
        // The grace, not the 60 s budget, ended it (the last wait is at most the grace).
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_transient_error_that_lasts_is_returned_once_the_time_is_up() {
        let within = Duration::from_secs(1);
        let mut lefts = Vec::new();
        let got: Result<(), _> = retry(within, Topic::MayBeNew, |left| {
            lefts.push(left);
            Err(RdError::MetadataFetch(Code::LeaderNotAvailable))
        });
        assert_eq!(
            got.unwrap_err().rdkafka_error_code(),
            Some(Code::LeaderNotAvailable)
        );
        // Waits of 50, 100 and 200 ms fit in a second, 400 more would leave too little (fewer
        // on a slow machine); each attempt is given less time than the one before, never more
        // than the whole.
        assert!((2..=4).contains(&lefts.len()), "{lefts:?}");
        assert!(lefts.windows(2).all(|w| w[1] < w[0]), "{lefts:?}");
        assert!(lefts[0] <= within);
    }
}
