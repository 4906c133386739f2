//! A partition's librdkafka queue read a batch at a time, handed out one record at a time.
//!
//! rdkafka's `PartitionQueue::poll` costs a librdkafka queue call per record, and each call reads
//! the clock three times (its timeout, the application's poll interval before and after) on top
//! of rdkafka's own `Instant` per call and an `Arc` per record; on a VM where a clock read is a
//! slow path, that was a tenth of a causal consumer's time. [`BatchQueue`] takes up to
//! [`BATCH`] records per call (`rd_kafka_consume_batch_queue`, without waiting) and hands them
//! out one by one, so the reader's round-robin over partitions is unchanged.
//!
//! An empty queue is not asked again while other partitions have records: librdkafka calls back
//! when it gets records again (it then wakes the reader, too), and [`BatchQueue::poll`] asks it
//! only then — or when told to (`force`: the reader does so whenever a whole pass found
//! nothing, so a missed call-back can delay a partition by one pass, never stall it).
//!
//! Invariants:
//! * records (and end-of-partition and error events) come out in the queue's order, each once;
//! * a record handed out stays valid until the next [`BatchQueue::poll`] (the borrow says so);
//! * librdkafka counts a batch as consumed when it is taken: a partition paused with records
//!   still in the batch resumes fetching after them, and they are handed out when the reader
//!   takes from the partition again — nothing is skipped or read twice. At most [`BATCH`]
//!   records per partition are held beyond librdkafka's own prefetch;
//! * every message taken is destroyed exactly once (handed on, dropped with the queue or freed
//!   at once for an event); the consumer outlives the queue (the queue holds an `Arc` of it).

use super::{LogContext, RecordHeaders};
use rdkafka::bindings as rd;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::types::RDKafkaErrorCode;
use std::ffi::{CStr, CString};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;

/// Records taken from librdkafka per call, at most.
pub const BATCH: usize = 32;

/// The name shown for a header whose name is not UTF-8 (Kafka's header names are strings; no
/// client this crate knows writes others, and no such name is a stamp header).
const NON_UTF8_NAME: &str = "\u{FFFD}";

/// One partition's queue, read in batches (see the module documentation).
pub struct BatchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Messages taken and not yet destroyed, in order; `batch[..at]` were handed out (the last
    /// of them is the current record, or null once destroyed).
    batch: Vec<*mut rd::rd_kafka_message_t>,
    at: usize,
    /// The queue may hold records: set by librdkafka's call-back when the queue gets an entry
    /// while empty, cleared before a batch that empties the queue is taken.
    ready: Arc<AtomicBool>,
    /// rdkafka's handle on the split-off queue: keeps the partition's records off the main queue
    /// and runs the call-back.
    _split: PartitionQueue<LogContext>,
    /// Keeps librdkafka's handle alive as long as the queue and its messages.
    _consumer: Arc<BaseConsumer<LogContext>>,
}

/// A record handed out by [`BatchQueue::poll`], valid until the next call.
pub struct BatchRecord<'a> {
    msg: &'a rd::rd_kafka_message_t,
}

impl BatchQueue {
    /// The queue of `topic`/`partition`, split off the consumer's main queue; `wake` is
    /// unparked whenever the queue gets records while empty. `None` if librdkafka does not know
    /// the partition.
    pub fn new(
        consumer: &Arc<BaseConsumer<LogContext>>,
        topic: &str,
        partition: i32,
        wake: Thread,
    ) -> Option<Self> {
        let c_topic = CString::new(topic).ok()?;
        // SAFETY: the client handle is valid (the consumer is alive) and `c_topic` is a C
        // string; the returned queue holds its own reference, released in `drop`.
        let queue = NonNull::new(unsafe {
            rd::rd_kafka_queue_get_partition(
                consumer.client().native_ptr(),
                c_topic.as_ptr(),
                partition,
            )
        })?;
        let ready = Arc::new(AtomicBool::new(true));
        let split = consumer
            .split_partition_queue(topic, partition)
            .map(|mut q| {
                let ready = Arc::clone(&ready);
                q.set_nonempty_callback(move || {
                    ready.store(true, Ordering::SeqCst);
                    wake.unpark();
                });
                q
            });
        let Some(split) = split else {
            // SAFETY: our own reference, released once.
            unsafe { rd::rd_kafka_queue_destroy(queue.as_ptr()) };
            return None;
        };
        Some(Self {
            queue,
            batch: Vec::with_capacity(BATCH),
            at: 0,
            ready,
            _split: split,
            _consumer: Arc::clone(consumer),
        })
    }

