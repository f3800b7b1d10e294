//! Typed views of stanzas and stream elements, one file per feature.

pub mod disco;
pub mod error;

pub use error::{ErrorType, StanzaCondition, StanzaError, StreamCondition, StreamError};
