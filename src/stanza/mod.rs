//! Typed views of stanzas and stream elements, one file per feature.

pub mod bookmarks;
pub mod caps;
pub mod data_form;
pub mod disco;
pub mod error;
pub mod pubsub;

pub use error::{ErrorType, StanzaCondition, StanzaError, StreamCondition, StreamError};
