"""The service modules with slixmpp's own plugins: XEP-0199 ping, XEP-0092 version, XEP-0030
disco#info of the server (and XEP-0115: slixmpp verifies the caps hash of the stream
features itself), XEP-0054 vCard set and get, XEP-0049 private storage, and XEP-0012 last
activity of the server and of an account that did not approve the requester."""

from __future__ import annotations

import asyncio
import re

import pytest
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ElementBase

from conftest import ROOT

PLUGINS = ("xep_0030", "xep_0012", "xep_0049", "xep_0054", "xep_0092", "xep_0115",
           "xep_0199")


class Prefs(ElementBase):
    """A client's private preferences, as XEP-0049 stores them."""
    name = "prefs"
    namespace = "roost:interop:prefs"
    plugin_attrib = "roost_prefs"
    interfaces = {"color"}
    sub_interfaces = interfaces


def with_plugins(client) -> None:
    for plugin in PLUGINS:
        client.register_plugin(plugin)
    client.plugin["xep_0049"].register(Prefs)


def cargo_version() -> str:
    cargo = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', cargo, re.M).group(1)


async def login(make_client, server):
    jid, password = server.new_account()
    return await make_client(jid, password, configure=with_plugins, server=server)


async def error_condition(request) -> str:
    with pytest.raises(IqError) as failed:
        await request
    return failed.value.iq["error"]["condition"]


async def test_ping_the_server_and_an_account(make_client, server):
    client = await login(make_client, server)
    rtt = await client.plugin["xep_0199"].ping(jid=server.domain, timeout=10)
    assert rtt >= 0
    rtt = await client.plugin["xep_0199"].ping(jid=client.boundjid.bare, timeout=10)
    assert rtt >= 0


async def test_software_version(make_client, server):
    client = await login(make_client, server)
    iq = await client.plugin["xep_0092"].get_version(server.domain, timeout=10)
    version = iq["software_version"]
    assert version["name"] == "roost"
    assert version["version"] == cargo_version()
    assert version["os"] == "", "roost does not tell its operating system"


async def test_disco_info_of_the_server(make_client, server):
    client = await login(make_client, server)
    iq = await client.plugin["xep_0030"].get_info(jid=server.domain, local=False,
                                                  cached=False, timeout=10)
    info = iq["disco_info"]
    assert ("server", "im", None, "roost") in info["identities"], info["identities"]
    features = set(info["features"])
    for feature in ("http://jabber.org/protocol/disco#info",
                    "http://jabber.org/protocol/disco#items", "urn:xmpp:ping",
                    "jabber:iq:version", "urn:xmpp:time", "jabber:iq:last", "vcard-temp",
                    "jabber:iq:private"):
        assert feature in features, f"{feature} not in {sorted(features)}"


async def accepted_caps(caps, domain: str) -> str | None:
    """The ver slixmpp's XEP-0115 plugin accepted for `domain` (it checks the hash itself),
    waiting up to 5 s; None if it never did."""
    for _ in range(100):
        ver = await caps.get_verstring(domain)
        if ver:
            return ver
        await asyncio.sleep(0.05)
    return None


async def test_caps_in_stream_features_verify(make_client, server):
    """slixmpp's XEP-0115 plugin reads the <c/> of the stream features, fetches node#ver
    and keeps the ver only if its own recomputation of the hash matches."""
    client = await login(make_client, server)
    caps = client.plugin["xep_0115"]
    assert await accepted_caps(caps, server.domain), \
        "slixmpp did not accept the server's caps (hash mismatch or no <c/>)"
    info = await caps.get_caps(jid=server.domain)
    assert "jabber:iq:version" in info["features"]


async def test_vcard_set_and_get_from_another_account(make_client, server):
    mom = await login(make_client, server)
    dad = await login(make_client, server)
    vcard = mom.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Mom Interop"
    vcard["N"]["GIVEN"] = "Mom"
    await mom.plugin["xep_0054"].publish_vcard(vcard, timeout=10)
    iq = await dad.plugin["xep_0054"].get_vcard(mom.boundjid.bare, timeout=10)
    assert iq["vcard_temp"]["FN"] == "Mom Interop"
    assert iq["vcard_temp"]["N"]["GIVEN"] == "Mom"
    # Dad never set one: an empty vCard.
    iq = await mom.plugin["xep_0054"].get_vcard(dad.boundjid.bare, timeout=10)
    assert iq["vcard_temp"]["FN"] == ""
    # Nobody sets another account's.
    forged = dad.make_iq_set(ito=mom.boundjid.bare)
    forged.append(dad.plugin["xep_0054"].make_vcard())
    assert await error_condition(forged.send(timeout=10)) == "forbidden"


async def test_private_storage_is_per_account(make_client, server):
    mom = await login(make_client, server)
    dad = await login(make_client, server)
    prefs = Prefs()
    prefs["color"] = "blue"
    await mom.plugin["xep_0049"].store(prefs, timeout=10)
    iq = await mom.plugin["xep_0049"].retrieve("roost_prefs", timeout=10)
    assert iq["private"]["roost_prefs"]["color"] == "blue"
    iq = await dad.plugin["xep_0049"].retrieve("roost_prefs", timeout=10)
    assert iq["private"]["roost_prefs"]["color"] == "", "dad does not see mom's"
    snoop = dad.make_iq_get(ito=mom.boundjid.bare)
    snoop["private"].enable("roost_prefs")
    assert await error_condition(snoop.send(timeout=10)) == "forbidden"


async def test_last_activity(make_client, start_server):
    # Without the family room: its circle would make every account everyone's contact.
    server = start_server("--no-family-room")
    client = await login(make_client, server)
    stranger = await login(make_client, server)
    iq = await client.plugin["xep_0012"].get_last_activity(server.domain, timeout=10)
    assert iq["last_activity"]["seconds"] >= 0
    assert not iq["last_activity"]["status"], "no text for a server"
    # Without a presence subscription approved by the account: forbidden.
    request = stranger.plugin["xep_0012"].get_last_activity(client.boundjid.bare,
                                                            timeout=10)
    assert await error_condition(request) == "forbidden"


async def test_contact_addresses(make_client, start_server):
    """XEP-0157: slixmpp reads the serverinfo form of the server's disco#info (XEP-0128),
    and its XEP-0115 plugin still accepts the caps hash, which covers the form."""
    srv = start_server("--contact-admin", "mailto:mom@example.org",
                       "--contact-admin", "xmpp:mom@localhost",
                       "--contact-abuse", "mailto:abuse@example.org")
    jid, password = srv.new_account()
    client = await make_client(jid, password, server=srv, configure=with_plugins)
    iq = await client.plugin["xep_0030"].get_info(jid=srv.domain, local=False,
                                                  cached=False, timeout=10)
    forms = [f for f in iq["disco_info"].xml.findall("{jabber:x:data}x")]
    assert len(forms) == 1, iq
    fields = {}
    for field in forms[0].findall("{jabber:x:data}field"):
        fields[field.get("var")] = [v.text for v in field.findall("{jabber:x:data}value")]
    assert fields["FORM_TYPE"] == ["http://jabber.org/network/serverinfo"]
    assert fields["admin-addresses"] == ["mailto:mom@example.org", "xmpp:mom@localhost"]
    assert fields["abuse-addresses"] == ["mailto:abuse@example.org"]
    assert await accepted_caps(client.plugin["xep_0115"], srv.domain), \
        "slixmpp did not accept the server's caps with the form in the hash"
