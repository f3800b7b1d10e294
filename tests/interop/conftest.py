"""Interoperability harness: a real `roost serve` process and real slixmpp clients.

Nothing here builds roost: the binary comes from `ROOST_BIN` (default `target/debug/roost`,
relative to the repository root). Every server listens on 127.0.0.1 only, on ports the
kernel picks (`--c2s-port 0 --c2s-tls-port 0`, read back from its log), with a temporary
data directory. Every wait is bounded.

Fixtures for test modules:
- `server`: one server per test module (`RoostServer`); a module whose tests need a server
  of their own overrides it, or uses `fresh_server` (one per test).
- `start_server`: `start_server("--resume-timeout", "2")` starts a server of the test's own
  with extra `roost serve` flags (checked at teardown like the others).
- `account`: a new account on `server`, as `(bare_jid, password)`.
- `make_client`: `await make_client(jid, password, **opts)` runs a slixmpp client up to a
  given event (by default `session_start`: TLS, SASL and bind done) and returns it; clients
  still connected at the end of the test are aborted.

A client records the first occurrence of a few connection events (`first`); events named in
`record=` it records every time (`wait_for`, `recorded`), from before it connects.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

import pytest
import slixmpp

ROOT = Path(__file__).resolve().parents[2]

#: Seconds a server may take to start listening.
STARTUP_TIMEOUT = 30.0
#: Seconds an account command (`roost adduser` …) may take.
CLI_TIMEOUT = 30.0
#: Seconds a server may take to stop after SIGTERM (it waits up to 5 s for connections).
STOP_TIMEOUT = 15.0
#: Seconds a client may take to reach the event it is run to.
CLIENT_TIMEOUT = 20.0

LISTENING = re.compile(r"listening on (\S+):(\d+) \((STARTTLS|direct TLS|HTTPS)\b")

log = logging.getLogger("interop")


def roost_binary_path() -> Path:
    path = Path(os.environ.get("ROOST_BIN", "target/debug/roost"))
    return path if path.is_absolute() else ROOT / path


class ServerError(RuntimeError):
    pass


class RoostServer:
    """One `roost serve` process on loopback with its own data directory."""

    def __init__(self, binary: Path, data_dir: Path, domain: str = "localhost",
                 extra_args: Iterable[str] = ()):
        self.binary = binary
        self.data_dir = data_dir
        self.domain = domain
        self.extra_args = list(extra_args)
        self.host = "127.0.0.1"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen | None = None
        self.c2s_port: int | None = None
        self.tls_port: int | None = None
        self.https_port: int | None = None
        self._accounts = itertools.count(1)

    @property
    def cert(self) -> Path:
        """The self-signed certificate roost generated for the domain (the trust anchor)."""
        return self.data_dir / f"{self.domain}.crt"

    def start(self) -> "RoostServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(self.binary), "serve",
            "--domain", self.domain,
            "--data-dir", str(self.data_dir),
            "--c2s-port", "0",
            "--c2s-tls-port", "0",
            *([] if any(a in self.extra_args for a in ("--s2s-port", "--no-s2s"))
              else ["--s2s-port", "0", "--s2s-tls-port", "0"]),
            *(() if "--https-port" in self.extra_args else ("--https-port", "0")),
            "--bind", self.host,
            "--log-level", "debug",
            *self.extra_args,
        ]
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log_file,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            ports = {kind: int(port) for _, port, kind in LISTENING.findall(self.log())}
            http_off = "--no-http" in self.extra_args
            if ("STARTTLS" in ports and "direct TLS" in ports
                    and (http_off or "HTTPS" in ports)):
                self.c2s_port, self.tls_port = ports["STARTTLS"], ports["direct TLS"]
                self.https_port = ports.get("HTTPS")
                break
            if self.proc.poll() is not None:
                raise ServerError(f"roost serve exited with {self.proc.returncode} before "
                                  f"listening:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"roost serve did not listen within {STARTUP_TIMEOUT} s:\n"
                                  f"{self.log()}")
            time.sleep(0.05)
        if not self.cert.is_file():
            raise ServerError(f"no generated certificate at {self.cert}")
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM, bounded wait, SIGKILL as a last resort; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                raise ServerError(f"roost serve ignored SIGTERM for {STOP_TIMEOUT} s")
        return self.proc.returncode

    async def wait_for_log(self, pattern: str, timeout: float) -> re.Match:
        """The first match of the regular expression `pattern` in the server's log, waiting
        at most `timeout` seconds for it to be written (without blocking the event loop)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log())
            if found:
                return found
            if time.monotonic() > deadline:
                raise ServerError(f"no /{pattern}/ in the server log within {timeout} s")
            await asyncio.sleep(0.05)

    def problems(self) -> list[str]:
        """Log lines that are bugs whatever the test did."""
        return [line for line in self.log().splitlines()
                if "panicked" in line or "[ERROR]" in line]

    # Account management through the real CLI, on the live data directory.

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.binary), *args, "--data-dir", str(self.data_dir)],
                              input=stdin, capture_output=True, text=True,
                              timeout=CLI_TIMEOUT)

    def _checked(self, *args: str, stdin: str | None = None) -> str:
        done = self.cli(*args, stdin=stdin)
        if done.returncode != 0:
            raise ServerError(f"roost {' '.join(args)} exited with {done.returncode}: "
                              f"{done.stderr.strip()}")
        return done.stdout

    def adduser(self, jid: str, password: str) -> None:
        self._checked("adduser", jid, stdin=password + "\n")

    def passwd(self, jid: str, password: str) -> None:
        self._checked("passwd", jid, stdin=password + "\n")

    def deluser(self, jid: str) -> None:
        self._checked("deluser", jid)

    def users(self) -> list[str]:
        # One account a line, followed by its role when that is not normal.
        return [line.split()[0] for line in self._checked("users").splitlines() if line]

    def new_account(self, prefix: str = "user") -> tuple[str, str]:
        """Adds an account with a name unique on this server and a random password."""
        jid = f"{prefix}{next(self._accounts)}@{self.domain}"
        password = secrets.token_urlsafe(12)
        self.adduser(jid, password)
        return jid, password


