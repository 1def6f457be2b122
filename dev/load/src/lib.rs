//! Load runs over the local stack. Benchmarks, not tests: they report numbers and check that the counts
//! came out right, they assert nothing about time.

pub mod capacity;
pub mod client_load;
pub mod cold_start;
pub mod cost;
pub mod messages;
pub mod recover_load;
pub mod sender_faults;
pub mod sender_load;
pub mod webhook_faults;
pub mod webhook_load;
