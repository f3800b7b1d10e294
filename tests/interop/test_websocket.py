"""XMPP over WebSocket (RFC 7395) with independent clients from npm: xmpp.js
(@xmpp/client) in Node logs in over wss:// and chats with a slixmpp account; Converse.js in
headless Chromium (Debian's package) finds the server by XEP-0156 host-meta, logs in over
WebSocket, sends a message that a slixmpp account receives, and shows the answer; its
screenshot is kept as a test artifact (tests/interop/artifacts/converse.png).

The npm packages are pinned in tests/web/package.json (installed by .ci/run); a test whose
tool is missing fails rather than skips, so CI cannot pass without running it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from conftest import ROOT

T = 20.0
WEB = ROOT / "tests" / "web"
ARTIFACTS = ROOT / "tests" / "interop" / "artifacts"


def node() -> str:
    path = shutil.which("node")
    assert path, "node is needed (.ci/run installs it)"
    assert (WEB / "node_modules" / "@xmpp" / "client").is_dir(), \
        "npm packages missing: (cd tests/web && npm ci)"
    return path


async def run_node(server, *args: str, timeout: float = 60.0) -> tuple[int, list[dict], str]:
    """Runs a Node script of tests/web; returns its exit code, JSON lines and stderr."""
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(server.cert))
    proc = await asyncio.create_subprocess_exec(
        node(), *args, cwd=WEB, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    return proc.returncode, lines, err.decode()


async def answering(make_client, server, prefix: str, answer: str):
    """A slixmpp account that answers every chat message with `answer`."""
    jid, password = server.new_account(prefix)
    peer = await make_client(jid, password, record=("message", "presence"), server=server)
    # Available, so that messages to the bare JID reach it (RFC 6121 §8.5.2).
    peer.send_presence()
    await peer.wait_for("presence", lambda p: p["from"] == peer.boundjid, T,
                        what="its own presence")

    def reply(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            peer.send_message(mto=msg["from"], mbody=answer, mtype="chat")
    peer.add_event_handler("message", reply)
    return jid, peer


async def test_xmppjs_logs_in_over_websocket_and_chats_with_slixmpp(make_client, server):
    peer_jid, peer = await answering(make_client, server, "peer", "hello from slixmpp")
    jid, password = server.new_account("js")
    url = f"wss://localhost:{server.https_port}/xmpp-websocket"
    code, lines, err = await run_node(server, "xmppjs_chat.mjs", url, server.domain,
                                      jid.split("@")[0], password, peer_jid)
    assert code == 0, f"xmpp.js: exit {code}, {lines}, {err}"
    online = [l for l in lines if l["event"] == "online"]
    # xmpp.js logs in with SASL2 and Bind 2 when offered: the server makes the resource
    # from its tag (XEP-0386), so it starts with "xmppjs".
    assert online and online[0]["jid"].startswith(f"{jid}/xmppjs"), lines
    got = await peer.wait_for("message", lambda m: m["body"] == "hello from xmpp.js", T,
                              what="xmpp.js's message")
    assert str(got["from"]) == online[0]["jid"]
    answer = [l for l in lines if l["event"] == "message"]
    assert answer and answer[0]["body"] == "hello from slixmpp", lines
    assert answer[0]["from"].startswith(peer_jid), lines


class _PageServer:
    """Serves tests/web on 127.0.0.1 (the page, Converse.js's files) in a thread."""

    def __init__(self):
        import functools
        import http.server
        import threading
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(WEB))
        handler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_converse_in_chromium_discovers_logs_in_over_websocket_and_chats(
        make_client, start_server):
    # XEP-0156 discovery asks https://DOMAIN/.well-known/host-meta: port 443, on loopback.
    server = start_server("--https-port", "443")
    assert shutil.which(os.environ.get("CHROMIUM", "chromium")), \
        "chromium is needed (.ci/run installs Debian's package)"
    node()
    peer_jid, peer = await answering(make_client, server, "peer", "hello from slixmpp")
    jid, password = server.new_account("web")
    pages = _PageServer()
    try:
        from urllib.parse import urlencode
        url = (f"http://127.0.0.1:{pages.port}/converse.html?"
               + urlencode({"jid": jid, "password": password, "peer": peer_jid}))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "converse.png"
        code, lines, err = await run_node(server, "converse_cdp.mjs", url,
                                          "hello from slixmpp", str(shot), timeout=90)
    finally:
        pages.close()
    assert lines, f"no result from the browser driver: exit {code}, {err}"
    result = lines[-1]
    events = result.get("events", [])
    connected = [e for e in events if e["event"] == "connected"]
    assert connected, f"Converse did not connect: {result} {err}"
    # Found by host-meta, not configured.
    assert connected[0]["url"] == "wss://localhost/xmpp-websocket", connected
    got = await peer.wait_for("message", lambda m: m["body"] == "hello from Converse", T,
                              what="Converse's message")
    assert str(got["from"]).startswith(f"{jid}/"), got["from"]
    assert code == 0 and result.get("shown"), f"the answer is not on the page: {result}"
    assert shot.stat().st_size > 10_000, "a screenshot of the chat"
    # The server saw a WebSocket session, and nothing went wrong.
    assert "(WebSocket)" in server.log()
