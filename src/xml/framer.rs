//! Sans-IO framing of an XMPP stream (RFC 6120 §4, §11): cuts the byte stream into the stream
//! header, complete top-level (depth-1) elements, and the closing `</stream:stream>`.
//!
//! STUB: the API is fixed; the implementation is being written.

/// Hard limits enforced while framing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest top-level element in bytes (default 256 KiB).
    pub max_stanza: usize,
    /// Deepest nesting inside a top-level element (the element itself is depth 1).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_stanza: 256 * 1024,
            max_depth: 32,
        }
    }
}
