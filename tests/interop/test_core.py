"""RFC 6120 core with slixmpp: STARTTLS and direct TLS (XEP-0368), SASL SCRAM-SHA-1,
SCRAM-SHA-256 and PLAIN, resource binding, the RFC 3921 session iq, and the closing
`</stream:stream>` handshake; wrong passwords, unknown and deleted accounts; a resource
conflict; and a certificate that the client must refuse when it does not trust it."""

from __future__ import annotations

import ssl

import pytest
import slixmpp

from conftest import ClientFailed

TRANSPORTS = ("starttls", "direct_tls")
MECHANISMS = ("SCRAM-SHA-1", "SCRAM-SHA-256", "PLAIN")


async def assert_closes_cleanly(client) -> None:
    reason = await client.close_cleanly()
    assert reason == "End of stream", (
        f"the server did not answer </stream:stream> with its own (reason {reason!r}); "
        f"events: {client.events()}")


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHANISMS)
async def test_login_bind_and_close(make_client, account, transport, mech):
    jid, password = account
    client = await make_client(jid, password, transport=transport, mech=mech,
                               resource="interop")
    login = client.login
    assert login["mechanism"] == mech
    # STARTTLS was negotiated on the plain port, and only there.
    assert login["starttls"] == (transport == "starttls")
    assert login["tls_version"] in ("TLSv1.2", "TLSv1.3")
    assert login["boundjid"].bare == jid
    assert login["boundjid"].resource == "interop"
    assert client.boundjid.full == f"{jid}/interop"
    await assert_closes_cleanly(client)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_login_with_the_clients_own_choice_of_mechanism(make_client, account,
                                                              transport):
    """What an unconfigured slixmpp client picks among what roost offers must work: over
    TLS 1.3 Python has no tls-exporter, so slixmpp drops -PLUS and sends gs2 flag 'n'."""
    jid, password = account
    client = await make_client(jid, password, transport=transport)
    assert client.login["mechanism"].startswith("SCRAM-"), client.login
    await assert_closes_cleanly(client)


@pytest.mark.parametrize("mech", (None, "SCRAM-SHA-1", "SCRAM-SHA-256"))
async def test_login_over_tls_1_2(make_client, account, mech):
    """A client limited to TLS 1.2. Left to choose, slixmpp first tries -PLUS with
    tls-unique (which roost does not offer), gets <failure/>, and falls back."""
    def tls_1_2(client):
        client.ssl_context.maximum_version = ssl.TLSVersion.TLSv1_2

    jid, password = account
    client = await make_client(jid, password, mech=mech, configure=tls_1_2,
                               tolerate=() if mech else ("failed_auth",))
    assert client.login["tls_version"] == "TLSv1.2"
    assert client.login["mechanism"] == (mech or "SCRAM-SHA-256")
    await assert_closes_cleanly(client)


async def test_direct_tls_with_alpn_as_phones_send_it(make_client, account):
    """XEP-0368 clients such as Conversations offer ALPN "xmpp-client"; roost must not
    refuse the handshake for it (it may or may not select it)."""
    def alpn(client):
        client.ssl_context.set_alpn_protocols(["xmpp-client"])

    jid, password = account
    client = await make_client(jid, password, transport="direct_tls", configure=alpn)
    assert client.login["alpn"] in (None, "xmpp-client")
    await assert_closes_cleanly(client)


async def test_server_generates_a_resource(make_client, account):
    jid, password = account
    client = await make_client(jid, password)
    bound = client.login["boundjid"]
    assert bound.bare == jid
    assert bound.resource, f"no resource in {bound}"
    await assert_closes_cleanly(client)


async def test_two_resources_of_one_account(make_client, account):
    jid, password = account
    phone = await make_client(jid, password, resource="phone")
    laptop = await make_client(jid, password, resource="laptop", transport="direct_tls")
    assert phone.boundjid.full == f"{jid}/phone"
    assert laptop.boundjid.full == f"{jid}/laptop"
    assert not phone.seen("disconnected")
    await assert_closes_cleanly(laptop)
    await assert_closes_cleanly(phone)


