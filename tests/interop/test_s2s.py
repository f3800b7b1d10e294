"""Federation with Debian's Prosody and ejabberd (RFC 6120 s2s): a roost user and users
of the other server subscribe to each other (slixmpp accepts and subscribes back by
itself), chat both ways and ping the other server, in both authentication modes at once:

- `prosody.test`, `ejabberd.test`: certificates from a test CA that both sides trust:
  SASL EXTERNAL both ways (XEP-0178);
- `dialback.test`, `ejdialback.test`: a second host of each with a self-signed
  certificate, whose TLS settings trust another CA, so neither side can validate the
  other: dialback both ways (XEP-0220). ejabberd offers EXTERNAL on that host and refuses
  it (it cannot validate roost's certificate with the other CA): roost then retries with
  dialback on the same stream.

One Prosody and one ejabberd serve all the cases.

Servers find each other by name: each server runs in a private mount namespace with its own
/etc/hosts (every domain on its own loopback address, port 5269) and an /etc/resolv.conf
naming a nameserver that is not there (SRV lookups fail at once and fall back to the host).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import slixmpp

from conftest import (CLIENT_TIMEOUT, InteropClient, RoostServer, ServerError, _make,
                      roost_binary_path)

ROOST_IP, PROSODY_IP, EJABBERD_IP = "127.0.0.2", "127.0.0.3", "127.0.0.4"
ROOST, PROSODY, DIALBACK = "roost.test", "prosody.test", "dialback.test"
EJABBERD, EJDIALBACK = "ejabberd.test", "ejdialback.test"
PROSODY_C2S = EJABBERD_C2S = 15222
T = 15.0


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_cert(dir: Path, name: str, ca: tuple[Path, Path] | None,
              client_auth: bool = False) -> tuple[Path, Path]:
    """A certificate for `name` (and groups.`name`), signed by `ca` or self-signed; for
    TLS servers only (as Let's Encrypt issues them since 2026), or clients too."""
    key, crt, ext = dir / f"{name}.key", dir / f"{name}.crt", dir / f"{name}.ext"
    usage = "serverAuth,clientAuth" if client_auth else "serverAuth"
    ext.write_text(f"subjectAltName=DNS:{name},DNS:groups.{name}\n"
                   f"extendedKeyUsage={usage}\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(dir / f"{name}.csr"), "-subj", f"/CN={name}")
    if ca is None:
        openssl("x509", "-req", "-in", str(dir / f"{name}.csr"), "-signkey", str(key),
                "-days", "30", "-extfile", str(ext), "-out", str(crt))
    else:
        openssl("x509", "-req", "-in", str(dir / f"{name}.csr"), "-CA", str(ca[0]),
                "-CAkey", str(ca[1]), "-CAcreateserial", "-days", "30", "-extfile", str(ext),
                "-out", str(crt))
    return crt, key


def make_ca(dir: Path, name: str) -> tuple[Path, Path]:
    key, crt = dir / f"{name}.key", dir / f"{name}.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


PROSODY_CFG = """
data_path = "{dir}/data"
pidfile = "{dir}/prosody.pid"
log = {{ debug = "{dir}/prosody.log" }}
run_as_root = true
-- Prosody asks libunbound, which reads /etc/hosts only when told to.
unbound = {{ hoststxt = true }}
interfaces = {{ "{ip}" }}
c2s_ports = {{ {c2s} }}
s2s_ports = {{ 5269 }}
c2s_direct_tls_ports = {{ }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "version"; "posix"; "s2s_bidi" }}
daemonize = false
authentication = "internal_hashed"
storage = "internal"
s2s_secure_auth = false
s2s_require_encryption = true
c2s_require_encryption = true
ssl = {{ certificate = "{dir}/{prosody}.crt"; key = "{dir}/{prosody}.key"; cafile = "{ca}" }}
VirtualHost "{prosody}"
    ssl = {{ certificate = "{dir}/{prosody}.crt"; key = "{dir}/{prosody}.key"; cafile = "{ca}" }}
VirtualHost "{dialback}"
    ssl = {{ certificate = "{dir}/{dialback}.crt"; key = "{dir}/{dialback}.key"; cafile = "{other_ca}" }}
"""


class Prosody:
    def __init__(self, dir: Path, wrap: list[str]):
        self.dir, self.wrap = dir, wrap
        self.cfg = dir / "prosody.cfg.lua"
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        p = self.dir / "prosody.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> None:
        out = open(self.dir / "prosody.out", "wb")
        self.proc = subprocess.Popen([*self.wrap, "prosody", "--config", str(self.cfg)],
                                     stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        import socket
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError("prosody exited:\n" + (self.dir / "prosody.out").read_text())
            try:
                socket.create_connection((PROSODY_IP, PROSODY_C2S), 0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise ServerError("prosody did not listen:\n" + self.log()[-4000:])

    def register(self, user: str, host: str, password: str) -> None:
        subprocess.run(["prosodyctl", "--config", str(self.cfg), "register", user, host,
                        password], check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


EJABBERD_CFG = """
loglevel: info
hosts:
  - "{ejabberd}"
  - "{ejdialback}"
certfiles:
  - "{dir}/{ejabberd}.pem"
  - "{dir}/{ejdialback}.pem"
s2s_use_starttls: required
s2s_cafile: "{ca}"
host_config:
  "{ejdialback}":
    s2s_cafile: "{other_ca}"
listen:
  - port: {c2s}
    ip: "{ip}"
    module: ejabberd_c2s
    starttls_required: true
  - port: 5269
    ip: "{ip}"
    module: ejabberd_s2s_in
auth_method: internal
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
modules:
  mod_roster: {{}}
  mod_disco: {{}}
  mod_ping: {{}}
  mod_version: {{}}
  mod_s2s_dialback: {{}}
"""


class Ejabberd:
    """Debian's ejabberd run by `erl` directly, not by ejabberdctl: no Erlang distribution
    (no epmd, no cookie, nothing shared with a system ejabberd), its own config, Mnesia
    spool and log in `dir`. Its users are registered by the start-up expression."""

    def __init__(self, dir: Path, wrap: list[str], users: list[tuple[str, str, str]]):
        self.dir, self.wrap, self.users = dir, wrap, users
        self.proc: subprocess.Popen | None = None

    def log(self) -> str:
        p = self.dir / "ejabberd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def out(self) -> str:
        p = self.dir / "ejabberd.out"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self) -> None:
        import glob
        import os
        apps = glob.glob("/usr/lib/*/ejabberd-*/ebin/ejabberd.app")
        if shutil.which("erl") is None or not apps:
            pytest.fail("ejabberd is not installed (.ci/run installs Debian's ejabberd)",
                        pytrace=False)
        libs = str(Path(apps[0]).parent.parent.parent)
        users = ", ".join(f'{{<<"{u}">>, <<"{h}">>, <<"{p}">>}}' for u, h, p in self.users)
        start = ("{ok, _} = ejabberd:start(), "
                 f"[ok = ejabberd_auth:try_register(U, H, P) || {{U, H, P}} <- [{users}]], "
                 'io:format("ejabberd ready~n").')
        env = dict(os.environ, EJABBERD_CONFIG_PATH=str(self.dir / "ejabberd.yml"),
                   EJABBERD_LOG_PATH=str(self.dir / "ejabberd.log"), ERL_LIBS=libs,
                   ERL_CRASH_DUMP=str(self.dir / "erl_crash.dump"), HOME=str(self.dir))
        out = open(self.dir / "ejabberd.out", "wb")
        self.proc = subprocess.Popen(
            [*self.wrap, "erl", "-noinput", "-noshell", "+K", "true",
             "-mnesia", "dir", f'"{self.dir}/spool"', "-eval", start],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=self.dir)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while "ejabberd ready" not in self.out():
            if self.proc.poll() is not None:
                raise ServerError("ejabberd exited:\n" + self.out()[-4000:])
            if time.monotonic() > deadline:
                raise ServerError("ejabberd did not start:\n" + self.out()[-2000:]
                                  + self.log()[-4000:])
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGTERM: the runtime stops the applications in order (init:stop()).
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    """roost (roost.test), Prosody (prosody.test, dialback.test) and ejabberd
    (ejabberd.test, ejdialback.test), each in a private mount namespace with the test's
    /etc/hosts."""
    if shutil.which("prosody") is None:
        pytest.fail("Prosody is not installed (.ci/run installs Debian's prosody)",
                    pytrace=False)
    base = tmp_path_factory.mktemp("s2s")
    base.chmod(0o755)
    hosts = base / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{ROOST_IP} {ROOST} groups.{ROOST}\n"
                     f"{PROSODY_IP} {PROSODY} {DIALBACK}\n"
                     f"{EJABBERD_IP} {EJABBERD} {EJDIALBACK}\n")
    resolv = base / "resolv.conf"
    # Nothing answers DNS on port 9 of loopback: SRV lookups fail at once.
    resolv.write_text("nameserver 127.0.0.9\noptions timeout:1 attempts:1\n")
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf '
            '&& shift 2 && exec "$@"', "sh", str(hosts), str(resolv)]
    ca, other_ca = make_ca(base, "test-ca"), make_ca(base, "other-ca")
    pdir = base / "prosody"
    (pdir / "data").mkdir(parents=True)
    make_cert(pdir, PROSODY, ca)
    make_cert(pdir, DIALBACK, None)
    (pdir / "prosody.cfg.lua").write_text(PROSODY_CFG.format(
        dir=pdir, ip=PROSODY_IP, c2s=PROSODY_C2S, prosody=PROSODY, dialback=DIALBACK,
        ca=ca[0], other_ca=other_ca[0]))
    prosody = Prosody(pdir, wrap)
    edir = base / "ejabberd"
    (edir / "spool").mkdir(parents=True)
    for name, signer in ((EJABBERD, ca), (EJDIALBACK, None)):
        crt, key = make_cert(edir, name, signer)
        (edir / f"{name}.pem").write_text(crt.read_text() + key.read_text())
    (edir / "ejabberd.yml").write_text(EJABBERD_CFG.format(
        dir=edir, ip=EJABBERD_IP, c2s=EJABBERD_C2S, ejabberd=EJABBERD, ejdialback=EJDIALBACK,
        ca=ca[0], other_ca=other_ca[0]))
    ejabberd = Ejabberd(edir, wrap, [("friend", d, "secret-42") for d in (EJABBERD, EJDIALBACK)])

    wrapper = base / "roost-in-namespace"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(f"'{w}'" for w in wrap)
                       + f" '{roost_binary_path()}' \"$@\"\n")
    wrapper.chmod(0o755)
    rdir = base / "roost" / "data"
    rdir.mkdir(parents=True)
    # ejabberd (Erlang's ssl) refuses EXTERNAL for a certificate without the clientAuth
    # usage ("unsupported certificate purpose"; roost then takes dialback, as with the
    # other CA): roost's has it, so that EXTERNAL is tested with ejabberd too.
    crt, key = make_cert(rdir, ROOST, ca, client_auth=True)
    srv = RoostServer(wrapper, rdir, domain=ROOST,
                      extra_args=["--s2s-port", "5269", "--s2s-tls-port", "5270",
                                  "--s2s-trust", str(ca[0]), "--s2s-idle-timeout", "60"])
    srv.host = ROOST_IP
    # ejabberd starts in the background while Prosody and roost do.
    ejabberd.start()
    try:
        prosody.start()
        try:
            srv.start()
            try:
                ejabberd.wait_ready()
                yield srv, prosody, ejabberd, ca[0]
            finally:
                code = srv.stop()
            assert code == 0, f"roost exited with {code}:\n{srv.log()[-4000:]}"
            assert not srv.problems(), "roost log has errors:\n" + "\n".join(srv.problems())
        finally:
            prosody.stop()
    finally:
        ejabberd.stop()


async def login(jid: str, password: str, host: str, port: int, ca: Path) -> InteropClient:
    client = InteropClient(jid, password)
    for plugin in ("xep_0030", "xep_0092", "xep_0199"):
        client.register_plugin(plugin)
    client.record("message", "presence", "roster_update", "roster_subscription_request")
    client.ca_certs = str(ca)
    client.enable_direct_tls, client.enable_starttls, client.enable_plaintext = (
        False, True, False)
    client.connect(host, port)
    name, data = await client.first_of(["session_start", "connection_failed",
                                        "failed_all_auth", "stream_error", "disconnected"],
                                       CLIENT_TIMEOUT)
    assert name == "session_start", f"{jid}: {name} {data}"
    await client.get_roster()
    client.send_presence()
    return client


async def until(what: str, check, timeout: float = T) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("domain,method", [(PROSODY, "EXTERNAL"), (DIALBACK, "dialback"),
                                           (EJABBERD, "EXTERNAL"), (EJDIALBACK, "dialback")])
async def test_roost_and_remote_users_subscribe_chat_and_ping(federation, domain, method):
    srv, prosody, ejabberd, ca = federation
    mine, my_pw = srv.new_account("mom")
    theirs, their_pw = f"friend@{domain}", "secret-42"
    if domain in (PROSODY, DIALBACK):
        prosody.register("friend", domain, their_pw)
        their_ip, their_c2s, their_dir = PROSODY_IP, PROSODY_C2S, prosody.dir
    else:
        # ejabberd registered its users at start.
        their_ip, their_c2s, their_dir = EJABBERD_IP, EJABBERD_C2S, ejabberd.dir
    mom = await login(mine, my_pw, srv.host, srv.c2s_port, ca)
    # The client trusts its server's certificate: the CA's, or the self-signed one.
    their_ca = their_dir / f"{domain}.crt" if domain in (DIALBACK, EJDIALBACK) else ca
    friend = await login(theirs, their_pw, their_ip, their_c2s, their_ca)
    try:
        # Subscription: slixmpp approves and subscribes back by itself on both sides. The
        # remote server connects first for the EXTERNAL cases, roost for the dialback ones.
        if method == "EXTERNAL":
            friend.send_presence(pto=mine, ptype="subscribe")
        else:
            mom.send_presence(pto=theirs, ptype="subscribe")
        await until("subscription both on roost's side",
                    lambda: mom.client_roster[theirs]["subscription"] == "both")
        await until("subscription both on the remote side",
                    lambda: friend.client_roster[mine]["subscription"] == "both")
        await until("the friend's presence at roost",
                    lambda: friend.boundjid.resource in mom.client_roster.presence(theirs))
        await until("mom's presence at the remote server",
                    lambda: mom.boundjid.resource in friend.client_roster.presence(mine))

        # Chat both ways.
        mom.send_message(mto=theirs, mbody="hello from roost", mtype="chat")
        got = await friend.wait_for("message", lambda m: m["body"] == "hello from roost",
                                    timeout=T)
        assert got["from"].bare == mine
        friend.send_message(mto=mom.boundjid.full, mbody=f"hello from {domain}", mtype="chat")
        got = await mom.wait_for("message", lambda m: m["body"] == f"hello from {domain}",
                                 timeout=T)
        assert got["from"].bare == theirs

        # IQs across: ping and software version of the other server, both ways.
        await mom["xep_0199"].ping(domain, timeout=T)
        version = await mom["xep_0092"].get_version(domain, timeout=T)
        assert version["software_version"]["name"], version
        await friend["xep_0199"].ping(ROOST, timeout=T)
        version = await friend["xep_0092"].get_version(ROOST, timeout=T)
        assert version["software_version"]["name"] == "roost", version

        # A user the remote server does not have: the error comes back across.
        with pytest.raises(slixmpp.exceptions.IqError) as err:
            await mom["xep_0092"].get_version(f"nobody@{domain}/x", timeout=T)
        assert err.value.condition in ("service-unavailable", "item-not-found"), err.value

        # The streams authenticated the way this domain's certificates allow. Prosody
        # asks for a bidirectional stream (XEP-0288) when it connects first and sends on
        # ours when roost does: one connection either way. ejabberd (no XEP-0288) opens
        # its own.
        log = srv.log()
        incoming = rf"incoming s2s {domain} → {ROOST} authenticated \({method}\)"
        outgoing = rf"outgoing s2s {ROOST} → {domain} authenticated \({method}\)"
        if domain == PROSODY:
            wanted = [incoming, rf"bidirectional: stanzas {ROOST} → {domain} go on this stream"]
            assert f"{ROOST} → {domain}: connecting" not in log, log[-6000:]
        elif domain == DIALBACK:
            wanted = [outgoing, rf"bidirectional: stanzas {domain} → {ROOST} come on this stream"]
        else:
            wanted = [outgoing, incoming]
        for line in wanted:
            assert re.search(line, log), f"no '{line}' in:\n" + log[-6000:]
        if domain == EJDIALBACK:
            # ejabberd offered EXTERNAL, refused roost's certificate, and took dialback.
            assert re.search(rf"{ROOST} → {domain}: SASL EXTERNAL refused; trying dialback",
                             log), log[-6000:]
    finally:
        for c in (mom, friend):
            c.abort_quietly()
        await asyncio.sleep(0.05)