# Events a client records. The first occurrence of each can be awaited.
WATCHED_EVENTS = (
    "connected", "connection_failed", "tls_success", "ssl_invalid_chain", "auth_success",
    "failed_auth", "failed_all_auth", "no_auth", "session_bind", "session_start",
    "stream_error", "disconnected", "killed",
)
# Events that end a run towards `session_start` early.
FAILURE_EVENTS = (
    "connection_failed", "ssl_invalid_chain", "failed_auth", "failed_all_auth", "no_auth",
    "stream_error", "disconnected",
)


class ClientFailed(AssertionError):
    pass


class InteropClient(slixmpp.ClientXMPP):
    """A slixmpp client that records its events, so a test can await the first of each."""

    def __init__(self, jid: str, password: str, **kwargs: Any):
        super().__init__(jid, password, **kwargs)
        self.history: list[tuple[str, Any]] = []
        self._firsts: dict[str, asyncio.Future] = {}
        self._recorded: set[str] = set(WATCHED_EVENTS)
        # Set, and replaced by a fresh one, whenever an event is recorded.
        self._news = asyncio.Event()
        #: What the login negotiated, captured at `session_start`.
        self.login: dict[str, Any] = {}
        # Before the recorders, so that `login` is filled when `first("session_start")` wakes.
        self.add_event_handler("session_start", self._capture_login)
        for name in WATCHED_EVENTS:
            self.add_event_handler(name, self._recorder(name))

    def _recorder(self, name: str):
        def record(data: Any = None) -> None:
            log.debug("%s: event %s %r", self.requested_jid, name, data)
            self.history.append((name, data))
            fut = self._first(name)
            if not fut.done():
                fut.set_result(data)
            news, self._news = self._news, asyncio.Event()
            news.set()
        return record

    def record(self, *names: str) -> None:
        """Records every occurrence of these events (messages, presence, roster pushes …),
        so that `wait_for` finds one that happened before it was called."""
        for name in names:
            if name not in self._recorded:
                self._recorded.add(name)
                self.add_event_handler(name, self._recorder(name))

    def recorded(self, name: str, match=lambda data: True) -> list[Any]:
        """The data of every recorded `name` event so far that `match` accepts."""
        return [data for n, data in self.history if n == name and match(data)]

    async def wait_for(self, name: str, match=lambda data: True,
                       timeout: float = CLIENT_TIMEOUT, what: str | None = None,
                       since: int = 0) -> Any:
        """The data of the first recorded `name` event that `match` accepts, whether it
        happened already or within `timeout` seconds; `since`: only from that position of
        `history` on (`len(client.history)` taken before an action)."""
        if name not in self._recorded:
            raise ValueError(f"{name} events are not recorded: record({name!r}) first")
        deadline = self.loop.time() + timeout
        while True:
            news = self._news
            found = [data for n, data in self.history[since:] if n == name and match(data)]
            if found:
                return found[0]
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise ClientFailed(f"{self.requested_jid}: no {what or name} within "
                                   f"{timeout} s; events: {self.events()}")
            try:
                await asyncio.wait_for(news.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def next_of(self, names: Iterable[str], since: int,
                      timeout: float = CLIENT_TIMEOUT) -> tuple[str, Any]:
        """The first of the (recorded) events `names` at or after position `since` of
        `history`, as (name, data), waiting at most `timeout` seconds. With
        `since = len(client.history)` taken before an action, it is the action's outcome
        even for events (connected, session_start …) that happened before."""
        names = set(names)
        unrecorded = names - self._recorded
        if unrecorded:
            raise ValueError(f"{sorted(unrecorded)} are not recorded: record them first")
        deadline = self.loop.time() + timeout
        while True:
            news = self._news
            for name, data in self.history[since:]:
                if name in names:
                    return name, data
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                raise ClientFailed(f"{self.requested_jid}: none of {sorted(names)} within "
                                   f"{timeout} s; events since: "
                                   f"{[n for n, _ in self.history[since:]]}")
            try:
                await asyncio.wait_for(news.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def _first(self, name: str) -> asyncio.Future:
        if name not in self._firsts:
            self._firsts[name] = self.loop.create_future()
        return self._firsts[name]

    def _capture_login(self, _event: Any = None) -> None:
        tls = self.transport.get_extra_info("ssl_object") if self.transport else None
        mech = self.plugin["feature_mechanisms"].mech
        self.login = {
            "mechanism": mech.name if mech else None,
            "starttls": "starttls" in self.features,
            "tls_version": tls.version() if tls else None,
            "alpn": tls.selected_alpn_protocol() if tls else None,
            "boundjid": slixmpp.JID(self.boundjid),
        }

    def seen(self, name: str) -> bool:
        return self._first(name).done()

    def events(self) -> list[str]:
        return [name for name, _ in self.history]

    async def first(self, name: str, timeout: float = CLIENT_TIMEOUT) -> Any:
        """The data of the first `name` event, waiting at most `timeout` seconds."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._first(name)), timeout)
        except asyncio.TimeoutError:
            raise ClientFailed(f"no {name} event within {timeout} s; events: "
                               f"{self.events()}") from None

    async def first_of(self, names: Iterable[str],
                       timeout: float = CLIENT_TIMEOUT) -> tuple[str, Any]:
        """The first of several events to happen, as (name, data)."""
        futs = {name: self._first(name) for name in names}
        done, _ = await asyncio.wait(futs.values(), timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise ClientFailed(f"none of {sorted(futs)} within {timeout} s; events: "
                               f"{self.events()}")
        # Several may be done at once: report the one that happened first.
        for name, _ in self.history:
            if name in futs and futs[name].done():
                return name, futs[name].result()
        raise AssertionError("unreachable: a done future without history")

    async def close_cleanly(self, timeout: float = 10.0) -> Any:
        """Sends `</stream:stream>` and returns the `disconnected` event's reason.

        slixmpp sets the reason to "End of stream" only when the server's own
        `</stream:stream>` arrived; a server that merely drops the TCP connection, or never
        answers (slixmpp then aborts after `timeout`), gives another reason.
        """
        self.disconnect(wait=timeout)
        return await self.first("disconnected", timeout + 5)

    def abort_quietly(self) -> None:
        self.cancel_connection_attempt()
        if self.is_connected():
            self.abort()


def _make(server: RoostServer, jid: str, password: str, *, transport: str = "starttls",
          mech: str | None = None, ca_certs: Path | None | str = "server",
          plugin_config: dict | None = None, plugins: Iterable[str] = (),
          record: Iterable[str] = ()) -> InteropClient:
    """A configured, unconnected client. `ca_certs="server"` trusts the server's own
    self-signed certificate; `None` trusts only the system store (so roost's is refused)."""
    client = InteropClient(jid, password, sasl_mech=mech, plugin_config=plugin_config or {})
    for plugin in plugins:
        client.register_plugin(plugin)
    client.record(*record)
    if ca_certs == "server":
        ca_certs = server.cert
    client.ca_certs = ca_certs
    if transport == "starttls":
        client.enable_direct_tls, client.enable_starttls = False, True
    elif transport == "direct_tls":
        client.enable_direct_tls, client.enable_starttls = True, False
    else:
        raise ValueError(f"transport {transport!r}: use 'starttls' or 'direct_tls'")
    client.enable_plaintext = False
    return client


@pytest.fixture(scope="session")
def roost_bin() -> Path:
    path = roost_binary_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"no roost binary at {path}: build it (cargo build) or set ROOST_BIN",
                    pytrace=False)
    return path


def _serve(roost_bin: Path, tmp_path_factory, name: str, **kwargs):
    srv = RoostServer(roost_bin, tmp_path_factory.mktemp(name) / "data", **kwargs).start()
    try:
        yield srv
    finally:
        code = srv.stop()
    # Teardown checks: an orderly shutdown, and no panic or error in the whole run.
    assert code == 0, f"roost serve exited with {code}:\n{srv.log()[-4000:]}"
    assert not srv.problems(), "server log has errors:\n" + "\n".join(srv.problems())


@pytest.fixture(scope="module")
def server(roost_bin, tmp_path_factory):
    """One roost per test module; tests keep apart by using accounts of their own."""
    yield from _serve(roost_bin, tmp_path_factory, "roost")


@pytest.fixture
def fresh_server(roost_bin, tmp_path_factory):
    """A roost of the test's own, for tests whose server-wide state matters."""
    yield from _serve(roost_bin, tmp_path_factory, "roost-fresh")


@pytest.fixture
def start_server(roost_bin, tmp_path_factory):
    """`start_server(*flags)` → a started roost of the test's own, run with these extra
    `roost serve` flags (e.g. "--resume-timeout", "2"); stopped and checked at teardown
    like `fresh_server`."""
    running = []

    def start(*flags: str) -> RoostServer:
        serving = _serve(roost_bin, tmp_path_factory, "roost-flags", extra_args=flags)
        srv = next(serving)
        running.append(serving)
        start.servers.append(srv)
        return srv

    start.servers = []  # for the failure report
    yield start
    failures = []
    for serving in running:
        try:
            next(serving, None)  # stops the server, runs the teardown checks
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


@pytest.fixture
def account(server) -> tuple[str, str]:
    return server.new_account()


@pytest.fixture
async def make_client(server):
    """`await make_client(jid, password, **opts)` → a client run to `until`.

    Options: `until` (an event name, default "session_start"; None: just connect),
    `transport` ("starttls" or "direct_tls"), `mech` (force one SASL mechanism),
    `resource` (appended to the JID), `ca_certs`, `plugin_config`, `plugins` (slixmpp
    plugins to register, e.g. "xep_0191"), `record` (events to record every time), `timeout`,
    `server` (another RoostServer than the module's), `configure` (called with the client
    before it connects, e.g. to restrict `client.ssl_context`), `tolerate` (failure events
    that do not end the run, e.g. a `failed_auth` the client recovers from).
    On the way to `session_start`, a failure event (failed_auth, stream_error, …) raises
    ClientFailed with the client's event history.
    """
    made: list[InteropClient] = []

    async def make(jid: str, password: str, *, until: str | None = "session_start",
                   resource: str | None = None, timeout: float = CLIENT_TIMEOUT,
                   server: RoostServer = server, configure=None,
                   tolerate: Iterable[str] = (), **opts: Any) -> InteropClient:
        if resource is not None:
            jid = f"{jid}/{resource}"
        client = _make(server, jid, password, **opts)
        made.append(client)
        if configure is not None:
            configure(client)
        port = server.tls_port if opts.get("transport") == "direct_tls" else server.c2s_port
        client.connect(server.host, port)
        if until is None:
            return client
        stop_on = [until] + [e for e in FAILURE_EVENTS if e != until and e not in tolerate]
        name, data = await client.first_of(stop_on, timeout)
        if name != until:
            detail = data["condition"] if name in ("failed_auth", "stream_error") else data
            client.abort_quietly()
            raise ClientFailed(f"{jid}: {name} ({detail}) before {until}; events: "
                               f"{client.events()}")
        return client

    yield make
    for client in made:
        client.abort_quietly()
    await asyncio.sleep(0.05)  # let the transports close


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the server's log to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for name in ("fresh_server", "server"):
            srv = funcargs.get(name)
            if isinstance(srv, RoostServer):
                report.sections.append((f"roost log ({name})", srv.log()[-8000:]))
        for i, srv in enumerate(getattr(funcargs.get("start_server"), "servers", ())):
            report.sections.append((f"roost log (start_server #{i + 1}, "
                                    f"{' '.join(srv.extra_args)})", srv.log()[-8000:]))

