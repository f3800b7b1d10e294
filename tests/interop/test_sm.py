"""XEP-0198 stream management and XEP-0352 client state indication with slixmpp's own
plugins (`xep_0198`, `xep_0352`, `xep_0085` chat states, `xep_0203` delay):

- a phone's connection dies without `</stream:stream>`: the TCP connection is reset or
  closed under the TLS layer (the server detaches the session), or vanishes without the
  server noticing (the resumption replaces the old connection); slixmpp reconnects and
  resumes (`session_resumed`), on the STARTTLS port or the direct TLS one, and every
  message, whether the phone had handled it, had it in flight or was sent while it was
  away, arrives exactly once, in order; what the phone had sent before is not sent twice;
- a detached session that is not resumed within `--resume-timeout` ends (only then do its
  contacts see it unavailable), and the message the phone got but never acknowledged waits
  in offline storage: slixmpp's resumption is then refused, it binds anew and gets the
  message with a XEP-0203 delay;
- while a client is inactive (XEP-0352), presence updates and chat states are held back,
  only the latest of each kept, and delivered when it is active again; a message with a body
  is delivered at once;
- a resumed stream is active again (XEP-0352 since 0.2.1): an expected failure, roost keeps
  the inactive state across the resumption.

Synchronisation, as in test_im.py: roost handles one session's stanzas in order, so a ping
answered by the server (`barrier`) means everything sent before it has been handled, and a
message from B to A arrives after everything B sent to A before it. What happens on the
server's side without any client seeing it (a session detached, a detached session ended)
is read from its log. A "must not arrive" check follows a positive control that arrived.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import struct

import pytest
from slixmpp import JID

from conftest import _serve

#: Seconds for anything that happens at once on loopback.
T = 10.0
#: Seconds a "must not arrive" check waits after its positive control arrived.
QUIET = 0.5
#: The `--resume-timeout` of the expiry test's server, in seconds.
RESUME_TIMEOUT = 2

PLUGINS = ("xep_0199", "xep_0203")
RECORDED = ("message", "message_error", "presence", "chatstate", "roster_update",
            "sm_enabled", "sm_failed", "session_resumed", "session_end")

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def server(roost_bin, tmp_path_factory):
    """Accounts that start as strangers: with the family room, whose circle makes every
    account everyone's contact, `roost adduser` on the running server pushes the new
    contact and exchanges presence a moment later, in the middle of a test's counts."""
    yield from _serve(roost_bin, tmp_path_factory, "roost-sm", extra_args=("--no-family-room",))


async def connect(make_client, jid: str, password: str, resource: str, *,
                  plugins: tuple[str, ...] = (), **opts):
    return await make_client(jid, password, resource=resource, plugins=PLUGINS + plugins,
                             record=RECORDED, **opts)


async def sm_connect(make_client, jid: str, password: str, resource: str, *,
                     plugins: tuple[str, ...] = (), **opts):
    """A resource that enabled stream management with resumption (slixmpp does it itself,
    after binding), and is available."""
    client = await connect(make_client, jid, password, resource,
                           plugins=("xep_0198",) + plugins, **opts)
    sm = client.plugin["xep_0198"]
    enabled = await client.wait_for("sm_enabled", timeout=T)
    assert enabled["resume"] is True, enabled
    assert sm.sm_id and sm.sm_id == enabled["id"], (sm.sm_id, enabled)
    await send_presence(client)
    return client


async def send_presence(client, *, show: str | None = None, status: str | None = None):
    """Available presence, returned once the server echoed it (it is then in effect)."""
    since = len(client.history)
    client.send_presence(pshow=show, pstatus=status)
    await client.wait_for(
        "presence", lambda p: (p["from"] == client.boundjid and p["show"] == (show or "")
                               and p["status"] == (status or "")),
        T, what=f"echo of its own presence ({show}, {status!r})", since=since)


async def barrier(client) -> None:
    """Everything `client` sent before this has been handled by the server."""
    await client.plugin["xep_0199"].send_ping(JID(client.boundjid.domain), timeout=T)


def send_chat(sender, to, body: str) -> str:
    msg = sender.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = f"sm{next(_ids)}"
    msg.send()
    return msg["id"]


def chat(body: str):
    return lambda m: m["type"] in ("chat", "normal") and m["body"] == body


def bodies(client, sender: str) -> list[str]:
    """The bodies of every message the client got from `sender`'s account, in order."""
    return [m["body"] for m in client.recorded("message", lambda m: m["from"].bare == sender)]


async def got(client, body: str):
    return await client.wait_for("message", chat(body), T, what=f"message {body!r}")


async def session_id(server, client) -> str:
    """The server's id (c2s:N) of the session bound to the client's full JID."""
    found = await server.wait_for_log(rf"c2s:(\d+) bound {client.boundjid.full}\b", T)
    return found.group(1)