    /// The next record or event, without waiting: from the batch in hand, else from a new batch
    /// taken from librdkafka if the queue may hold one (or `force`); `None` when there is none.
    pub fn poll(&mut self, force: bool) -> Option<Result<BatchRecord<'_>, RdError>> {
        self.release_current();
        if self.at == self.batch.len() {
            if !force && !self.ready.load(Ordering::SeqCst) {
                return None;
            }
            self.refill();
        }
        let msg = *self.batch.get(self.at)?;
        self.at += 1;
        // SAFETY: a message taken from librdkafka and not destroyed yet (see `batch`).
        let m = unsafe { &*msg };
        if m.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Some(Ok(BatchRecord { msg: m }));
        }
        // Mapped as rdkafka maps a partition queue's error events (librdkafka reports a fatal
        // client error on the main queue, which the reader serves as before).
        let err = match m.err {
            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => {
                RdError::PartitionEOF(m.partition)
            }
            e => RdError::MessageConsumption(RDKafkaErrorCode::from(e)),
        };
        self.release_current();
        Some(Err(err))
    }

    /// Destroys the record handed out last, if it is still there.
    fn release_current(&mut self) {
        if let Some(slot) = self.at.checked_sub(1).and_then(|i| self.batch.get_mut(i)) {
            let msg = std::mem::replace(slot, ptr::null_mut());
            if !msg.is_null() {
                // SAFETY: taken from librdkafka, destroyed once (the slot is now null).
                unsafe { rd::rd_kafka_message_destroy(msg) };
            }
        }
    }

    /// Takes up to [`BATCH`] messages (the batch in hand is all handed out and destroyed).
    fn refill(&mut self) {
        self.batch.clear();
        self.at = 0;
        // Cleared first: an entry queued from here on sets it again (the call-back), and one
        // queued before is in this batch. A batch short of BATCH emptied the queue.
        self.ready.store(false, Ordering::SeqCst);
        // SAFETY: the queue is valid, and librdkafka writes at most `capacity` pointers to the
        // buffer, returning how many (or -1 on error).
        unsafe {
            let n = rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                self.batch.as_mut_ptr(),
                self.batch.capacity(),
            );
            if let Ok(n) = usize::try_from(n) {
                self.batch.set_len(n.min(self.batch.capacity()));
            }
        }
        if self.batch.len() == self.batch.capacity() {
            self.ready.store(true, Ordering::SeqCst);
        }
    }
}

impl Drop for BatchQueue {
    fn drop(&mut self) {
        for msg in self.batch.drain(..) {
            if !msg.is_null() {
                // SAFETY: taken from librdkafka and not destroyed (destroyed slots are null).
                unsafe { rd::rd_kafka_message_destroy(msg) };
            }
        }
        // SAFETY: our own reference to the queue, released once.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

impl<'a> BatchRecord<'a> {
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.msg.partition
    }

    /// The offset.
    pub fn offset(&self) -> i64 {
        self.msg.offset
    }

    /// The value (`None` for a null value).
    pub fn payload(&self) -> Option<&'a [u8]> {
        // SAFETY: librdkafka's payload pointer and length, valid as long as the message.
        (!self.msg.payload.is_null()).then(|| unsafe {
            std::slice::from_raw_parts(self.msg.payload.cast::<u8>(), self.msg.len)
        })
    }

    /// The headers, in order.
    pub fn headers(&self) -> RecordHeaders<'a> {
        let mut hdrs: *mut rd::rd_kafka_headers_t = ptr::null_mut();
        // SAFETY: a valid message; the headers (parsed once, cached by librdkafka) live as long
        // as it does.
        let err = unsafe { rd::rd_kafka_message_headers(self.msg, &mut hdrs) };
        if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || hdrs.is_null() {
            return RecordHeaders::collect(0, std::iter::empty());
        }
        // SAFETY: valid headers of a live message.
        let count = unsafe { rd::rd_kafka_header_cnt(hdrs) };
        let each = (0..count).map_while(move |idx| {
            let (mut name, mut value, mut size) = (ptr::null(), ptr::null(), 0usize);
            // SAFETY: as above; `idx` < count.
            let err =
                unsafe { rd::rd_kafka_header_get_all(hdrs, idx, &mut name, &mut value, &mut size) };
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            // SAFETY: a NUL-terminated name and a value of `size` bytes (or null), both owned
            // by the message.
            let name = unsafe { CStr::from_ptr(name) }
                .to_str()
                .unwrap_or(NON_UTF8_NAME);
            let value = (!value.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
            Some((name, value))
        });
        RecordHeaders::collect(count, each)
    }
}
