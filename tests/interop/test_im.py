"""RFC 6121 instant messaging with slixmpp's own machinery (its roster, subscription and
presence handling, `xep_0191`, `xep_0199`, `xep_0203`): roster pushes to two resources,
subscription handshakes (online, and with the contact offline), presence probes at login,
bare-JID routing by priority (RFC 6121 §8.5.2), offline messages with XEP-0203 delay stamps,
and XEP-0191 blocking.

Two kinds of synchronisation keep the tests free of guesswork:
- roost handles one session's stanzas in order, so a ping answered by the server
  (`barrier`) means everything the client sent before it has been handled;
- a resource's initial presence is echoed back to it (RFC 6121 §4.2.2), so `online` returns
  once the server knows the resource as available, with its priority.
A "must not arrive" check always follows a positive control that must arrive after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from slixmpp import JID

from conftest import _serve

#: Seconds for anything that happens at once on loopback.
T = 10.0
#: Seconds a "must not arrive" check waits after its positive control arrived.
QUIET = 0.5

PLUGINS = ("xep_0199", "xep_0203")
RECORDED = ("message", "message_error", "presence", "changed_status", "roster_update",
            "roster_subscription_request", "blocked", "unblocked")

_ids = itertools.count(1)


@pytest.fixture(scope="module")
def server(roost_bin, tmp_path_factory):
    """Accounts that start as strangers: no family room, whose circle would make every
    account everyone's contact."""
    yield from _serve(roost_bin, tmp_path_factory, "roost-im", extra_args=("--no-family-room",))


async def connect(make_client, jid: str, password: str, resource: str, *,
                  manual: bool = False, plugins: tuple[str, ...] = (),
                  roster: bool = True):
    """A logged-in resource that recorded everything from the start and (unless `roster`
    is False) fetched its roster, so that it gets roster pushes. `manual`: slixmpp answers
    no subscription request by itself (auto_authorize None; False would refuse them)."""
    def configure(client):
        if manual:
            client.auto_authorize = None
    client = await make_client(jid, password, resource=resource, plugins=PLUGINS + plugins,
                               record=RECORDED, configure=configure)
    if roster:
        await client.get_roster(timeout=T)
    return client


async def send_presence(client, *, priority: int | None = None, status: str | None = None):
    """Available presence, returned once the server echoed it (it is then in effect)."""
    client.send_presence(ppriority=priority, pstatus=status)
    await client.wait_for(
        "presence",
        lambda p: (p["from"] == client.boundjid and p["type"] == "available"
                   and p["priority"] == (priority or 0) and p["status"] == (status or "")),
        T, what=f"echo of its own presence (priority {priority}, status {status!r})")


async def online(make_client, jid: str, password: str, resource: str, *,
                 priority: int | None = None, status: str | None = None, **opts):
    client = await connect(make_client, jid, password, resource, **opts)
    await send_presence(client, priority=priority, status=status)
    return client


async def barrier(client) -> None:
    """Everything `client` sent before this has been handled by the server."""
    await client.plugin["xep_0199"].send_ping(JID(client.boundjid.domain), timeout=T)


async def log_off(client) -> None:
    """Unavailable presence, then the closing handshake, as an orderly client logs off.

    The barrier matters: roost answers a client's `</stream:stream>` before it takes the
    session out of the router, so a message routed in that moment would go to the closing
    session instead of offline storage.
    """
    client.send_presence(ptype="unavailable")
    await barrier(client)
    await client.close_cleanly()


def send_chat(sender, to: str, body: str) -> str:
    """A chat message with a unique id; returns the id."""
    msg = sender.make_message(mto=to, mbody=body, mtype="chat")
    msg["id"] = f"im{next(_ids)}"
    msg.send()
    return msg["id"]


def chat(body: str, sender: str | None = None):
    """Matches a delivered (not bounced) message with this body, from `sender`'s account."""
    return lambda m: (m["type"] in ("chat", "normal") and m["body"] == body
                      and (sender is None or m["from"].bare == sender))


async def got(client, body: str, sender: str | None = None):
    return await client.wait_for("message", chat(body, sender), T, what=f"message {body!r}")


def never_got(client, body: str) -> bool:
    return not client.recorded("message", chat(body))


def roster_push(contact: str, **want):
    """Matches a roster push about `contact` whose item has the wanted fields."""
    def match(iq) -> bool:
        if iq["type"] != "set":
            return False
        for jid, item in iq["roster"]["items"].items():
            if JID(jid).bare == contact and all(item[k] == v for k, v in want.items()):
                return True
        return False
    return match