def kill_connection(client, how: str) -> None:
    """The phone's network goes away: its TCP connection ends without `</stream:stream>`
    and without a TLS close_notify, either reset ("rst": SO_LINGER 0) or closed ("fin").
    The asyncio transport is aborted under slixmpp, which only sees the connection lost."""
    transport = client.transport
    assert transport is not None, "not connected"
    if how == "rst":
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        assert how == "fin", how
    transport.abort()


def vanish(client) -> asyncio.Future:
    """The phone's network vanishes without a trace: the server's end of the connection
    stays open (it would find out only by its ping), and whatever it writes there is lost.
    slixmpp is told that the connection is lost; the old transport is kept alive under a
    protocol that drops what arrives. Returns a future set when the server closes it."""
    old = client.transport
    assert old is not None, "not connected"
    closed = client.loop.create_future()

    class Dropped(asyncio.Protocol):
        def connection_lost(self, exc):
            if not closed.done():
                closed.set_result(exc)

    old.set_protocol(Dropped())
    old.resume_reading()
    client.connection_lost(None)
    closed.add_done_callback(lambda _: old.abort())
    client.add_event_handler("killed", lambda _: old.abort())  # a failing test's teardown
    return closed


def reconnect(client, server, transport: str) -> int:
    """Connects the client again (slixmpp keeps its stream management state, so it tries
    to resume); returns the position in its history from where to look for the outcome."""
    since = len(client.history)
    client.enable_direct_tls = transport == "direct_tls"
    client.enable_starttls = transport == "starttls"
    port = server.tls_port if transport == "direct_tls" else server.c2s_port
    client.connect(server.host, port)
    return since


# 1. Resumption (XEP-0198 §5)

@pytest.mark.parametrize("resume_over, how", [("starttls", "rst"), ("direct_tls", "fin"),
                                               ("starttls", "vanish")],
                         ids=["starttls-reset", "direct_tls-closed", "starttls-vanished"])
async def test_resumed_session_gets_every_message_exactly_once(make_client, server,
                                                                 resume_over, how):
    a_jid, a_password = server.new_account("mom")
    b_jid, b_password = server.new_account("dad")
    phone = await sm_connect(make_client, a_jid, a_password, "phone")
    sm = phone.plugin["xep_0198"]
    sm_id, full_jid = sm.sm_id, phone.boundjid.full
    sid = await session_id(server, phone)
    dad = await connect(make_client, b_jid, b_password, "pc")

    # Handled by the phone (not acknowledged yet: nobody asked).
    send_chat(dad, full_jid, "handled")
    await got(phone, "handled")
    # Sent by the phone and handled by the server; slixmpp has no ack for it either.
    send_chat(phone, dad.boundjid, "from the phone before")
    await got(dad, "from the phone before")
    sent_by_phone = sm.seq  # its initial presence and that message
    assert sm.unacked_queue, "slixmpp got an ack already: nothing left to resend"

    # The phone stops reading; what the server writes now is lost with the connection.
    phone.transport.pause_reading()
    send_chat(dad, full_jid, "in flight")
    await barrier(dad)
    await asyncio.sleep(0.2)  # let the session write it (it must arrive once either way)
    since = len(phone.history)
    if how == "vanish":
        # The server still writes to the old connection: nothing is detached.
        old_closed = vanish(phone)
    else:
        kill_connection(phone, how)
        await server.wait_for_log(rf"c2s:{sid} detached", T)
    await phone.next_of(("disconnected",), since, T)

    send_chat(dad, full_jid, "in the gap")
    await barrier(dad)
    assert not dad.recorded("message_error")

    since = reconnect(phone, server, resume_over)
    name, resumed = await phone.next_of(("session_resumed", "sm_failed", "session_start",
                                         "stream_error", "disconnected"), since, T)
    assert name == "session_resumed", (name, resumed)
    assert resumed["previd"] == sm_id
    # The server's h: how many of the phone's stanzas it handled.
    assert resumed["h"] == sent_by_phone, (resumed["h"], sent_by_phone)
    assert phone.boundjid.full == full_jid
    new_sid = (await server.wait_for_log(rf"c2s:{sid} resumed by c2s:(\d+)", T)).group(1)
    tls = "(direct TLS)" if resume_over == "direct_tls" else ""
    await server.wait_for_log(rf"c2s:{new_sid} connect from \S+ ?{re.escape(tls)}\n", T)
    if how == "vanish":
        await asyncio.wait_for(old_closed, T)  # the server let go of the old connection

    send_chat(dad, full_jid, "after")
    await got(phone, "after")
    # Resent ones and queued ones came before "after"; duplicates would have, too.
    assert bodies(phone, b_jid) == ["handled", "in flight", "in the gap", "after"]

    # The session goes on under the same full JID, and what the phone had sent before
    # the break (and the server had handled) is not sent again.
    send_chat(phone, dad.boundjid, "from the phone after")
    message = await got(dad, "from the phone after")
    assert message["from"] == JID(full_jid)
    assert bodies(dad, a_jid) == ["from the phone before", "from the phone after"]
    # A resumption, not a new session: bound once, one session_start.
    assert phone.events().count("session_bind") == 1, phone.events()
    assert phone.events().count("session_start") == 1, phone.events()
    assert not phone.recorded("session_end")

    await asyncio.sleep(QUIET)
    assert bodies(phone, b_jid) == ["handled", "in flight", "in the gap", "after"]
    assert not dad.recorded("message_error")


