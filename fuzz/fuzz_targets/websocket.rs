//! Fuzzes the WebSocket decoder (RFC 6455 §5) and the message framing of XMPP over it
//! (RFC 7395) on arbitrary bytes from a client.
//!
//! Invariants:
//! - nothing panics;
//! - splitting the input in two (at a point taken from the first byte) changes neither the
//!   pieces decoded nor the error;
//! - every whole message goes through a message reader without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roost::net::websocket::{Decoder, Piece};
use roost::xml::framer::Limits;
use roost::xml::reader::StreamReader;

/// What the decoder made of the input: messages, control frames, the error.
fn decode(chunks: &[&[u8]]) -> (Vec<String>, Option<String>) {
    let mut dec = Decoder::new(600);
    let mut out = Vec::new();
    let mut msg = Vec::new();
    for c in chunks {
        let mut buf = c.to_vec();
        let mut pos = 0;
        loop {
            let (used, piece) = match dec.next(&mut buf[pos..]) {
                Ok(p) => p,
                Err(e) => return (out, Some(e.to_string())),
            };
            let more = matches!(piece, Piece::NeedMore);
            match piece {
                Piece::Data(d) => msg.extend_from_slice(d),
                Piece::End => out.push(format!("msg {:?}", std::mem::take(&mut msg))),
                Piece::Ping(p) => out.push(format!("ping {p:?}")),
                Piece::Pong => out.push("pong".into()),
                Piece::Close(c) => out.push(format!("close {c:?}")),
                Piece::NeedMore => {}
            }
            pos += used;
            assert!(pos <= buf.len());
            if more {
                break;
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let whole = decode(&[input]);
    let at = first as usize % (input.len() + 1);
    let (a, b) = input.split_at(at);
    assert_eq!(decode(&[a, b]), whole, "split at {at}");
    let mut reader = StreamReader::for_messages(Limits {
        max_stanza: 512,
        max_depth: 6,
    });
    for m in &whole.0 {
        if let Some(bytes) = m.strip_prefix("msg ") {
            reader.push(bytes.as_bytes());
            reader.end_message();
            let _ = reader.next();
        }
    }
});
