"""XEP-0353 call invitations with slixmpp's own `xep_0353` plugin: a call to a bare JID rings
on every available resource of the callee — the one of highest priority and a phone of
lower priority that told the server it is inactive (XEP-0352) — and the caller's retraction
reaches them the same way.
"""

from __future__ import annotations

from slixmpp import JID

from test_im import T, barrier, send_presence

EVENTS = ("presence", "jingle_message_propose", "jingle_message_retract")


async def callee(make_client, jid, password, resource, priority, **opts):
    client = await make_client(jid, password, resource=resource,
                               plugins=("xep_0199", "xep_0353", "xep_0352"),
                               record=EVENTS, **opts)
    await send_presence(client, priority=priority)
    return client


async def test_a_call_rings_every_resource_even_an_inactive_one(make_client, server):
    a_jid, a_password = server.new_account("caller")
    b_jid, b_password = server.new_account("callee")
    caller = await make_client(a_jid, a_password, resource="phone",
                               plugins=("xep_0199", "xep_0353"))
    tablet = await callee(make_client, b_jid, b_password, "tablet", 5)
    phone = await callee(make_client, b_jid, b_password, "phone", 0)
    await barrier(phone)
    phone.plugin["xep_0352"].send_inactive()
    await barrier(phone)

    caller.plugin["xep_0353"].propose(JID(b_jid), "call-1", [("audio", "urn:xmpp:jingle:apps:rtp:1")])
    for device in (tablet, phone):
        m = await device.wait_for("jingle_message_propose",
                                  lambda m: m["jingle_propose"]["id"] == "call-1", T,
                                  what=f"the call on {device.boundjid.resource}")
        assert m["from"] == caller.boundjid

    caller.plugin["xep_0353"].retract(JID(b_jid), "call-1")
    for device in (tablet, phone):
        await device.wait_for("jingle_message_retract",
                              lambda m: m["jingle_retract"]["id"] == "call-1", T,
                              what=f"the retraction on {device.boundjid.resource}")