# 2. A detached session that is not resumed in time (XEP-0198 §5)

async def test_expired_session_leaves_its_unacknowledged_message_offline(start_server,
                                                                         make_client):
    # start_server before make_client: its server stops after the clients are gone.
    server = start_server("--resume-timeout", str(RESUME_TIMEOUT))
    a_jid, a_password = server.new_account("mom")
    b_jid, b_password = server.new_account("dad")
    phone = await sm_connect(make_client, a_jid, a_password, "phone", server=server)
    enabled = phone.recorded("sm_enabled")[0]
    assert enabled["max"] == str(RESUME_TIMEOUT), enabled
    sm = phone.plugin["xep_0198"]
    # The phone handles what it gets but its acks never make it out.
    sm.send_ack = lambda: None
    sid = await session_id(server, phone)
    dad = await connect(make_client, b_jid, b_password, "pc", server=server)
    for client in (phone, dad):
        await client.get_roster(timeout=T)
    await send_presence(dad)
    await befriend(phone, dad)
    await dad.wait_for("presence", lambda p: p["from"] == phone.boundjid, T,
                       what="the phone's presence")

    send_chat(dad, a_jid, "unacknowledged")
    await got(phone, "unacknowledged")
    since = len(phone.history)
    killed_at = phone.loop.time()
    kill_connection(phone, "rst")
    await phone.next_of(("disconnected",), since, T)
    await server.wait_for_log(rf"c2s:{sid} detached; resumable for {RESUME_TIMEOUT} s", T)
    send_chat(dad, phone.boundjid.full, "to the detached session")
    await barrier(dad)
    gone = lambda p: p["from"] == phone.boundjid and p["type"] == "unavailable"  # noqa: E731
    # Detached is not gone: the contacts see no unavailable presence (a bounded look
    # within the resume timeout; the positive control is the one at the expiry below).
    await asyncio.sleep(QUIET)
    assert not dad.recorded("presence", gone)
    assert phone.loop.time() - killed_at < RESUME_TIMEOUT, "too slow to look before expiry"

    # Not resumed: the session ends, and gives what it holds to offline storage.
    await server.wait_for_log(rf"c2s:{sid} disconnect: .*not resumed in time",
                              RESUME_TIMEOUT + T)
    await dad.wait_for("presence", gone, T, what="the phone's unavailable presence")
    assert len(dad.recorded("presence", gone)) == 1
    assert not dad.recorded("message_error")

    # The phone comes back: its resumption is refused, slixmpp binds a new session.
    since = reconnect(phone, server, "starttls")
    name, data = await phone.next_of(("session_resumed", "sm_failed", "stream_error",
                                      "disconnected"), since, T)
    assert name == "sm_failed", (name, data)
    assert data.xml.find("{urn:ietf:params:xml:ns:xmpp-stanzas}item-not-found") \
        is not None, data
    name, _ = await phone.next_of(("session_start", "stream_error", "disconnected"), since, T)
    assert name == "session_start", name
    assert not phone.recorded("message", chat("to the detached session"))
    # Offline messages come with the initial presence.
    await send_presence(phone)
    await got(phone, "to the detached session")
    offline = [m for n, m in phone.history[since:]
               if n == "message" and m["from"].bare == b_jid]
    assert [m["body"] for m in offline] == ["unacknowledged", "to the detached session"]
    for m in offline:
        assert m["delay"]["stamp"] is not None, f"no XEP-0203 delay on {m}"
        assert m["delay"]["from"] == JID(server.domain), m
    await asyncio.sleep(QUIET)
    assert bodies(phone, b_jid) == ["unacknowledged", "unacknowledged",
                                    "to the detached session"]
    assert not dad.recorded("message_error")


# 3. Client state indication (XEP-0352)