async def test_same_resource_again_replaces_the_old_session(make_client, account):
    jid, password = account
    old = await make_client(jid, password, resource="tablet")
    new = await make_client(jid, password, resource="tablet")
    error = await old.first("stream_error")
    assert error["condition"] == "conflict"
    await old.first("disconnected")
    assert new.boundjid.full == f"{jid}/tablet"
    assert not new.seen("disconnected")
    await assert_closes_cleanly(new)


async def test_legacy_session_iq_is_accepted(make_client, account):
    """Old clients still send RFC 3921's session iq after binding; roost answers result."""
    jid, password = account
    client = await make_client(jid, password)
    iq = client.Iq()
    iq["type"] = "set"
    iq.enable("session")
    reply = await iq.send(timeout=10)
    assert reply["type"] == "result"
    await assert_closes_cleanly(client)


# Failed logins slow the next ones from the same address down (roost's throttle), so each
# test that fails a login on purpose has a server of its own: no test waits for another's.

@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mech", MECHANISMS)
async def test_wrong_password_is_not_authorized(make_client, fresh_server, transport, mech):
    jid, password = fresh_server.new_account()
    client = await make_client(jid, password + "x", server=fresh_server, transport=transport,
                               mech=mech, until="failed_auth")
    failure = await client.first("failed_auth")
    assert failure["condition"] == "not-authorized"
    assert not client.seen("session_start")
    assert not client.seen("auth_success")


async def test_unknown_account_is_not_authorized(make_client, fresh_server):
    client = await make_client(f"nobody@{fresh_server.domain}", "whatever",
                               server=fresh_server, mech="SCRAM-SHA-256", until="failed_auth")
    failure = await client.first("failed_auth")
    assert failure["condition"] == "not-authorized"
    assert not client.seen("session_start")


async def test_passwd_takes_effect_for_new_logins(make_client, fresh_server):
    jid, old_password = fresh_server.new_account()
    new_password = old_password + "-new"
    fresh_server.passwd(jid, new_password)
    refused = await make_client(jid, old_password, server=fresh_server, mech="SCRAM-SHA-1",
                                until="failed_auth")
    assert (await refused.first("failed_auth"))["condition"] == "not-authorized"
    for mech in ("SCRAM-SHA-1", "SCRAM-SHA-256"):
        client = await make_client(jid, new_password, server=fresh_server, mech=mech)
        assert client.login["mechanism"] == mech
        await assert_closes_cleanly(client)


async def test_deluser_removes_the_login(make_client, fresh_server):
    jid, password = fresh_server.new_account()
    client = await make_client(jid, password, server=fresh_server)
    await assert_closes_cleanly(client)
    assert jid in fresh_server.users()
    fresh_server.deluser(jid)
    assert jid not in fresh_server.users()
    refused = await make_client(jid, password, server=fresh_server, mech="SCRAM-SHA-256",
                                until="failed_auth")
    assert (await refused.first("failed_auth"))["condition"] == "not-authorized"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_untrusted_certificate_is_refused(make_client, account, transport):
    """Proves that the other tests really verify the certificate: without the server's
    certificate as trust anchor the same client must not get through TLS."""
    jid, password = account
    with pytest.raises(ClientFailed) as failed:
        await make_client(jid, password, transport=transport, ca_certs=None)
    message = str(failed.value)
    expected = "ssl_invalid_chain" if transport == "starttls" else "connection_failed"
    assert expected in message and "CERTIFICATE_VERIFY_FAILED" in message, message


def test_slixmpp_is_the_pinned_version():
    """The suite is written against one slixmpp; an unpinned upgrade shows up here."""
    from pathlib import Path
    pins = (Path(__file__).parent / "requirements.txt").read_text()
    assert f"slixmpp=={slixmpp.__version__}" in pins.split()