async def pushed(client, contact: str, **want):
    return await client.wait_for("roster_update", roster_push(contact, **want), T,
                                 what=f"roster push {contact} {want}")


def presence_from(jid, ptype: str = "available"):
    """Matches presence of `ptype` from a full JID, or from any resource of a bare JID."""
    jid = JID(jid)
    return lambda p: p["type"] == ptype and (
        p["from"] == jid if jid.resource else p["from"].bare == jid.bare)


def subscription(client, contact: str) -> str | None:
    """The subscription slixmpp's roster holds for `contact` (None: no such item)."""
    roster = client.client_roster
    return roster[contact]["subscription"] if roster.has_jid(contact) else None


# 1. Rosters (RFC 6121 §2)

async def test_roster_add_and_remove_are_pushed_to_both_resources(make_client, server):
    jid, password = server.new_account("mom")
    dad, _ = server.new_account("dad")
    phone = await connect(make_client, jid, password, "phone")
    laptop = await connect(make_client, jid, password, "laptop")
    assert not laptop.client_roster.has_jid(dad)

    await phone.update_roster(dad, name="Dad", groups=["Family", "Home"], timeout=T)
    for client in (phone, laptop):
        await pushed(client, dad, name="Dad", subscription="none")
    # slixmpp wrote the item on the phone itself before sending it: the laptop's copy is
    # the one that only the push can have filled in.
    item = laptop.client_roster[dad]
    assert item["name"] == "Dad"
    assert sorted(item["groups"]) == ["Family", "Home"]
    assert item["subscription"] == "none"
    assert not item["pending_out"]

    # Stored, too: a resource that logs in later gets it with the roster.
    tablet = await connect(make_client, jid, password, "tablet")
    assert tablet.client_roster.has_jid(dad)
    assert tablet.client_roster[dad]["name"] == "Dad"
    assert sorted(tablet.client_roster[dad]["groups"]) == ["Family", "Home"]

    await phone.del_roster_item(dad)
    for client in (phone, laptop, tablet):
        await pushed(client, dad, subscription="remove")
    assert not laptop.client_roster.has_jid(dad)
    later = await connect(make_client, jid, password, "later")
    assert not later.client_roster.has_jid(dad), later.client_roster.keys()


# 2. Subscriptions (RFC 6121 §3)

