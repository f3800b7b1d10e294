"""XEP-0363 HTTP File Upload with slixmpp's own plugin (xep_0363, which PUTs with aiohttp):
it discovers upload.<domain> through disco, reads max-file-size, asks for a slot and
uploads a photo over HTTPS; the link goes to another account in a message (XEP-0066 out
of band data, as Conversations sends it), which downloads it byte-identical. A file above
the announced size is refused by the plugin before any request, and a slot request above
it by the server (not-acceptable)."""

from __future__ import annotations

import hashlib
import os
import ssl

import aiohttp
import pytest
from slixmpp.exceptions import IqError

T = 20.0
PLUGINS = ("xep_0030", "xep_0066", "xep_0128", "xep_0363")
MAX = 2 * 1024 * 1024


@pytest.fixture
def server(start_server):
    return start_server("--upload-max-size", str(MAX))


def trusting(server) -> ssl.SSLContext:
    """TLS trusting only the server's self-signed certificate (which names localhost)."""
    return ssl.create_default_context(cafile=str(server.cert))


@pytest.fixture
def https_to(monkeypatch):
    """slixmpp's uploads go through an aiohttp session trusting the test server only."""
    def use(server):
        import slixmpp.plugins.xep_0363.http_upload as http_upload
        real = aiohttp.ClientSession

        def session(**kwargs):
            return real(connector=aiohttp.TCPConnector(ssl=trusting(server)), **kwargs)
        monkeypatch.setattr(http_upload, "ClientSession", session)
    return use


async def login(make_client, server, prefix):
    jid, password = server.new_account(prefix)
    return await make_client(jid, password, plugins=PLUGINS, record=("message",))


async def test_a_photo_uploaded_by_slixmpp_downloads_byte_identical_on_another_account(
        make_client, server, https_to, tmp_path):
    https_to(server)
    mom = await login(make_client, server, "mom")
    dad = await login(make_client, server, "dad")
    photo = tmp_path / "family photo.jpg"
    data = os.urandom(1024 * 1024 + 123)
    photo.write_bytes(data)

    url = await mom.plugin["xep_0363"].upload_file(photo, timeout=T)
    assert mom.plugin["xep_0363"].upload_service == f"upload.{server.domain}"
    assert mom.plugin["xep_0363"].max_file_size == MAX
    assert url.startswith(f"https://localhost:{server.https_port}/upload/"), url
    assert url.endswith("/family%20photo.jpg"), url

    msg = mom.make_message(mto=dad.boundjid, mbody=url, mtype="chat")
    msg["oob"]["url"] = url
    msg.send()
    got = await dad.wait_for("message", lambda m: m["oob"]["url"] == url, T,
                             what="the message with the link")
    async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=trusting(server))) as http:
        async with http.get(got["oob"]["url"]) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/jpeg"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            body = await response.read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_a_file_above_the_announced_size_is_refused(make_client, server, https_to,
                                                          tmp_path):
    https_to(server)
    from slixmpp.plugins.xep_0363.http_upload import FileTooBig
    client = await login(make_client, server, "big")
    big = tmp_path / "video.mp4"
    big.write_bytes(b"\0" * (MAX + 1))
    with pytest.raises(FileTooBig):
        await client.plugin["xep_0363"].upload_file(big, timeout=T)
    # Asked anyway, the server says not-acceptable.
    with pytest.raises(IqError) as refused:
        await client.plugin["xep_0363"].request_slot(
            f"upload.{server.domain}", "video.mp4", MAX + 1, "video/mp4", timeout=T)
    assert refused.value.iq["error"]["condition"] == "not-acceptable"
