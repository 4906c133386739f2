//! Delivery orders for a consumer: causal (vector clocks) and total (Lamport time, node id).

pub mod causal;
pub mod total;
