//! Typed views of stanzas and stream elements, one file per feature.

pub mod error;

pub use error::{ErrorType, StanzaCondition, StanzaError, StreamCondition, StreamError};
