#!/usr/bin/env python3
"""Stand-in for /usr/bin/roost in the boot test until the real server is merged
(tests/boot/run.sh --placeholder). NOT a server: just enough of roost's command line, of
sd_notify and of XMPP (STARTTLS or direct TLS, SASL PLAIN, bind) to exercise the unit, the
package and the test client the way the real binary will be. Certificate: the throwaway one
the host made in /srv/boot-test, or --cert/--key. Users: a text file in the data dir.
"""

import base64
import os
import re
import signal
import socket
import ssl
import sys
import threading

# Stands for the self-signed certificate the real roost makes when given no --cert/--key.
CERT = "/srv/boot-test/cert-a.pem"
KEY = "/srv/boot-test/key-a.pem"


def opt(args, name, default):
    return args[args.index(name) + 1] if name in args else default


def users_file(args):
    return os.path.join(opt(args, "--data-dir", "./roost-data"), "placeholder-users.txt")


def notify(state):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), path)


def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opt(args, "--cert", CERT), opt(args, "--key", KEY))
    return ctx


class Conn:
    def __init__(self, sock, domain, users):
        self.sock, self.domain, self.users, self.buf = sock, domain, users, b""

    def read(self, pattern):
        while True:
            m = re.search(pattern, self.buf, re.S)
            if m:
                self.buf = self.buf[m.end():]
                return m
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def header(self, features):
        self.read(rb"<stream:stream[^>]*>")
        self.sock.sendall(
            (f"<?xml version='1.0'?><stream:stream from='{self.domain}' id='p1' version='1.0' "
             "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
             f"<stream:features>{features}</stream:features>").encode())


SASL = ("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        "<mechanism>PLAIN</mechanism></mechanisms>")


def session(sock, direct, state):
    sock.settimeout(30)
    try:
        if direct:
            sock = state["ctx"].wrap_socket(sock, server_side=True)
        c = Conn(sock, state["domain"], None)
        if not direct:
            c.header("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>")
            c.read(rb"<starttls[^>]*/>")
            sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            c = Conn(state["ctx"].wrap_socket(sock, server_side=True), state["domain"], None)
        c.header(SASL)
        m = c.read(rb"<auth[^>]*>([^<]*)</auth>")
        _, user, password = base64.b64decode(m.group(1)).decode().split("\0")
        with open(users_file(state["args"])) as f:
            ok = f"{user}@{state['domain']}:{password}\n" in f.readlines()
        if not ok:
            c.sock.sendall(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>")
            return
        c.sock.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        c.header("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>")
        m = c.read(rb"<resource>([^<]*)</resource>.*?</iq>")
        jid = f"{user}@{state['domain']}/{m.group(1).decode()}"
        c.sock.sendall(f"<iq type='result' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                       f"<jid>{jid}</jid></bind></iq>".encode())
        c.read(rb"</stream:stream>")
    except (OSError, EOFError, ValueError, ssl.SSLError):
        pass
    finally:
        sock.close()


def serve(args):
    state = {"args": args, "domain": opt(args, "--domain", "localhost"), "ctx": tls_context(args)}
    for port, direct in ((int(opt(args, "--c2s-port", "5222")), False),
                         (int(opt(args, "--c2s-tls-port", "5223")), True)):
        lsock = socket.create_server(("0.0.0.0", port), reuse_port=False)

        def accept(lsock=lsock, direct=direct):
            while True:
                s, _ = lsock.accept()
                threading.Thread(target=session, args=(s, direct, state), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def hup(*_):
        notify("RELOADING=1")
        state["ctx"] = tls_context(args)
        notify("READY=1")

    stop = threading.Event()
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    notify("READY=1")
    while not stop.wait(1):
        pass
    notify("STOPPING=1")
    return 0


def main():
    args = sys.argv[1:]
    cmd = args[0] if args else ""
    if cmd == "serve":
        return serve(args)
    if cmd == "adduser":
        jid = [a for a in args[1:] if not a.startswith("--") and a != opt(args, "--data-dir", "")][0]
        password = sys.stdin.readline().rstrip("\n")
        with open(users_file(args), "a") as f:
            f.write(f"{jid}:{password}\n")
        return 0
    if cmd == "users":
        with open(users_file(args)) as f:
            for line in f:
                print(line.split(":")[0])
        return 0
    print(f"placeholder roost: unsupported {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
