"""Personal eventing (XEP-0163) with slixmpp's own plugins: a XEP-0172 nickname published
through xep_0163/xep_0060 reaches a contact whose client asked for it with `+notify` in its
XEP-0115 caps (which roost resolves by asking that client); an OMEMO-style device list with
open access read by a non-contact; bookmarks through XEP-0402 and XEP-0048 (XEP-0411); a
XEP-0223 private node."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
from slixmpp import Iq, register_stanza_plugin
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004.stanza import Form
from slixmpp.plugins.xep_0048.stanza import Bookmarks
from slixmpp.plugins.xep_0402.stanza import Conference
from slixmpp.xmlstream import ElementBase

PLUGINS = ("xep_0004", "xep_0030", "xep_0048", "xep_0049", "xep_0060", "xep_0115",
           "xep_0163", "xep_0172", "xep_0223", "xep_0402")
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"
DEVICELIST = "eu.siacs.conversations.axolotl.devicelist"
AXOLOTL = "eu.siacs.conversations.axolotl"
BOOKMARKS = "urn:xmpp:bookmarks:1"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
#: Seconds any one wait may take.
T = 10


class Secret(ElementBase):
    """Something a client keeps for itself in a XEP-0223 private node."""
    name = "secret"
    namespace = "roost:interop:secret"
    plugin_attrib = "roost_secret"
    interfaces = {"word"}
    sub_interfaces = interfaces


def with_plugins(client) -> None:
    for plugin in PLUGINS:
        client.register_plugin(plugin)


async def login(make_client, server, **opts):
    jid, password = server.new_account()
    return await make_client(jid, password, configure=with_plugins, server=server, **opts)


async def until(condition, what: str, timeout: float = T) -> None:
    """Waits (bounded) until `condition()` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)


def subscription(client, contact) -> str | None:
    roster = client.client_roster
    return roster[contact]["subscription"] if roster.has_jid(contact) else None


async def befriend(a, b) -> None:
    """Both clients available (with their caps), then a mutual presence subscription made
    by slixmpp's defaults: b's client authorizes a and subscribes back (auto_authorize,
    auto_subscribe), a's authorizes b."""
    a_jid, b_jid = a.boundjid.bare, b.boundjid.bare
    for client in (a, b):
        await client.get_roster(timeout=T)
        await announce_interests(client)
    a.send_presence_subscription(pto=b_jid)
    await until(lambda: subscription(a, b_jid) == "both" and subscription(b, a_jid) == "both",
                f"{a_jid} and {b_jid} subscribed both ways")


def watch_caps_queries(client) -> asyncio.Event:
    """An event set once the client has answered a disco#info query of the server (roost
    asking what the client's caps `ver` stands for)."""
    answered = asyncio.Event()

    def outgoing(stanza):
        if (isinstance(stanza, Iq) and stanza["type"] == "result"
                and str(stanza["to"]) == client.boundjid.domain
                and stanza.xml.find(f"{{{DISCO_INFO}}}query") is not None):
            answered.set()
        return stanza

    client.add_filter("out", outgoing)
    return answered


async def caps_resolved(watched: dict) -> None:
    """Waits until one of the clients (`{client: watch_caps_queries(client)}`) answered
    the server's caps query, then makes a round trip on it: the server handles a client's
    stanzas in order, so the answer has been checked and cached."""
    waits = {asyncio.ensure_future(event.wait()): client for client, event in watched.items()}
    done, pending = await asyncio.wait(waits, timeout=T, return_when=asyncio.FIRST_COMPLETED)
    for p in pending:
        p.cancel()
    assert done, "the server asked no client about its caps"
    await waits[done.pop()].get_roster(timeout=T)


def options(**fields) -> Form:
    """A publish-options form: `access_model="open"` is the field `pubsub#access_model`."""
    form = Form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBLISH_OPTIONS)
    for name, value in fields.items():
        form.add_field(var="pubsub#" + name, value=value)
    return form


async def error_condition(request) -> str:
    with pytest.raises(IqError) as failed:
        await request
    return failed.value.iq["error"]["condition"]


async def announce_interests(client) -> None:
    """Initial presence carrying caps with the `+notify` interests the plugins registered:
    the caps are brought up to date first (xep_0163 updates them in the background)."""
    await client.plugin["xep_0115"].update_caps(broadcast=False)
    client.send_presence()


async def test_a_nickname_reaches_a_contact_that_asked_for_it(make_client, server):
    mom = await login(make_client, server)
    dad = await login(make_client, server)
    watched = {client: watch_caps_queries(client) for client in (mom, dad)}
    nicks: asyncio.Queue = asyncio.Queue()
    published: asyncio.Queue = asyncio.Queue()
    # xep_0172 put `http://jabber.org/protocol/nick+notify` in dad's caps.
    dad.add_event_handler("user_nick_publish", nicks.put_nowait)
    dad.add_event_handler("pubsub_publish", published.put_nowait)
    await befriend(mom, dad)
    # roost did not know their caps: it asked one of the clients (disco#info on node#ver)
    # and checked the answer against the hash.
    await caps_resolved(watched)
    await mom.plugin["xep_0172"].publish_nick("Mom", timeout=T)
    msg = await asyncio.wait_for(nicks.get(), T)
    assert msg["from"] == mom.boundjid.bare
    assert msg["type"] == "headline"
    assert msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Mom"
    msg = await asyncio.wait_for(published.get(), T)
    assert msg["pubsub_event"]["items"]["node"] == "http://jabber.org/protocol/nick"

    # Dad's second device comes online: it gets the last published nickname.
    tablet_nicks: asyncio.Queue = asyncio.Queue()

    def configure(client):
        with_plugins(client)
        client.add_event_handler("user_nick_publish", tablet_nicks.put_nowait)

    tablet = await make_client(dad.boundjid.bare, dad.password, resource="tablet",
                               configure=configure)
    await announce_interests(tablet)
    msg = await asyncio.wait_for(tablet_nicks.get(), T)
    assert msg["pubsub_event"]["items"]["item"]["nick"]["nick"] == "Mom"
    assert msg["to"] == tablet.boundjid


