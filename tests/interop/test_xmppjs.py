"""SASL2 (XEP-0388), Bind 2 (XEP-0386) and FAST (XEP-0484) with xmpp.js, an independent
client library that implements them (`@xmpp/client` 0.14.0, pinned in xmppjs/package.json
and its lock file; `run.sh` installs it with `npm ci`).

xmpp.js logs in with SCRAM-SHA-1 through SASL2 and Bind 2, asks for a FAST token and gets
one; a second client with the same user-agent id, the token and a wrong password logs in
with the token alone. The server's log says which way each login went.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from conftest import ROOT

SCRIPT_DIR = ROOT / "tests" / "interop" / "xmppjs"


def test_xmppjs_scram_through_sasl2_then_fast_token(server):
    node = shutil.which("node")
    assert node, "node is needed (Node.js 20.10 or later)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip().lstrip("v")
    assert tuple(int(x) for x in version.split(".")[:2]) >= (20, 10), (
        f"xmpp.js 0.14 needs Node.js 20.10 or later, this is {version}")
    assert (SCRIPT_DIR / "node_modules" / "@xmpp" / "client").is_dir(), (
        "xmpp.js is not installed: tests/interop/run.sh runs npm ci in tests/interop/xmppjs")
    jid, password = server.new_account("xmppjs")
    user = jid.split("@")[0]
    env = dict(
        os.environ,
        ROOST_SERVICE=f"xmpp://{server.host}:{server.c2s_port}",
        ROOST_DOMAIN=server.domain,
        ROOST_USER=user,
        ROOST_PASSWORD=password,
        NODE_EXTRA_CA_CERTS=str(server.cert),
    )
    run = subprocess.run([node, "fast.mjs"], cwd=SCRIPT_DIR, env=env, capture_output=True,
                         text=True, timeout=90)
    assert run.returncode == 0, f"xmpp.js failed:\n{run.stdout}\n{run.stderr}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["errors"] == [], result
    first, second = result["first"], result["second"]
    # Bind 2 gave the resource from the tag, the same for both logins (same user-agent).
    assert first["jid"].startswith(f"{jid}/interop."), first
    assert second["jid"] == first["jid"], result
    assert first["pong"] == second["pong"] == "result", result
    assert first["mechanism"] == "HT-SHA-256-NONE", first
    log = server.log()
    assert f"authenticated as {jid} (SASL2)" in log, "the first login: SCRAM via SASL2"
    assert f"authenticated as {jid} (SASL2, FAST token)" in log, "the second: the token"
