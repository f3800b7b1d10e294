"""Administration from an app: slixmpp's XEP-0050 (ad-hoc commands) and XEP-0133 (service
administration) plugins run roost's admin commands as an admin — add a user, numbers and
lists of users, user statistics, an announcement, a user's password, delete a user — and an
ordinary account sees only its own commands and is refused the admin ones."""

from __future__ import annotations

import asyncio
import secrets

import pytest

PLUGINS = ("xep_0004", "xep_0030", "xep_0050", "xep_0133")
ADMIN = "http://jabber.org/protocol/admin"
T = 20.0


def with_plugins(client) -> None:
    for plugin in PLUGINS:
        client.register_plugin(plugin)


async def run_command(client, name: str, fields: dict | None = None):
    """Runs XEP-0133 command `name` through the plugins' session workflow: the form the
    server sends back is filled with `fields` and completed. Returns the final IQ."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    adhoc = client.plugin["xep_0050"]

    def next_step(iq, session):
        if iq["command"]["status"] == "completed":
            if not done.done():
                done.set_result(iq)
            return
        form = client.plugin["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value=ADMIN)
        for var, value in (fields or {}).items():
            form.add_field(var=var, value=value)
        session["payload"] = form
        session["next"] = next_step
        adhoc.complete_command(session)

    def error(iq, session):
        if not done.done():
            done.set_result(iq)

    getattr(client.plugin["xep_0133"], name.replace("-", "_"))(
        jid=client.boundjid.domain, session={"next": next_step, "error": error})
    return await asyncio.wait_for(done, T)


def values(iq, var: str):
    return iq["command"]["form"].get_fields()[var]["value"]


def note(iq) -> tuple[str, str]:
    notes = iq["command"]["notes"]
    return notes[0] if notes else ("", "")


@pytest.fixture(scope="module")
def admin(server):
    jid, password = server.new_account("admin")
    server._checked("role", jid, "admin")
    return jid, password


async def test_an_admin_runs_the_admin_commands(make_client, server, admin):
    # `roost role` reaches the running server within a second.
    await server.wait_for_log(rf"{admin[0]}: role changed by the command line", T)
    mom = await make_client(*admin, configure=with_plugins)
    items = await mom.plugin["xep_0050"].get_commands(jid=server.domain, timeout=T)
    nodes = {i[1] for i in items["disco_items"]["items"]}
    for name in ("add-user", "delete-user", "change-user-password", "user-stats",
                 "get-registered-users-num", "get-registered-users-list",
                 "get-online-users-num", "get-online-users-list", "announce"):
        assert f"{ADMIN}#{name}" in nodes, nodes

    new_jid = f"new{secrets.token_hex(3)}@{server.domain}"
    password = secrets.token_urlsafe(12)
    iq = await run_command(mom, "add-user", {
        "accountjid": new_jid, "password": password, "password-verify": password})
    assert iq["type"] == "result" and note(iq)[0] == "info", iq
    assert new_jid in server.users()
    new = await make_client(new_jid, password, configure=with_plugins, record=("message",))

    iq = await run_command(mom, "get-registered-users-num")
    assert int(values(iq, "registeredusersnum")) == len(server.users())
    iq = await run_command(mom, "get-registered-users-list")
    assert new_jid in [str(j) for j in values(iq, "registereduserjids")]
    iq = await run_command(mom, "get-online-users-num")
    assert int(values(iq, "onlineusersnum")) >= 2
    iq = await run_command(mom, "get-online-users-list")
    assert new_jid in [str(j) for j in values(iq, "onlineuserjids")]
    iq = await run_command(mom, "user-stats", {"accountjid": new_jid})
    assert values(iq, "onlineresources"), iq

    iq = await run_command(mom, "announce", {"subject": "Dinner",
                                             "announcement": "at seven"})
    assert note(iq)[0] == "info", iq
    m = await new.wait_for("message", lambda m: m["type"] == "headline", T,
                           what="the announcement")
    assert m["body"] == "at seven" and m["subject"] == "Dinner"

    new_password = secrets.token_urlsafe(12)
    iq = await run_command(mom, "change-user-password", {
        "accountjid": new_jid, "password": new_password})
    assert note(iq)[0] == "info", iq
    await new.first("disconnected", T)
    await make_client(new_jid, new_password)

    iq = await run_command(mom, "delete-user", {"accountjids": [new_jid]})
    assert note(iq)[0] == "info", iq
    assert new_jid not in server.users()


async def test_an_ordinary_account_sees_only_its_own_commands(make_client, server):
    jid, password = server.new_account()
    dad = await make_client(jid, password, configure=with_plugins)
    items = await dad.plugin["xep_0050"].get_commands(jid=server.domain, timeout=T)
    assert [i[1] for i in items["disco_items"]["items"]] == ["roost#change-password"]
    iq = await run_command(dad, "add-user", {"accountjid": f"x@{server.domain}"})
    assert iq["type"] == "error" and iq["error"]["condition"] == "forbidden", iq
