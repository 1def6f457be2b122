//! The integration's own language, free of I/O: who we send to, what kind of mail it is, what state a
//! subscriber is in, and the ports (traits) through which the outside world is reached.
//!
//! Types here are parsed, not validated: once a value of one of these types exists it is known to be good,
//! and nothing past the edge checks it again.

pub mod automation;
pub mod dedup;
pub mod email;
pub mod engagement;
pub mod events;
pub mod feed;
pub mod ids;
pub mod jobs;
pub mod ports;
pub mod recovery;
pub mod rewrite;
pub mod servers;
pub mod standing;
pub mod stats;
pub mod subscriber;
pub mod text;
pub mod trace;
pub mod tracking;

pub use email::{EmailAddress, InvalidEmail};
pub use ids::{EmailType, InvalidValue, JobId, MessageStream};
pub use subscriber::{SubscriberStatus, SuppressionReason};
