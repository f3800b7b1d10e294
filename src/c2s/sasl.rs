//! SASL for client streams (RFC 6120 §6): SCRAM (RFC 5802, RFC 7677) with channel binding
//! (RFC 5929 tls-server-end-point, RFC 9266 tls-exporter) and PLAIN (RFC 4616). Sans-IO.
//!
//! STUB: the API is fixed; the implementation is being written.
