//! One server-to-server stream's I/O, both directions: the transport, the XML reader
//! (`xml::reader`), headers, elements in `jabber:server`, dialback elements with the `db:`
//! prefix, stream errors and the close.

use crate::net::Transport;
use crate::ns;
use crate::stanza::StreamError;
use crate::xml::framer::Limits;
use crate::xml::reader::{Event, StreamReader};
use crate::xml::{escape, Element, Node};
use std::io;

/// XEP-0220's namespace.
pub const DIALBACK: &str = "jabber:server:dialback";
/// XEP-0220 §2.2: a receiving server that speaks dialback says so in its features.
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// XEP-0288: the receiving server offers bidirectional streams in its features…
pub const BIDI_FEATURE: &str = "urn:xmpp:features:bidi";
/// …and the initiating server asks for one with `<bidi/>` before it authenticates.
pub const BIDI: &str = "urn:xmpp:bidi";

/// What reading a stream gave.
#[derive(Debug)]
pub enum Read {
    Event(Event),
    /// The peer closed the connection, or it broke.
    Eof,
    /// The input deserves this stream error.
    Error(StreamError),
}

pub struct Stream {
    pub transport: Transport,
    reader: StreamReader,
    buf: Vec<u8>,
}

impl Stream {
    pub fn new(transport: Transport, limits: Limits) -> Stream {
        Stream {
            transport,
            reader: StreamReader::new(limits),
            buf: vec![0; 4096],
        }
    }

    /// The next event. Cancel-safe: bytes read stay in the reader.
    pub async fn next(&mut self) -> Read {
        loop {
            match self.reader.next() {
                Ok(Some(e)) => return Read::Event(e),
                Ok(None) => {}
                Err(e) => return Read::Error(e),
            }
            match self.transport.read(&mut self.buf).await {
                Ok(0) | Err(_) => return Read::Eof,
                Ok(n) => self.reader.push(&self.buf[..n]),
            }
        }
    }

    /// Stream restart (after STARTTLS, after SASL success).
    pub fn reset(&mut self) {
        self.reader.reset();
    }

    /// Bytes the peer sent that were not read yet (before a TLS handshake: an injection).
    pub fn has_buffered(&self) -> bool {
        self.reader.has_buffered()
    }

    pub async fn send_raw(&mut self, s: &str) -> io::Result<()> {
        self.transport.write_all(s.as_bytes()).await
    }

    /// Our stream header.
    pub async fn send_header(
        &mut self,
        from: Option<&str>,
        to: Option<&str>,
        id: Option<&str>,
    ) -> io::Result<()> {
        let mut s = String::from(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'",
        );
        for (k, v) in [("from", from), ("to", to), ("id", id)] {
            if let Some(v) = v {
                s.push_str(&format!(" {k}='{}'", escape(v)));
            }
        }
        s.push_str(" version='1.0'>");
        self.send_raw(&s).await
    }

    /// A stanza or a stream-level element, written in `jabber:server`.
    pub async fn send(&mut self, e: &Element) -> io::Result<()> {
        let mut s = String::with_capacity(256);
        to_server_ns(e).write_to(&mut s, ns::SERVER);
        self.send_raw(&s).await
    }

    /// `<db:result/>` or `<db:verify/>` (XEP-0220), with the prefix the header declared.
    pub async fn send_db(
        &mut self,
        name: &str,
        attrs: &[(&str, &str)],
        key: Option<&str>,
    ) -> io::Result<()> {
        let mut s = format!("<db:{name}");
        for (k, v) in attrs {
            s.push_str(&format!(" {k}='{}'", escape(v)));
        }
        match key {
            Some(k) => s.push_str(&format!(">{}</db:{name}>", escape(k))),
            None => s.push_str("/>"),
        }
        self.send_raw(&s).await
    }

    /// Sends a stream error, closes the stream and the connection.
    pub async fn fail(&mut self, err: StreamError) {
        let _ = self.send(&err.to_element()).await;
        self.close().await;
    }

    /// `</stream:stream>` and the connection's end.
    pub async fn close(&mut self) {
        let _ = self.send_raw("</stream:stream>").await;
        self.transport.shutdown().await;
    }
}

/// A copy of `e` with `jabber:client` (what modules build) as `jabber:server`.
pub fn to_server_ns(e: &Element) -> Element {
    swap_ns(e, ns::CLIENT, ns::SERVER)
}

/// A copy of `e` with `jabber:server` (what peers send) as `jabber:client`, as modules
/// expect.
pub fn to_client_ns(e: &Element) -> Element {
    swap_ns(e, ns::SERVER, ns::CLIENT)
}

fn swap_ns(e: &Element, from: &str, to: &str) -> Element {
    let mut out = e.clone();
    fn walk(e: &mut Element, from: &str, to: &str) {
        if e.ns == from {
            e.ns = to.into();
        }
        for n in &mut e.children {
            if let Node::Element(c) = n {
                walk(c, from, to);
            }
        }
    }
    walk(&mut out, from, to);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_change_namespace_with_their_children_only_where_it_is_the_stream_one() {
        let m = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
            .with_child(Element::new("x", "urn:other").with_child(Element::new("y", ns::CLIENT)));
        let mut s = String::new();
        to_server_ns(&m).write_to(&mut s, ns::SERVER);
        assert_eq!(
            s,
            "<message to='a@b'><body>hi</body><x xmlns='urn:other'>\
             <y xmlns='jabber:server'/></x></message>"
        );
        assert_eq!(to_client_ns(&to_server_ns(&m)), m);
    }
}
