//! Small helpers every layer may use: random ids, date and time, systemd notification.

pub mod datetime;
pub mod logger;
pub mod notify;
pub mod random;
pub mod tar;

pub use random::{random, random_hex};
