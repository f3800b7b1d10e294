//! router (being written).
