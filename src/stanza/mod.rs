//! Typed views of stanzas and stream elements, one file per feature.

pub mod bookmarks;
pub mod caps;
pub mod disco;
pub mod error;
pub mod forms;
pub mod forward;
pub mod hints;
pub mod iq;
pub mod mam;
pub mod message;
pub mod presence;
pub mod pubsub;
pub mod rsm;
pub mod sid;
pub mod upload;

pub use error::{ErrorType, StanzaCondition, StanzaError, StreamCondition, StreamError};
pub use iq::IqType;
pub use message::MessageType;
pub use presence::PresenceType;
