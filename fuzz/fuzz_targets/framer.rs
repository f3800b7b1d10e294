//! Fuzzes the XML layer (RFC 6120 §11): framer + parser + serializer, through `StreamReader`.
//!
//! Invariants, on arbitrary bytes:
//! - nothing panics;
//! - splitting the input in two (at a point taken from the first byte) changes neither the
//!   events nor the error;
//! - every element read serializes and parses back to the same element.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost::ns;
use roost::xml::framer::Limits;
use roost::xml::parse::{parse_element, Scope};
use roost::xml::reader::{Event, StreamReader};

/// Small limits, so that the fuzzer reaches them with small inputs.
const LIMITS: Limits = Limits {
    max_stanza: 512,
    max_depth: 6,
};

/// Pushes each chunk and takes every event after it, like a connection does; a reset after
/// each header's first element exercises stream restarts.
fn read(chunks: &[&[u8]]) -> Vec<Result<Event, String>> {
    let mut r = StreamReader::new(LIMITS);
    let mut out = Vec::new();
    for c in chunks {
        r.push(c);
        loop {
            match r.next() {
                Ok(Some(e)) => {
                    let restart = matches!(&e, Event::Element(el) if el.name == "restart");
                    out.push(Ok(e));
                    if restart {
                        r.reset();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = read(&[input]);
    let at = input.len() * usize::from(first) / 255;
    let (a, b) = input.split_at(at);
    assert_eq!(read(&[a, b]), whole, "split at {at}");

    let mut default_ns = String::new();
    for event in &whole {
        match event {
            Ok(Event::Header(h)) => default_ns = h.default_ns.clone().unwrap_or_default(),
            Ok(Event::Element(e)) => {
                // Our serializer writes only default namespaces and the `stream` prefix.
                let mut s = String::new();
                e.write_to(&mut s, &default_ns);
                let scope = Scope::new([(None, default_ns.as_str()), (Some("stream"), ns::STREAM)]);
                assert_eq!(parse_element(&scope, s.as_bytes()).as_ref(), Ok(e), "{s}");
            }
            _ => {}
        }
    }
});
