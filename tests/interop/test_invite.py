"""Invitations with independent software: slixmpp registers an account with an invitation
token (XEP-0077 with XEP-0445's preauth step, which slixmpp's xep_0077 plugin does not
send: the test sends that IQ itself, then uses the plugin's form and registration), then
logs in with it; Debian's headless Chromium opens a landing page at phone size (390×844),
its screenshots are kept as test artifacts (tests/interop/artifacts/invite-landing.png and
invite-created.png), creates an account through the fallback form, and slixmpp logs in with
that account. The tokens come from `roost invite`, the real command, on the live data
directory."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil

import slixmpp
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from test_websocket import ARTIFACTS, node, run_node

T = 20.0


def invite(server, *args: str) -> tuple[str, str]:
    """`roost invite ARGS`: the token and the landing-page link it printed."""
    done = server.cli("invite", *args)
    assert done.returncode == 0, done.stderr
    link = re.search(r"https://\S+/invite/([A-Za-z0-9_-]+)", done.stdout)
    assert link, done.stdout
    assert f"xmpp:{server.domain}?register;preauth={link.group(1)}" in done.stdout
    return link.group(1), link.group(0)


class Registrar(slixmpp.ClientXMPP):
    """A slixmpp client that registers before logging in. xep_0077 provides the stanzas and
    `get_registration`; its stream-feature handler is replaced by one that first sends the
    XEP-0445 preauth IQ, then fetches the form and registers, all before SASL (slixmpp
    awaits feature handlers in order). `outcome` gets "registered" or the error
    condition; after a registration slixmpp logs in on the same stream (`logged_in`)."""

    def __init__(self, jid: str, password: str, token: str):
        super().__init__(jid, password)
        self.token = token
        loop = asyncio.get_event_loop()
        self.outcome: asyncio.Future = loop.create_future()
        self.logged_in: asyncio.Future = loop.create_future()
        self.register_plugin("xep_0077")
        self.unregister_feature("register", self.plugin["xep_0077"].order)
        self.register_feature("register", self.on_register_feature, restart=False,
                              order=self.plugin["xep_0077"].order)
        self.add_event_handler("session_start", self.on_session)
        self.enable_direct_tls, self.enable_starttls, self.enable_plaintext = False, True, False

    async def on_register_feature(self, _features):
        if "mechanisms" in self.features:
            return False  # logged in already: the features after SASL
        # COMPAT: slixmpp holds back every stanza but bind/session/register ones before
        # the session starts; the preauth IQ must go out now.
        self._always_send_everything = True
        try:
            iq = self.make_iq_set(ito=self.boundjid.domain)
            iq.append(ET.Element("{urn:xmpp:pars:0}preauth", {"token": self.token}))
            await iq.send(timeout=T)
            form = await self.plugin["xep_0077"].get_registration(timeout=T)
            assert {"username", "password"} <= form["register"]["fields"], form
            reg = self.Iq()
            reg["type"] = "set"
            reg["register"]["username"] = self.boundjid.user
            reg["register"]["password"] = self.password
            await reg.send(timeout=T)
            self.outcome.set_result("registered")
        except IqError as e:
            self.outcome.set_result(e.iq["error"]["condition"])
            self.abort()
            return True
        finally:
            self._always_send_everything = False
        return False

    def on_session(self, _):
        if not self.logged_in.done():
            self.logged_in.set_result(str(self.boundjid.bare))


async def register(server, user: str, password: str, token: str):
    c = Registrar(f"{user}@{server.domain}", password, token)
    c.ca_certs = str(server.cert)
    c.connect(server.host, server.c2s_port)
    return c, await asyncio.wait_for(c.outcome, T)


async def test_slixmpp_registers_with_an_invitation_token_and_logs_in(make_client, server):
    token, _ = invite(server)
    password = secrets.token_urlsafe(10)
    c, outcome = await register(server, "invited", password, token)
    assert outcome == "registered"
    # The same stream goes on to log in with the new account.
    assert await asyncio.wait_for(c.logged_in, T) == f"invited@{server.domain}"
    c.abort()
    # And a new connection logs in as any client would.
    logged = await make_client(f"invited@{server.domain}", password, server=server)
    assert str(logged.boundjid.bare) == f"invited@{server.domain}"
    # The token is used up: a second device is refused at the preauth step.
    c2, outcome = await register(server, "second", "pw-second", token)
    assert outcome == "item-not-found"
    assert f"second@{server.domain}" not in server.users()


async def test_chromium_registers_through_the_landing_page_and_slixmpp_logs_in(
        make_client, server):
    assert shutil.which("chromium"), "chromium is needed (.ci/run installs it)"
    node()
    token, link = invite(server, "--https-port", str(server.https_port))
    url = f"https://localhost:{server.https_port}/invite/{token}"
    assert link == url, (link, url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(10)
    code, lines, err = await run_node(server, "invite_cdp.mjs", url, "Grandma", password,
                                      str(ARTIFACTS), timeout=90.0)
    assert code == 0, f"invite_cdp.mjs: exit {code}, {lines}, {err}"
    result = lines[-1]
    landing = result["landing"]
    assert landing["scripts"] == 0, landing
    assert landing["appLink"] == f"xmpp:{server.domain}?register;preauth={token}", landing
    assert landing["qr"], landing
    assert any("Conversations" in a for a in landing["apps"]), landing
    assert any("Monal" in a for a in landing["apps"]), landing
    assert landing["scrollWidth"] <= 390, f"wider than the phone: {landing}"
    assert result["jid"] == f"grandma@{server.domain}", result
    for shot in ("invite-landing.png", "invite-created.png"):
        data = (ARTIFACTS / shot).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, shot
    client = await make_client(f"grandma@{server.domain}", password, server=server)
    assert str(client.boundjid.bare) == f"grandma@{server.domain}"
