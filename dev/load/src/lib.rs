//! Load runs over the local stack. Benchmarks, not tests: they report numbers and check that the counts
//! came out right, they assert nothing about time.

pub mod capacity;
pub mod webhook_load;
