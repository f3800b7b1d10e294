//! Client-to-server connections (being written).
pub mod sasl;