async def befriend(a, b) -> None:
    """A mutual subscription made by slixmpp's defaults (auto_authorize, auto_subscribe)."""
    a_jid, b_jid = a.boundjid.bare, b.boundjid.bare
    a.send_presence_subscription(pto=b_jid)
    for client, contact in ((a, b_jid), (b, a_jid)):
        await client.wait_for("roster_update", lambda iq, contact=contact: any(
            JID(jid).bare == contact and item["subscription"] == "both"
            for jid, item in iq["roster"]["items"].items()), T, what=f"{contact}: both")


async def test_inactive_client_gets_only_the_latest_presence_and_chat_state(make_client,
                                                                             server):
    a_jid, a_password = server.new_account("mom")
    b_jid, b_password = server.new_account("dad")
    mom = await connect(make_client, a_jid, a_password, "phone",
                        plugins=("xep_0352", "xep_0085"))
    dad = await connect(make_client, b_jid, b_password, "pc", plugins=("xep_0085",))
    csi = mom.plugin["xep_0352"]
    assert csi.enabled, "no CSI stream feature"  # send_(in)active do nothing otherwise
    for client in (mom, dad):
        await client.get_roster(timeout=T)
        await send_presence(client)
    await befriend(mom, dad)
    await mom.wait_for("presence", lambda p: p["from"] == dad.boundjid, T,
                       what="dad's presence")
    await barrier(dad)

    await barrier(mom)  # send_inactive writes at once: nothing queued may overtake it
    csi.send_inactive()
    await barrier(mom)  # inactive from here on
    since = len(mom.history)

    for show, status in (("away", "walking the dog"), ("xa", "asleep"),
                         ("dnd", "in a meeting")):
        await send_presence(dad, show=show, status=status)
    for state in ("composing", "paused"):
        typing = dad.make_message(mto=mom.boundjid, mtype="chat")
        typing["chat_state"] = state
        typing.send()
    send_chat(dad, mom.boundjid, "dinner is ready")  # a body goes out at once
    await got(mom, "dinner is ready")
    await asyncio.sleep(QUIET)
    held_back = [n for n, p in mom.history[since:]
                 if n in ("presence", "chatstate") and p["from"].bare == b_jid]
    assert not held_back, f"delivered to an inactive client: {held_back}"

    csi.send_active()
    await mom.wait_for("chatstate", lambda m: m["from"] == dad.boundjid, T,
                       what="dad's chat state")
    await mom.wait_for("presence", lambda p: p["from"] == dad.boundjid
                       and p["show"] == "dnd", T, what="dad's latest presence")
    await barrier(mom)  # the server flushed what it held before it answered
    await asyncio.sleep(QUIET)
    presences = [p for n, p in mom.history[since:]
                 if n == "presence" and p["from"].bare == b_jid]
    assert [(p["show"], p["status"]) for p in presences] == [("dnd", "in a meeting")]
    states = [m["chat_state"] for n, m in mom.history[since:]
              if n == "chatstate" and m["from"].bare == b_jid]
    assert states == ["paused"]
    assert mom.client_roster[b_jid].resources["pc"]["show"] == "dnd"



# 4. Client state and resumption

# XEP-0352 (since 0.2.1): the state is not restored on resumption, a resumed stream is
# active.
async def test_resumed_stream_is_active_again(make_client, server):
    a_jid, a_password = server.new_account("mom")
    b_jid, b_password = server.new_account("dad")
    phone = await sm_connect(make_client, a_jid, a_password, "phone", plugins=("xep_0352",))
    csi = phone.plugin["xep_0352"]
    assert csi.enabled, "no CSI stream feature"
    sid = await session_id(server, phone)
    dad = await connect(make_client, b_jid, b_password, "pc")

    csi.send_inactive()
    await barrier(phone)
    dad.make_presence(pto=phone.boundjid, pshow="xa", pstatus="held back").send()
    send_chat(dad, phone.boundjid, "while inactive")
    await got(phone, "while inactive")
    since = len(phone.history)
    kill_connection(phone, "rst")
    await server.wait_for_log(rf"c2s:{sid} detached", T)
    await phone.next_of(("disconnected",), since, T)
    since = reconnect(phone, server, "starttls")
    name, _ = await phone.next_of(("session_resumed", "sm_failed", "session_start",
                                   "disconnected"), since, T)
    assert name == "session_resumed", name

    # The client thinks it is active (it said nothing since): presence flows again.
    dad.make_presence(pto=phone.boundjid, pshow="dnd", pstatus="after").send()
    send_chat(dad, phone.boundjid, "after the resumption")
    await got(phone, "after the resumption")
    await asyncio.sleep(QUIET)
    presences = [(p["show"], p["status"]) for p in phone.recorded(
        "presence", lambda p: p["from"].bare == b_jid)]
    assert presences and presences[-1] == ("dnd", "after"), presences
    assert ("xa", "held back") in presences, presences  # what was held is not lost

