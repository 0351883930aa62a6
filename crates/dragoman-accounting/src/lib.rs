//! Accounting: the usage record every request leaves, and what it cost.
//!
//! Pure data and arithmetic, no I/O: the gateway fills a [`UsageRecord`] at the end of each
//! request (whatever the end), [`pricing`] turns its usage buckets into a cost in integer
//! nano-dollars, and the store persists it.

pub mod pricing;
mod record;

pub use record::{Outcome, Owner, UsageRecord};
