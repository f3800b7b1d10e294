"""Group chats with slixmpp's own XEP-0045 plugin (and raw stanzas where it has none):
creating rooms (reserved, configured through the form roost sends; instant, with an empty
submit), joining, history on join with `maxstanzas`, the subject, nick changes, private
messages through the room, affiliations and the member list, kick and ban, passwords,
members-only refusal, mediated invitations and declines, the room archive (XEP-0313 on
the room JID, paged with `iterate`), self-ping (XEP-0410 through slixmpp's plugin),
occupant ids (XEP-0421) across rejoins, the family room with its autojoin bookmark
(XEP-0402) for accounts made before the first start and after it, and persistent rooms
across a restart."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError, PresenceError
from slixmpp.plugins.xep_0410.self_ping import PingStatus
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from conftest import RoostServer

PLUGINS = ("xep_0004", "xep_0030", "xep_0045", "xep_0059", "xep_0060", "xep_0082",
           "xep_0199", "xep_0297", "xep_0313", "xep_0359", "xep_0402", "xep_0410",
           "xep_0421")
#: Events a test may wait for (recorded from before the client connects).
RECORD = ("message", "groupchat_message", "groupchat_subject", "groupchat_presence",
          "groupchat_invite", "groupchat_message_error")
#: Seconds any single wait may take.
WAIT = 20.0
NS_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig"
NS_ROOMINFO = "http://jabber.org/protocol/muc#roominfo"
NS_DATA = "jabber:x:data"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"

_rooms = itertools.count(1)


def with_plugins(client) -> None:
    for plugin in PLUGINS:
        client.register_plugin(plugin)


async def online(make_client, jid: str, password: str, **opts):
    client = await make_client(jid, password, configure=with_plugins, record=RECORD, **opts)
    client.send_presence()
    return client


def service(srv: RoostServer) -> str:
    return f"groups.{srv.domain}"


def new_room(srv: RoostServer, prefix: str = "room") -> JID:
    return JID(f"{prefix}{next(_rooms)}@{service(srv)}")


async def join(client, room: JID, nick: str, **opts):
    """(self-presence, subject message, occupants' presences, history messages)."""
    return await client.plugin["xep_0045"].join_muc_wait(room, nick, timeout=WAIT, **opts)


async def join_refused(client, room: JID, nick: str, **opts) -> str:
    """The error condition of a refused join."""
    with pytest.raises(PresenceError) as refused:
        await join(client, room, nick, **opts)
    # slixmpp keeps a room it was refused in its list of joined rooms (and then ignores
    # invitations from it); forget it, as a client does.
    client.plugin["xep_0045"].rooms[None].pop(room, None)
    return refused.value.condition


def codes(presence) -> set[int]:
    return set(presence["muc"]["status_codes"])


def submit(client, **values):
    """A muc#roomconfig submit form with these values (keys without the prefix)."""
    form = client.plugin["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_ROOMCONFIG)
    for key, value in values.items():
        ftype = "boolean" if isinstance(value, bool) else None
        form.add_field(var=f"muc#roomconfig_{key}", ftype=ftype, value=value)
    return form


async def create(client, room: JID, nick: str, **config):
    """Creates `room` as an instant room (no values) or with `config` values; returns the
    creator's self-presence."""
    pres, *_ = await join(client, room, nick)
    assert {110, 201} <= codes(pres), pres
    await client.plugin["xep_0045"].set_room_config(room, submit(client, **config),
                                                    timeout=WAIT)
    return pres


async def groupchat(client, room: JID, body: str):
    client.send_message(mto=room, mbody=body, mtype="groupchat")


async def heard(client, room: JID, body: str, since: int = 0):
    return await client.wait_for(
        "groupchat_message",
        lambda m: m["from"].bare == room.bare and m["body"] == body,
        timeout=WAIT, what=f"groupchat {body!r}", since=since)


async def features(client, jid: JID) -> set[str]:
    info = await client.plugin["xep_0030"].get_info(jid=jid, timeout=WAIT)
    return set(info["disco_info"]["features"])


async def test_reserved_and_instant_rooms(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    dad_jid, dad_pw = server.new_account("dad")
    mom = await online(make_client, mom_jid, mom_pw)
    dad = await online(make_client, dad_jid, dad_pw)
    muc = mom.plugin["xep_0045"]

    # Reserved: the new room is locked (201) and nobody else gets in until it is configured
    # with the form the room sends (filled in and sent back as slixmpp does).
    room = new_room(server, "reserved")
    pres, *_ = await join(mom, room, "Mom")
    assert {110, 201} <= codes(pres)
    assert pres["muc"]["affiliation"] == "owner" and pres["muc"]["role"] == "moderator"
    assert await join_refused(dad, room, "Dad") == "item-not-found"
    form = await muc.get_room_config(room, timeout=WAIT)
    fields = form.get_fields()
    for var in ("roomname", "roomdesc", "persistentroom", "publicroom", "membersonly",
                "moderatedroom", "passwordprotectedroom", "roomsecret", "whois", "maxusers",
                "allowinvites", "changesubject", "allowpm", "enablearchiving",
                "presencebroadcast"):
        assert f"muc#roomconfig_{var}" in fields, var
    assert fields["FORM_TYPE"]["value"] == [NS_ROOMCONFIG]  # slixmpp: hidden is multi
    form.set_values({"muc#roomconfig_roomname": "Kitchen table",
                     "muc#roomconfig_persistentroom": True,
                     "muc#roomconfig_publicroom": False})
    await muc.set_room_config(room, form, timeout=WAIT)
    got = await features(dad, room)
    assert {"http://jabber.org/protocol/muc", "muc_persistent", "muc_hidden", "muc_open",
            "muc_unsecured", "muc_unmoderated", "muc_semianonymous"} <= got, got
    info = await dad.plugin["xep_0030"].get_info(jid=room, timeout=WAIT)
    assert ("conference", "text", None, "Kitchen table") in info["disco_info"]["identities"]
    roominfo = info["disco_info"].xml.find(f"{{{NS_DATA}}}x")
    assert roominfo is not None and NS_ROOMINFO in str(
        [v.text for v in roominfo.iter(f"{{{NS_DATA}}}value")])
    pres, *_ = await join(dad, room, "Dad")
    assert 110 in codes(pres) and 201 not in codes(pres)
    assert pres["muc"]["affiliation"] == "none" and pres["muc"]["role"] == "participant"
    # The configuration read back has the values set.
    again = (await muc.get_room_config(room, timeout=WAIT)).get_values()
    assert again["muc#roomconfig_roomname"] == "Kitchen table"
    assert again["muc#roomconfig_persistentroom"] in (True, "1", "true")

    # Instant: an empty submit accepts the defaults (temporary, public).
    instant = new_room(server, "instant")
    await create(mom, instant, "Mom")
    got = await features(dad, instant)
    assert {"muc_temporary", "muc_public"} <= got, got
    await join(dad, instant, "Dad")
    items = await dad.plugin["xep_0030"].get_items(jid=JID(service(server)), timeout=WAIT)
    listed = {JID(i[0]) for i in items["disco_items"]["items"]}
    assert instant in listed and room not in listed, listed


async def test_history_subject_nick_change_and_private_messages(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    dad_jid, dad_pw = server.new_account("dad")
    kid_jid, kid_pw = server.new_account("kid")
    mom = await online(make_client, mom_jid, mom_pw)
    dad = await online(make_client, dad_jid, dad_pw)
    kid = await online(make_client, kid_jid, kid_pw)
    room = new_room(server)
    await create(mom, room, "Mom")
    await join(dad, room, "Dad")

    # Messages reach everyone, the sender too, with the room's stanza-id.
    for body in ("one", "two", "three"):
        await groupchat(mom, room, body)
    for body in ("one", "two", "three"):
        m = await heard(dad, room, body)
        assert m["from"] == JID(f"{room}/Mom")
        assert m["stanza_id"]["by"] == room.bare and m["stanza_id"]["id"]
        await heard(mom, room, body)

    # The subject, set by the owner, reaches the occupants.
    mom.plugin["xep_0045"].set_subject(room, "Sunday lunch")
    subject = await dad.wait_for("groupchat_subject",
                                 lambda m: m["subject"] == "Sunday lunch", timeout=WAIT)
    assert subject["from"] == JID(f"{room}/Mom")

    # A late joiner asks for two stanzas of history: the last two, delayed by the room,
    # then the subject.
    pres, subj, occupants, history = await join(kid, room, "Kid", maxstanzas=2)
    assert [m["body"] for m in history] == ["two", "three"]
    assert all(m["delay"]["from"] == room.bare and m["delay"]["stamp"] for m in history)
    assert subj["subject"] == "Sunday lunch"
    assert {p["from"].resource for p in occupants} == {"Mom", "Dad", "Kid"}  # Kid: self
    # An occupant (non-moderator) may not change the subject by default.
    since = len(kid.history)
    kid.plugin["xep_0045"].set_subject(room, "kid rules")
    err = await kid.wait_for("groupchat_message_error", timeout=WAIT, since=since)
    assert err["error"]["condition"] == "forbidden"

    # A nick change: 303 with the new nick to everyone, then presence under it.
    since = len(mom.history)
    assert await dad.plugin["xep_0045"].set_self_nick(room, "Papa", timeout=WAIT) == "Papa"
    gone = await mom.wait_for(
        "groupchat_presence",
        lambda p: p["type"] == "unavailable" and p["from"].resource == "Dad", since=since)
    assert 303 in codes(gone) and gone["muc"]["item_nick"] == "Papa"
    await mom.wait_for("groupchat_presence",
                       lambda p: p["from"].resource == "Papa" and p["type"] != "unavailable",
                       since=since)
    # The nick taken by another occupant is a conflict.
    with pytest.raises(PresenceError) as taken:
        await join(kid, room, "Mom")
    assert taken.value.condition == "conflict"

    # Private messages through the room, both ways, marked as MUC PMs.
    since = len(mom.history)
    dad.send_message(mto=JID(f"{room}/Mom"), mbody="psst", mtype="chat")
    pm = await mom.wait_for("message", lambda m: m["body"] == "psst", since=since)
    assert pm["from"] == JID(f"{room}/Papa") and pm["type"] == "chat"
    assert pm.xml.find("{http://jabber.org/protocol/muc#user}x") is not None
    mom.send_message(mto=pm["from"], mbody="what?", mtype="chat")
    back = await dad.wait_for("message", lambda m: m["body"] == "what?")
    assert back["from"] == JID(f"{room}/Mom")
    # To a nick that is not there: item-not-found.
    since = len(dad.history)
    dad.send_message(mto=JID(f"{room}/Nobody"), mbody="hello?", mtype="chat")
    err = await dad.wait_for("groupchat_message_error", since=since)
    assert err["error"]["condition"] == "item-not-found"

    # Leaving: the others see 'unavailable'.
    since = len(mom.history)
    kid.plugin["xep_0045"].leave_muc(room, "Kid")
    await mom.wait_for("groupchat_presence",
                       lambda p: p["type"] == "unavailable" and p["from"].resource == "Kid",
                       since=since)


async def test_members_only_affiliations_kick_ban_and_password(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    dad_jid, dad_pw = server.new_account("dad")
    kid_jid, kid_pw = server.new_account("kid")
    mom = await online(make_client, mom_jid, mom_pw)
    dad = await online(make_client, dad_jid, dad_pw)
    kid = await online(make_client, kid_jid, kid_pw)
    muc = mom.plugin["xep_0045"]

    # A private group as Conversations makes it.
    room = new_room(server, "private")
    await create(mom, room, "Mom", persistentroom=True, membersonly=True, whois="anyone",
                 publicroom=False, enablearchiving=True)
    assert {"muc_membersonly", "muc_nonanonymous", "muc_persistent", "muc_hidden"} <= \
        await features(kid, room)
    assert await join_refused(kid, room, "Kid") == "registration-required"
    await muc.set_affiliation(room, "member", jid=JID(dad_jid), timeout=WAIT)
    assert await muc.get_affiliation_list(room, "member", timeout=WAIT) == [JID(dad_jid)]
    assert await muc.get_affiliation_list(room, "owner", timeout=WAIT) == [JID(mom_jid)]
    pres, _, occupants, _ = await join(dad, room, "Dad")
    assert 100 in codes(pres), "non-anonymous: the room says real JIDs are visible"
    assert pres["muc"]["affiliation"] == "member"
    # A member sees real JIDs and reads the member list (what OMEMO needs).
    (owner,) = [p for p in occupants if p["from"].resource == "Mom"]
    assert owner["muc"]["jid"].bare == mom_jid
    members = await dad.plugin["xep_0045"].get_affiliation_list(room, "member", timeout=WAIT)
    assert JID(dad_jid) in members
    # A member may not change affiliations (XEP-0045 §9: forbidden).
    with pytest.raises(IqError) as denied:
        await dad.plugin["xep_0045"].set_affiliation(room, "member", jid=JID(kid_jid),
                                                     timeout=WAIT)
    assert denied.value.condition == "forbidden"

    # Kick (role none, 307) and ban (outcast, 301; refused afterwards with forbidden).
    await muc.set_affiliation(room, "member", jid=JID(kid_jid), timeout=WAIT)
    await join(kid, room, "Kid")
    since = len(kid.history)
    await muc.set_role(room, "Kid", "none", reason="bedtime", timeout=WAIT)
    kicked = await kid.wait_for(
        "groupchat_presence",
        lambda p: p["type"] == "unavailable" and p["from"].resource == "Kid", since=since)
    assert {307, 110} <= codes(kicked)
    await join(kid, room, "Kid")
    since, dad_since = len(kid.history), len(dad.history)
    await muc.set_affiliation(room, "outcast", jid=JID(kid_jid), reason="enough",
                              timeout=WAIT)
    banned = await kid.wait_for(
        "groupchat_presence",
        lambda p: p["type"] == "unavailable" and p["from"].resource == "Kid", since=since)
    assert {301, 110} <= codes(banned)
    # The others are told of the ban (301, without 110).
    seen = await dad.wait_for(
        "groupchat_presence",
        lambda p: p["type"] == "unavailable" and p["from"].resource == "Kid", since=dad_since)
    assert 301 in codes(seen) and 110 not in codes(seen)
    assert await muc.get_affiliation_list(room, "outcast", timeout=WAIT) == [JID(kid_jid)]
    assert await join_refused(kid, room, "Kid") == "forbidden"
    # An outcast gets no room traffic.
    await groupchat(dad, room, "kid is out")
    await heard(mom, room, "kid is out")
    await asyncio.sleep(0.3)
    assert not kid.recorded("groupchat_message", lambda m: m["body"] == "kid is out")

    # A password-protected room.
    secret = new_room(server, "secret")
    await create(mom, secret, "Mom", passwordprotectedroom=True, roomsecret="cookies")
    assert "muc_passwordprotected" in await features(dad, secret)
    assert await join_refused(dad, secret, "Dad") == "not-authorized"
    assert await join_refused(dad, secret, "Dad", password="biscuits") == "not-authorized"
    pres, *_ = await join(dad, secret, "Dad", password="cookies")
    assert 110 in codes(pres)


async def test_mediated_invitations_and_declines(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    kid_jid, kid_pw = server.new_account("kid")
    gran_jid, gran_pw = server.new_account("gran")
    mom = await online(make_client, mom_jid, mom_pw)
    kid = await online(make_client, kid_jid, kid_pw)
    gran = await online(make_client, gran_jid, gran_pw)
    room = new_room(server, "party")
    await create(mom, room, "Mom", membersonly=True, persistentroom=True)
    assert await join_refused(kid, room, "Kid") == "registration-required"

    mom.plugin["xep_0045"].invite(room, JID(kid_jid), reason="cake at four")
    inv = await kid.wait_for("groupchat_invite", timeout=WAIT)
    assert inv["from"] == room.bare
    assert inv["muc"]["invite"]["from"].bare == mom_jid
    assert inv["muc"]["invite"]["reason"] == "cake at four"
    # The invitation made the kid a member of the members-only room.
    pres, *_ = await join(kid, room, "Kid")
    assert pres["muc"]["affiliation"] == "member"

    mom.plugin["xep_0045"].invite(room, JID(gran_jid))
    await gran.wait_for("groupchat_invite", timeout=WAIT)
    # slixmpp 1.17 raises groupchat_decline only for components (it looks the room up
    # among its senders, not its rooms), and `message` only for messages with a body: a
    # handler of our own for the decline.
    declines: asyncio.Queue = asyncio.Queue()
    mom.register_handler(Callback("decline", StanzaPath("message/muc/decline"),
                                  declines.put_nowait))
    gran.plugin["xep_0045"].decline(room, JID(mom_jid), reason="knitting")
    dec = await asyncio.wait_for(declines.get(), WAIT)
    assert dec["from"] == room.bare
    assert dec["muc"]["decline"]["from"].bare == gran_jid
    assert dec["muc"]["decline"]["reason"] == "knitting"


async def test_room_archive_pages(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    dad_jid, dad_pw = server.new_account("dad")
    mom = await online(make_client, mom_jid, mom_pw)
    dad = await online(make_client, dad_jid, dad_pw)
    room = new_room(server, "archived")
    await create(mom, room, "Mom")
    await join(dad, room, "Dad")
    # 25 messages: inside the flood limit's burst of 30.
    bodies = [f"a{i:02}" for i in range(25)]
    for b in bodies:
        await groupchat(mom, room, b)
    delivered = [await heard(dad, room, b) for b in bodies]

    mam = dad.plugin["xep_0313"]

    def body_of(result) -> str:
        return result["mam_result"]["forwarded"]["stanza"]["body"]

    results = [r async for r in mam.iterate(jid=room, rsm={"max": 10})]
    assert [body_of(r) for r in results] == bodies
    # Result ids are the stanza-ids the occupants got; the archived stanza is from the
    # occupant's room JID.
    assert [r["mam_result"]["id"] for r in results] == \
        [m["stanza_id"]["id"] for m in delivered]
    assert results[0]["mam_result"]["forwarded"]["stanza"]["from"] == JID(f"{room}/Mom")
    assert all(r["from"] == room.bare for r in results)
    backwards = [body_of(r) async for r in mam.iterate(jid=room, reverse=True,
                                                          rsm={"max": 10})]
    assert backwards == list(reversed(bodies))
    # One page by hand: count and the 'complete' flag.
    iq = await mam.retrieve(jid=room, rsm={"max": 5}, timeout=WAIT)
    assert [body_of(r) for r in iq["mam"]["results"]] == bodies[:5]
    assert iq["mam_fin"]["rsm"]["count"] == "25"
    assert iq["mam_fin"]["complete"] in ("", "false")
    assert "urn:xmpp:mam:2" in await features(dad, room)
    # A room with archiving off keeps nothing and says it has no archive.
    quiet = new_room(server, "unarchived")
    await create(mom, quiet, "Mom", enablearchiving=False)
    await groupchat(mom, quiet, "off the record")
    await heard(mom, quiet, "off the record")
    assert "urn:xmpp:mam:2" not in await features(dad, quiet)
    with pytest.raises(IqError) as refused:
        await mom.plugin["xep_0313"].retrieve(jid=quiet, timeout=WAIT)
    assert refused.value.condition == "service-unavailable"


async def test_self_ping_and_occupant_ids(make_client, server):
    mom_jid, mom_pw = server.new_account("mom")
    dad_jid, dad_pw = server.new_account("dad")
    kid_jid, kid_pw = server.new_account("kid")
    mom = await online(make_client, mom_jid, mom_pw)
    dad = await online(make_client, dad_jid, dad_pw)
    kid = await online(make_client, kid_jid, kid_pw)
    room = new_room(server, "ping")
    await create(mom, room, "Mom")
    # (slixmpp's xep_0421 has_feature reads the disco answer wrongly in 1.17: by hand.)
    assert {"urn:xmpp:occupant-id:0",
            "http://jabber.org/protocol/muc#self-ping-optimization"} <= await features(dad, room)

    pres, *_ = await join(dad, room, "Dad")
    first_id = pres["occupant-id"]["id"]
    assert first_id
    ping = dad.plugin["xep_0410"]
    assert await ping.send_self_ping(JID(f"{room}/Dad"), timeout=WAIT) == PingStatus.JOINED
    # Someone not in the room (XEP-0410: not-acceptable) is told so.
    assert await kid.plugin["xep_0410"].send_self_ping(
        JID(f"{room}/Dad"), timeout=WAIT) == PingStatus.DISCONNECTED

    # The id is the same in messages, after leaving and coming back under another nick,
    # and differs from another occupant's.
    await groupchat(dad, room, "first")
    m = await heard(mom, room, "first")
    assert m["occupant-id"]["id"] == first_id
    since = len(dad.history)
    dad.plugin["xep_0045"].leave_muc(room, "Dad")
    await dad.wait_for("groupchat_presence", lambda p: p["type"] == "unavailable",
                       since=since)
    assert await ping.send_self_ping(JID(f"{room}/Dad"),
                                     timeout=WAIT) == PingStatus.DISCONNECTED
    pres, _, occupants, _ = await join(dad, room, "Papa")
    assert pres["occupant-id"]["id"] == first_id
    (owner,) = [p for p in occupants if p["from"].resource == "Mom"]
    assert owner["occupant-id"]["id"] and owner["occupant-id"]["id"] != first_id
    # A forged occupant-id in a message is replaced by the room's.
    msg = dad.make_message(mto=room, mbody="forged", mtype="groupchat")
    msg["occupant-id"]["id"] = "someone-else"
    msg.send()
    m = await heard(mom, room, "forged")
    ids = m.xml.findall("{urn:xmpp:occupant-id:0}occupant-id")
    assert [e.get("id") for e in ids] == [first_id]


# --- servers of the test's own ----------------------------------------------------------


@pytest.fixture
def own_server(roost_bin, tmp_path_factory):
    """An unstarted roost on a new data directory; stopped and checked at teardown."""
    made: list[RoostServer] = []

    def make(*flags: str) -> RoostServer:
        srv = RoostServer(roost_bin, tmp_path_factory.mktemp("roost-muc") / "data",
                          extra_args=flags)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        code = srv.stop()
        assert code in (0, None), f"roost serve exited with {code}:\n{srv.log()[-4000:]}"
        assert not srv.problems(), "server log has errors:\n" + "\n".join(srv.problems())


async def bookmarks(client) -> dict[str, object]:
    iq = await client.plugin["xep_0060"].get_items(JID(client.boundjid.bare), NS_BOOKMARKS,
                                                   timeout=WAIT)
    return {item["id"]: item["conference"] for item in iq["pubsub"]["items"]}


async def test_family_room_and_its_autojoin_bookmark(make_client, own_server):
    # Accounts made before group chats were there: a server without them first (as an
    # install from before group chats; `roost adduser` needs a database a server made),
    # then the first start with them makes the family room.
    srv = own_server("--no-muc")
    srv.start()
    mom_jid, mom_pw = srv.new_account("mom")
    dad_jid, dad_pw = srv.new_account("dad")
    assert srv.stop() == 0
    srv.extra_args = ["--family-room", "home"]
    srv.start()
    family = JID(f"home@{service(srv)}")
    mom = await online(make_client, mom_jid, mom_pw, server=srv)
    marks = await bookmarks(mom)
    assert family.bare in marks, marks
    assert marks[family.bare]["autojoin"] is True
    pres, *_ = await join(mom, family, "Mom")
    assert pres["muc"]["affiliation"] == "member"
    assert {"muc_persistent", "muc_membersonly", "muc_nonanonymous", "muc_hidden"} <= \
        await features(mom, family)
    members = await mom.plugin["xep_0045"].get_affiliation_list(family, "member",
                                                                timeout=WAIT)
    assert {JID(mom_jid), JID(dad_jid)} <= set(members)
    # `roost rooms` lists it with its members.
    listing = srv.cli("rooms").stdout.splitlines()
    assert listing[0].startswith(f"{family.bare} "), listing
    assert {f"member {mom_jid}", f"member {dad_jid}"} <= {line.strip() for line in listing}

    # An account added while the server runs gets the membership and the bookmark too.
    kid_jid, kid_pw = srv.new_account("kid")
    kid = await online(make_client, kid_jid, kid_pw, server=srv)
    marks = await bookmarks(kid)
    assert marks.get(family.bare) is not None and marks[family.bare]["autojoin"] is True
    for _ in range(50):  # the running server hears of the CLI's change within a second
        try:
            pres, *_ = await join(kid, family, "Kid")
            break
        except PresenceError as refused:
            assert refused.condition == "registration-required"
            await asyncio.sleep(0.1)
    else:
        pytest.fail("the new account could not join the family room within 5 s")
    assert pres["muc"]["affiliation"] == "member"
    since = len(mom.history)
    await groupchat(kid, family, "hi all")
    await heard(mom, family, "hi all", since=since)


async def test_rooms_survive_a_restart(make_client, own_server):
    srv = own_server()
    srv.start()
    mom_jid, mom_pw = srv.new_account("mom")
    dad_jid, dad_pw = srv.new_account("dad")
    mom = await online(make_client, mom_jid, mom_pw, server=srv)
    dad = await online(make_client, dad_jid, dad_pw, server=srv)
    room = new_room(srv, "kept")
    brief = new_room(srv, "brief")
    await create(mom, room, "Mom", roomname="Kept", persistentroom=True, membersonly=True,
                 whois="anyone", publicroom=False)
    await mom.plugin["xep_0045"].set_affiliation(room, "member", jid=JID(dad_jid),
                                                 timeout=WAIT)
    await join(dad, room, "Dad")
    mom.plugin["xep_0045"].set_subject(room, "still here")
    await dad.wait_for("groupchat_subject", lambda m: m["subject"] == "still here")
    for body in ("before", "the restart"):
        await groupchat(dad, room, body)
        await heard(mom, room, body)
    await create(mom, brief, "Mom")
    for client in (mom, dad):
        await client.close_cleanly()

    assert srv.stop() == 0
    assert not srv.problems(), srv.problems()
    srv.start()
    mom = await online(make_client, mom_jid, mom_pw, server=srv)
    dad = await online(make_client, dad_jid, dad_pw, server=srv)
    pres, subject, _, history = await join(dad, room, "Dad", maxstanzas=10)
    assert pres["muc"]["affiliation"] == "member"
    assert [m["body"] for m in history] == ["before", "the restart"]
    assert subject["subject"] == "still here"
    members = await mom.plugin["xep_0045"].get_affiliation_list(room, "member",
                                                                timeout=WAIT)
    assert members == [JID(dad_jid)]
    config = (await mom.plugin["xep_0045"].get_room_config(room, timeout=WAIT)).get_values()
    assert config["muc#roomconfig_roomname"] == "Kept"
    archived = [r async for r in dad.plugin["xep_0313"].iterate(jid=room, rsm={"max": 10})]
    assert [r["mam_result"]["forwarded"]["stanza"]["body"] for r in archived] == \
        ["before", "the restart"]
    # The temporary room is gone: joining creates it anew (201).
    pres, *_ = await join(mom, brief, "Mom")
    assert 201 in codes(pres)
