#!/usr/bin/env python3
"""Minimal XMPP client login, for the boot test (python3 standard library only).

    xmpp_login.py --port 5223 --direct-tls --domain boot.test --user alice --password pw
    xmpp_login.py --port 5222 --domain boot.test --user alice --password pw   # STARTTLS

Opens a client stream (RFC 6120), does TLS (direct, XEP-0368, or STARTTLS), SASL PLAIN,
restarts the stream and binds a resource. Exit 0 and prints the bound JID on success;
exit 1 with the reason otherwise. With --expect-failure, succeeds only when SASL fails with
<not-authorized/>. The certificate is not verified against a CA (the test ones are
self-signed), but it must name the domain with --check-san, and be the one in a PEM file
with --expect-cert.
"""

import argparse
import base64
import re
import socket
import ssl
import sys
import time

TIMEOUT = 10.0


class Stream:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode())

    def read_until(self, pattern, what):
        """Reads until `pattern` (a regex over the bytes read so far) matches; returns it."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = re.search(pattern, self.buf, re.S)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise SystemExit(f"timeout waiting for {what}; got {self.buf[:500]!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise SystemExit(f"connection closed waiting for {what}; got {self.buf[:500]!r}")
            self.buf += chunk


def open_stream(s, domain):
    s.send(
        f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' "
        "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    )
    s.read_until(rb"<stream:stream[^>]*>", "stream header")
    return s.read_until(rb"<stream:features[^>]*/>|<stream:features.*?</stream:features>", "features").group(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--direct-tls", action="store_true")
    ap.add_argument("--domain", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--resource", default="boot")
    ap.add_argument("--check-san", action="store_true")
    ap.add_argument("--expect-cert", metavar="PEM", help="the server's certificate must be this one")
    ap.add_argument("--expect-failure", action="store_true")
    a = ap.parse_args()

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((a.host, a.port), timeout=TIMEOUT)

    def wrap(sock):
        tls = ctx.wrap_socket(sock, server_hostname=a.domain)
        if a.check_san:
            der = tls.getpeercert(binary_form=True)
            # Without verification Python does not decode the certificate; the DNS name is
            # in the DER as an IA5String, so a byte search is enough for a smoke test.
            if a.domain.encode() not in der:
                raise SystemExit(f"certificate does not name {a.domain}")
        if a.expect_cert:
            with open(a.expect_cert) as f:
                want = ssl.PEM_cert_to_DER_cert(f.read())
            if tls.getpeercert(binary_form=True) != want:
                raise SystemExit(f"the server's certificate is not the one in {a.expect_cert}")
        return tls

    if a.direct_tls:
        s = Stream(wrap(raw))
        features = open_stream(s, a.domain)
    else:
        s = Stream(raw)
        features = open_stream(s, a.domain)
        if b"urn:ietf:params:xml:ns:xmpp-tls" not in features:
            raise SystemExit(f"no STARTTLS offered: {features!r}")
        s.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        s.read_until(rb"<proceed[^>]*/>", "<proceed/>")
        if s.buf:
            raise SystemExit("bytes after <proceed/> before TLS")
        s = Stream(wrap(raw))
        features = open_stream(s, a.domain)

    if not re.search(rb"<mechanism>PLAIN</mechanism>", features):
        raise SystemExit(f"PLAIN not offered over TLS: {features!r}")
    payload = base64.b64encode(f"\0{a.user}\0{a.password}".encode()).decode()
    s.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>")
    result = s.read_until(rb"<success[^>]*/>|<success.*?</success>|<failure.*?</failure>|<failure[^>]*/>", "SASL result").group(0)
    if a.expect_failure:
        if result.startswith(b"<failure") and b"not-authorized" in result:
            print("SASL failure as expected")
            return 0
        raise SystemExit(f"expected <failure><not-authorized/>, got {result!r}")
    if not result.startswith(b"<success"):
        raise SystemExit(f"SASL failed: {result!r}")

    features = open_stream(s, a.domain)
    if b"urn:ietf:params:xml:ns:xmpp-bind" not in features:
        raise SystemExit(f"no resource binding offered: {features!r}")
    s.send(
        "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        f"<resource>{a.resource}</resource></bind></iq>"
    )
    m = s.read_until(rb"<jid>([^<]+)</jid>", "bound JID")
    jid = m.group(1).decode()
    if not jid.startswith(f"{a.user}@{a.domain}/"):
        raise SystemExit(f"bound unexpected JID {jid}")
    s.send("</stream:stream>")
    print(f"bound {jid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
