"""Message archives and carbons with slixmpp's own plugins: XEP-0313 `iterate` over 120
messages forwards and backwards (`reverse=True`, which starts from an empty RSM <before/>),
`retrieve` with a `with` filter whose result ids are the XEP-0359 stanza-ids the recipient
got, and XEP-0280 carbons between two resources (`carbon_received`, `carbon_sent`)."""

from __future__ import annotations

import asyncio

from slixmpp import JID

PLUGINS = ("xep_0030", "xep_0059", "xep_0280", "xep_0297", "xep_0313", "xep_0359")
#: Seconds any single wait may take.
WAIT = 20.0


def with_plugins(client) -> None:
    for plugin in PLUGINS:
        client.register_plugin(plugin)


async def online(make_client, jid: str, password: str, resource: str | None = None):
    client = await make_client(jid, password, resource=resource, configure=with_plugins)
    client.send_presence()
    return client


def inbox(client, event: str = "message") -> asyncio.Queue:
    """A queue that gets every `event` (chat messages by default) the client sees."""
    queue: asyncio.Queue = asyncio.Queue()
    client.add_event_handler(event, queue.put_nowait)
    return queue


async def take(queue: asyncio.Queue, n: int) -> list:
    return [await asyncio.wait_for(queue.get(), WAIT) for _ in range(n)]


def body_of(result) -> str:
    return result["mam_result"]["forwarded"]["stanza"]["body"]


async def test_iterate_120_messages_both_ways(make_client, server):
    kid_jid, kid_pw = server.new_account("kid")
    mom_jid, mom_pw = server.new_account("mom")
    kid = await online(make_client, kid_jid, kid_pw)
    mom = await online(make_client, mom_jid, mom_pw)
    got = inbox(mom)
    await asyncio.sleep(0.2)  # presence settles
    bodies = [f"m{i:03}" for i in range(120)]
    for b in bodies:
        kid.send_message(mto=JID(mom_jid), mbody=b, mtype="chat")
    delivered = await take(got, 120)
    assert [m["body"] for m in delivered] == bodies

    xep_0313 = kid.plugin["xep_0313"]
    forwards = [body_of(m) async for m in xep_0313.iterate(rsm={"max": 50})]
    assert forwards == bodies
    backwards = [body_of(m) async for m in xep_0313.iterate(reverse=True, rsm={"max": 50})]
    assert backwards == list(reversed(bodies))
    # `total` stops early; a page size that divides the archive evenly ends cleanly too.
    newest = [body_of(m) async for m in xep_0313.iterate(reverse=True, rsm={"max": 40},
                                                           total=30)]
    assert newest == list(reversed(bodies))[:30]
    even = [body_of(m) async for m in xep_0313.iterate(rsm={"max": 40})]
    assert even == bodies

    # One page with a `with` filter, from the recipient's side: the result ids are the
    # stanza-ids mom's messages carried.
    iq = await mom.plugin["xep_0313"].retrieve(with_jid=JID(kid_jid), rsm={"max": 10},
                                               timeout=WAIT)
    results = iq["mam"]["results"]
    assert [body_of(r) for r in results] == bodies[:10]
    assert [r["mam_result"]["id"] for r in results] == \
        [m["stanza_id"]["id"] for m in delivered[:10]]
    assert all(m["stanza_id"]["by"] == JID(mom_jid).bare for m in delivered)
    fin = iq["mam_fin"]
    assert fin["rsm"]["count"] == "120"
    assert fin["rsm"]["last"] == results[-1]["mam_result"]["id"]
    assert fin["complete"] in ("", "false"), "more pages follow"

    # Nobody else's: a filter on a stranger is empty, and the archive's form and
    # metadata are what slixmpp expects.
    iq = await kid.plugin["xep_0313"].retrieve(with_jid=JID(f"nobody@{server.domain}"),
                                               timeout=WAIT)
    assert iq["mam"]["results"] == []
    assert iq["mam_fin"]["complete"] == "true"
    form = await kid.plugin["xep_0313"].get_fields(timeout=WAIT)
    assert {"with", "start", "end", "after-id", "before-id", "ids"} <= set(form.get_fields())
    meta = await kid.plugin["xep_0313"].get_archive_metadata(timeout=WAIT)
    assert meta["mam_metadata"]["start"]["id"] == \
        (await anext(xep_0313.iterate(rsm={"max": 1})))["mam_result"]["id"]


async def test_carbons_between_two_resources(make_client, server):
    kid_jid, kid_pw = server.new_account("kid")
    mom_jid, mom_pw = server.new_account("mom")
    phone = await online(make_client, kid_jid, kid_pw, resource="phone")
    laptop = await online(make_client, kid_jid, kid_pw, resource="laptop")
    for client in (phone, laptop):
        await client.plugin["xep_0280"].enable(timeout=WAIT)
    mom = await online(make_client, mom_jid, mom_pw)
    phone_chat, laptop_chat, mom_chat = inbox(phone), inbox(laptop), inbox(mom)
    laptop_received = inbox(laptop, "carbon_received")
    laptop_sent = inbox(laptop, "carbon_sent")
    phone_sent = inbox(phone, "carbon_sent")
    await asyncio.sleep(0.2)

    # Mom writes to the phone: the laptop sees it as a received carbon.
    mom.send_message(mto=JID(f"{kid_jid}/phone"), mbody="to the phone", mtype="chat")
    (direct,) = await take(phone_chat, 1)
    assert direct["body"] == "to the phone"
    (carbon,) = await take(laptop_received, 1)
    inner = carbon["carbon_received"]
    assert inner["body"] == "to the phone"
    assert inner["from"] == JID(mom.boundjid)
    assert inner["stanza_id"]["id"] == direct["stanza_id"]["id"]

    # The phone answers: the laptop sees what was sent; the phone gets no copy of its own.
    phone.send_message(mto=JID(mom_jid), mbody="from the phone", mtype="chat")
    (answer,) = await take(mom_chat, 1)
    assert answer["body"] == "from the phone"
    (carbon,) = await take(laptop_sent, 1)
    inner = carbon["carbon_sent"]
    assert inner["body"] == "from the phone"
    assert inner["to"] == JID(mom_jid)
    assert inner["from"] == JID(phone.boundjid)

    # Private messages are not copied; after disabling, nothing more comes.
    msg = phone.make_message(mto=JID(mom_jid), mbody="private", mtype="chat")
    msg.enable("carbon_private")
    msg.send()
    await take(mom_chat, 1)
    await laptop.plugin["xep_0280"].disable(timeout=WAIT)
    mom.send_message(mto=JID(f"{kid_jid}/phone"), mbody="after disable", mtype="chat")
    await take(phone_chat, 1)
    await asyncio.sleep(0.5)
    assert laptop_received.empty() and laptop_sent.empty() and laptop_chat.empty()
    assert phone_sent.empty()
