//! A criterion measurement of the calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`).
//!
//! The benchmark machine is shared: wall time includes the time a benchmark thread waits for a
//! core, CPU time does not. Figures are reported in the usual time units (criterion's own
//! formatter), so "ns" below means CPU nanoseconds per iteration. Cache and memory-bandwidth
//! contention from other processes still shows; only scheduling delay is removed.

use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// Thread CPU time in nanoseconds.
pub struct ThreadCpuTime;

static WALL: WallTime = WallTime;

/// The calling thread's CPU time so far, in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Same unit (nanoseconds) as wall time, so criterion's duration formatter applies.
        WALL.formatter()
    }
}
