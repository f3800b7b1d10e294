//! A blocking HTTP/1.1 test client over real sockets (HTTPS trusting the server's
//! certificate, or plain TCP), with every read bounded.

use super::{trusting, TestServer, READ_TIMEOUT};
use rustls::pki_types::ServerName;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One HTTP connection.
pub struct HttpClient {
    stream: Box<dyn Stream>,
    /// Bytes read past the last response.
    buf: Vec<u8>,
}

/// A response as received.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl HttpClient {
    /// HTTPS to the server's first HTTPS listener, SNI `name`.
    pub fn https_as(server: &TestServer, name: &str) -> HttpClient {
        let addr = server.running.as_ref().unwrap().https_addrs[0];
        let tcp = tcp(addr);
        let config = trusting(
            server.cert(),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        );
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        HttpClient {
            stream: Box::new(rustls::StreamOwned::new(conn, tcp)),
            buf: Vec::new(),
        }
    }

    /// HTTPS to the server, for its domain.
    pub fn https(server: &TestServer) -> HttpClient {
        HttpClient::https_as(server, &server.domain.clone())
    }

    /// Plain HTTP to `addr`.
    pub fn plain(addr: SocketAddr) -> HttpClient {
        HttpClient {
            stream: Box::new(tcp(addr)),
            buf: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends raw bytes; false if the server had closed the connection.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok() && self.stream.flush().is_ok()
    }

    /// A request with `headers` and `body` (Content-Length added when there is a body or
    /// the method is PUT).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut all = head.into_bytes();
        all.extend_from_slice(body);
        self.send(&all);
        self.response(method == "HEAD")
    }

    /// Reads one response (`head_only`: the answer to HEAD, no body).
    pub fn response(&mut self, head_only: bool) -> HttpResponse {
        self.try_response(head_only).expect("a response")
    }

    /// One response, or `None` if the connection closed first.
    pub fn try_response(&mut self, head_only: bool) -> Option<HttpResponse> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if self.fill() == 0 {
                return None;
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("ASCII head");
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let len: usize = if head_only || status == 100 || status == 204 {
            0
        } else {
            headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .expect("Content-Length")
        };
        while self.buf.len() < len {
            assert!(self.fill() > 0, "connection closed within a body");
        }
        let body = self.buf.drain(..len).collect();
        Some(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// True if the server closes the connection (reads to EOF, bounded).
    pub fn is_closed(&mut self) -> bool {
        loop {
            if self.fill() == 0 {
                return true;
            }
        }
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                panic!("no answer within {READ_TIMEOUT:?}")
            }
            Err(_) => 0,
        }
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    tcp
}
