//! roxmltree behind one function: a frame from the framer → an owned [`Element`].
//!
//! STUB: the API is fixed; the implementation is being written.