async def test_subscription_handshake_answered_by_hand_ends_in_both(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await online(make_client, a_jid, a_password, "pc", manual=True)
    b = await online(make_client, b_jid, b_password, "pc", manual=True)

    a.send_presence_subscription(pto=b_jid)
    await pushed(a, b_jid, subscription="none", ask="subscribe")
    assert a.client_roster[b_jid]["pending_out"]
    await b.wait_for("roster_subscription_request", lambda p: p["from"] == JID(a_jid), T)
    b.send_presence(pto=a_jid, ptype="subscribed")
    await pushed(a, b_jid, subscription="to")
    await pushed(b, a_jid, subscription="from")
    # Approved: Alice gets Bob's current presence (RFC 6121 §3.1.5).
    await a.wait_for("presence", presence_from(b.boundjid), T, what="Bob's presence")

    b.send_presence_subscription(pto=a_jid)
    await b.wait_for("roster_update", roster_push(a_jid, subscription="from", ask="subscribe"),
                     T)
    await a.wait_for("roster_subscription_request", lambda p: p["from"] == JID(b_jid), T)
    a.send_presence(pto=b_jid, ptype="subscribed")
    await pushed(a, b_jid, subscription="both")
    await pushed(b, a_jid, subscription="both")
    await b.wait_for("presence", presence_from(a.boundjid), T, what="Alice's presence")
    assert a.client_roster[b_jid]["subscription"] == "both"
    assert b.client_roster[a_jid]["subscription"] == "both"
    assert not a.client_roster[b_jid]["pending_out"]
    assert not b.client_roster[a_jid]["pending_out"]


async def test_subscription_request_to_an_offline_contact_arrives_at_login(make_client,
                                                                          server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await online(make_client, a_jid, a_password, "pc", manual=True)

    a.send_presence_subscription(pto=b_jid)  # Bob has never logged in
    await pushed(a, b_jid, subscription="none", ask="subscribe")
    await barrier(a)

    b = await connect(make_client, b_jid, b_password, "phone", manual=True)
    await send_presence(b)
    request = await b.wait_for("roster_subscription_request",
                               lambda p: p["from"] == JID(a_jid), T)
    assert request["to"].bare == b_jid
    b.send_presence(pto=a_jid, ptype="subscribed")
    await pushed(a, b_jid, subscription="to")
    await pushed(b, a_jid, subscription="from")
    await a.wait_for("presence", presence_from(b.boundjid), T, what="Bob's presence")
    assert subscription(a, b_jid) == "to"
    assert subscription(b, a_jid) == "from"

    # Answered: the request is not delivered again. The control is Bob's phone's presence,
    # which the new resource gets in the same batch as any stored request.
    tablet = await online(make_client, b_jid, b_password, "tablet", manual=True)
    await tablet.wait_for("presence", presence_from(b.boundjid), T,
                          what="the phone's presence")
    await asyncio.sleep(QUIET)
    assert not tablet.recorded("roster_subscription_request")


# 3. Presence probes at login (RFC 6121 §4.2)

async def befriend(a, b) -> None:
    """A mutual subscription made by slixmpp's defaults: Bob's client authorizes Alice and
    asks back, Alice's client authorizes Bob."""
    a_jid, b_jid = a.boundjid.bare, b.boundjid.bare
    assert a.auto_authorize and b.auto_authorize and b.auto_subscribe
    a.send_presence_subscription(pto=b_jid)
    await pushed(a, b_jid, subscription="both")
    await pushed(b, a_jid, subscription="both")


async def test_login_probes_the_presence_of_contacts(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    c_jid, c_password = server.new_account("carol")
    a = await online(make_client, a_jid, a_password, "pc")
    b = await online(make_client, b_jid, b_password, "phone")
    await befriend(a, b)
    await log_off(a)
    # Bob's status changes while Alice is away.
    await send_presence(b, status="at the park")
    # Carol is online and subscribed to Alice, but Alice is not subscribed to her.
    c = await online(make_client, c_jid, c_password, "pc", manual=True)
    c.send_presence_subscription(pto=a_jid)
    await pushed(c, a_jid, subscription="none", ask="subscribe")
    await barrier(c)

    a = await connect(make_client, a_jid, a_password, "laptop")
    assert a.client_roster[b_jid]["subscription"] == "both"
    assert not a.recorded("presence", presence_from(b_jid))
    a.send_presence()
    status = await a.wait_for("changed_status", presence_from(b.boundjid), T,
                              what="Bob's presence after the probe")
    assert status["status"] == "at the park"
    assert status["to"] == a.boundjid
    assert a.client_roster[b_jid].resources["phone"]["status"] == "at the park"
    assert a.recorded("presence", presence_from(b.boundjid))

    # Carol's presence is not Alice's to see; her request is. Both would have come with
    # Bob's presence, in the answer to Alice's initial presence.
    await a.wait_for("roster_subscription_request", lambda p: p["from"] == JID(c_jid), T)
    await asyncio.sleep(QUIET)
    assert not a.recorded("presence", presence_from(c.boundjid))


# 4. Messages to a bare JID (RFC 6121 §8.5.2)

async def test_bare_jid_message_goes_to_the_highest_priority(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    high = await online(make_client, b_jid, b_password, "high", priority=5)
    low = await online(make_client, b_jid, b_password, "low", priority=1)

    send_chat(a, b_jid, "for the highest")
    await got(high, "for the highest", a_jid)
    # Alice's next message reaches the low resource after the first would have.
    send_chat(a, low.boundjid.full, "control for low")
    await got(low, "control for low")
    await asyncio.sleep(QUIET)
    assert never_got(low, "for the highest")

    # Priorities change with the next presence.
    await send_presence(low, priority=10)
    send_chat(a, b_jid, "for the new highest")
    await got(low, "for the new highest", a_jid)
    send_chat(a, high.boundjid.full, "control for high")
    await got(high, "control for high")
    await asyncio.sleep(QUIET)
    assert never_got(high, "for the new highest")


async def test_bare_jid_message_goes_to_all_of_equal_priority(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    phone = await online(make_client, b_jid, b_password, "phone", priority=3)
    laptop = await online(make_client, b_jid, b_password, "laptop", priority=3)
    send_chat(a, b_jid, "for both")
    await got(phone, "for both", a_jid)
    await got(laptop, "for both", a_jid)


async def test_negative_priority_gets_no_bare_jid_message(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    hidden = await online(make_client, b_jid, b_password, "hidden", priority=-1)
    desk = await online(make_client, b_jid, b_password, "desk", priority=0)

    send_chat(a, b_jid, "for the desk")
    await got(desk, "for the desk", a_jid)
    send_chat(a, hidden.boundjid.full, "control for hidden")
    await got(hidden, "control for hidden")
    await asyncio.sleep(QUIET)
    assert never_got(hidden, "for the desk")


async def test_with_only_negative_priority_a_bare_jid_message_waits_offline(make_client,
                                                                           server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    hidden = await online(make_client, b_jid, b_password, "hidden", priority=-1)

    send_chat(a, b_jid, "kept for later")
    send_chat(a, hidden.boundjid.full, "control for hidden")
    await got(hidden, "control for hidden")
    await asyncio.sleep(QUIET)
    assert never_got(hidden, "kept for later")
    assert not a.recorded("message_error")  # stored, not bounced

    phone = await online(make_client, b_jid, b_password, "phone", priority=0)
    kept = await got(phone, "kept for later", a_jid)
    assert kept["delay"]["stamp"] is not None, kept
    assert never_got(hidden, "kept for later")


# 5. Offline messages (XEP-0160) with delay stamps (XEP-0203)

async def test_offline_messages_arrive_once_in_order_with_delay_stamps(make_client, server):
    a_jid, a_password = server.new_account("alice")
    b_jid, b_password = server.new_account("bob")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    bodies = [f"offline {i}" for i in range(1, 6)]
    # The stamps have whole seconds.
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for body in bodies:
        send_chat(a, b_jid, body)
    await barrier(a)  # all five are stored
    after = dt.datetime.now(dt.timezone.utc)
    assert not a.recorded("message_error")

    b = await online(make_client, b_jid, b_password, "phone")
    await got(b, bodies[-1], a_jid)
    received = b.recorded("message", lambda m: m["from"].bare == a_jid)
    assert [m["body"] for m in received] == bodies
    stamps = []
    for m in received:
        delay = m["delay"]
        assert delay["stamp"] is not None, f"no XEP-0203 delay on {m}"
        assert delay["from"] == JID(server.domain)
        assert before <= delay["stamp"] <= after, (before, delay["stamp"], after)
        stamps.append(delay["stamp"])
    assert stamps == sorted(stamps)
    await log_off(b)

    # Delivered means gone: the next login gets only what was sent since.
    send_chat(a, b_jid, "offline 6")
    await barrier(a)
    b = await online(make_client, b_jid, b_password, "phone")
    await got(b, "offline 6", a_jid)
    # All stored messages come in one batch, oldest first: the old ones would be here.
    assert [m["body"] for m in b.recorded("message")] == ["offline 6"]


# 6. Blocking (XEP-0191)

async def test_blocking_stops_messages_until_unblocked(make_client, server):
    a_jid, a_password = server.new_account("spammer")
    b_jid, b_password = server.new_account("kid")
    a = await connect(make_client, a_jid, a_password, "pc", roster=False)
    b = await online(make_client, b_jid, b_password, "tablet", plugins=("xep_0191",))
    blocking = b.plugin["xep_0191"]

    assert await blocking.get_blocked_jids(timeout=T) == set()
    await blocking.block(JID(a_jid), timeout=T)
    push = await b.wait_for("blocked", timeout=T)
    assert [item["jid"] for item in push["block"]] == [JID(a_jid)]
    assert await blocking.get_blocked_jids(timeout=T) == {JID(a_jid)}

    for to in (b_jid, b.boundjid.full):
        msg_id = send_chat(a, to, f"spam to {to}")
        error = await a.wait_for("message_error", lambda m: m["id"] == msg_id, T,
                                 what=f"error for the message to blocking {to}")
        assert error["error"]["condition"] == "service-unavailable", error
        assert error["from"].bare == b_jid

    # The blocker cannot write to the blocked one either (XEP-0191 §3.3).
    msg_id = send_chat(b, a_jid, "to the blocked")
    error = await b.wait_for("message_error", lambda m: m["id"] == msg_id, T)
    assert error["error"]["condition"] == "not-acceptable", error
    assert error["error"].xml.find("{urn:xmpp:blocking:errors}blocked") is not None, error

    # The list is stored: another resource sees it at login.
    other = await connect(make_client, b_jid, b_password, "phone", plugins=("xep_0191",),
                          roster=False)
    assert await other.plugin["xep_0191"].get_blocked_jids(timeout=T) == {JID(a_jid)}

    await blocking.unblock(JID(a_jid), timeout=T)
    push = await b.wait_for("unblocked", timeout=T)
    assert [item["jid"] for item in push["unblock"]] == [JID(a_jid)]
    await other.wait_for("unblocked", timeout=T)
    assert await blocking.get_blocked_jids(timeout=T) == set()

    # The first message after unblocking arrives, and none from before did.
    send_chat(a, b_jid, "hello again")
    await got(b, "hello again", a_jid)
    assert [m["body"] for m in b.recorded("message", lambda m: m["from"].bare == a_jid)] \
        == ["hello again"]
    assert len(a.recorded("message_error")) == 2