async def test_an_omemo_device_list_with_open_access_is_read_by_a_non_contact(make_client,
                                                                          start_server):
    # Without the family room: its circle would make every account everyone's contact.
    server = start_server("--no-family-room")
    mom = await login(make_client, server)
    stranger = await login(make_client, server)
    device_list = ET.fromstring(f"<list xmlns='{AXOLOTL}'><device id='4223'/></list>")
    await mom.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=device_list,
                                         options=options(access_model="open"), timeout=T)
    iq = await stranger.plugin["xep_0060"].get_items(mom.boundjid.bare, DEVICELIST, timeout=T)
    items = list(iq["pubsub"]["items"])
    assert [item["id"] for item in items] == ["current"]
    payload = items[0]["payload"]
    assert payload.tag == f"{{{AXOLOTL}}}list"
    assert [d.get("id") for d in payload] == ["4223"]
    # Asking for open access again is met; asking for a whitelist is not (XEP-0060 §7.1.5).
    await mom.plugin["xep_0060"].publish(None, DEVICELIST, id="current", payload=device_list,
                                         options=options(access_model="open"), timeout=T)
    request = mom.plugin["xep_0060"].publish(None, DEVICELIST, id="current",
                                             payload=device_list,
                                             options=options(access_model="whitelist"),
                                             timeout=T)
    assert await error_condition(request) == "conflict"
    # A node with the default (presence) access model is not for strangers.
    await mom.plugin["xep_0172"].publish_nick("Mom", timeout=T)
    request = stranger.plugin["xep_0060"].get_items(mom.boundjid.bare,
                                                    "http://jabber.org/protocol/nick",
                                                    timeout=T)
    assert await error_condition(request) == "not-authorized"


async def test_bookmarks_through_xep_0402_and_xep_0048(make_client, server):
    mom = await login(make_client, server)
    pubsub, legacy = mom.plugin["xep_0060"], mom.plugin["xep_0048"]
    info = await mom.plugin["xep_0030"].get_info(jid=mom.boundjid.bare, local=False,
                                                 cached=False, timeout=T)
    assert f"{BOOKMARKS}#compat" in info["disco_info"]["features"]
    # XEP-0402, with the publish-options the XEP asks for …
    conference = Conference()
    conference["name"] = "Family"
    conference["autojoin"] = True
    conference["nick"] = "Mom"
    await pubsub.publish(None, BOOKMARKS, id="family@muc.localhost", payload=conference,
                         options=options(persist_items="true", max_items="max",
                                         send_last_published_item="never",
                                         access_model="whitelist"),
                         timeout=T)
    # … is seen through XEP-0048 in private storage, after the bookmark of roost's own
    # family room that every account gets when it is made.
    iq = await legacy.get_bookmarks(method="xep_0049", timeout=T)
    rooms = [(c["jid"], c["name"], c["autojoin"], c["nick"])
             for c in iq["private"]["bookmarks"]["conferences"]]
    assert rooms == [(f"family@groups.{server.domain}", "Family", True, mom.boundjid.user),
                     ("family@muc.localhost", "Family", True, "Mom")]

    # XEP-0048 …
    bookmarks = Bookmarks()
    bookmarks.add_conference("chess@muc.localhost", "Mother", name="Chess", autojoin=True)
    bookmarks.add_url("https://recipes.example/", name="Recipes")
    await legacy.set_bookmarks(bookmarks, method="xep_0049", timeout=T)
    # … is seen through XEP-0402: the family room is gone, the chess room is there.
    iq = await pubsub.get_items(mom.boundjid.bare, BOOKMARKS, timeout=T)
    rooms = {item["id"]: item["conference"] for item in iq["pubsub"]["items"]}
    assert list(rooms) == ["chess@muc.localhost"]
    assert rooms["chess@muc.localhost"]["name"] == "Chess"
    assert rooms["chess@muc.localhost"]["nick"] == "Mother"
    assert rooms["chess@muc.localhost"]["autojoin"] is True
    # The URL bookmark, which XEP-0402 cannot hold, stays in XEP-0048.
    iq = await legacy.get_bookmarks(method="xep_0049", timeout=T)
    assert [u["url"] for u in iq["private"]["bookmarks"]["urls"]] == ["https://recipes.example/"]

    # Bookmarks are private.
    dad = await login(make_client, server)
    request = dad.plugin["xep_0060"].get_items(mom.boundjid.bare, BOOKMARKS, timeout=T)
    assert await error_condition(request) == "not-allowed"


async def test_a_xep_0223_private_node(make_client, server):
    mom = await login(make_client, server)
    dad = await login(make_client, server)
    await befriend(mom, dad)
    register_stanza_plugin(mom.plugin["xep_0060"].stanza.Item, Secret)
    secret = Secret()
    secret["word"] = "swordfish"
    await mom.plugin["xep_0223"].store(secret, node=Secret.namespace, id="current", timeout=T)
    iq = await mom.plugin["xep_0223"].retrieve(Secret.namespace, timeout=T)
    assert iq["pubsub"]["items"]["item"]["roost_secret"]["word"] == "swordfish"
    # Even a contact with a presence subscription may not read it.
    request = dad.plugin["xep_0060"].get_items(mom.boundjid.bare, Secret.namespace, timeout=T)
    assert await error_condition(request) == "not-allowed"
