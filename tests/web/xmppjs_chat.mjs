// xmpp.js (@xmpp/client, npm) over RFC 7395 WebSocket to roost: logs in with SCRAM, binds,
// sends one chat message to PEER and waits (bounded) for the answer, printing one JSON line
// per event for the test (tests/interop/test_websocket.py) to check. Exit 0 only when the
// answer came.
//   node xmppjs_chat.mjs SERVICE DOMAIN USER PASSWORD PEER
import { WebSocket as WsWebSocket } from "ws";
// Node before 22 has no WebSocket of its own; xmpp.js uses the global one.
globalThis.WebSocket ??= WsWebSocket;
const { client, xml } = await import("@xmpp/client");

const [service, domain, username, password, peer] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const timer = setTimeout(() => {
  say({ event: "timeout" });
  process.exit(2);
}, 20000);

const xmpp = client({ service, domain, username, password, resource: "xmppjs" });
xmpp.on("error", (err) => say({ event: "error", error: String(err) }));
xmpp.on("stanza", async (stanza) => {
  if (stanza.is("message") && stanza.getChildText("body")) {
    say({ event: "message", from: stanza.attrs.from, body: stanza.getChildText("body") });
    clearTimeout(timer);
    await xmpp.stop();
    process.exit(0);
  }
});
xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString() });
  await xmpp.send(xml("presence"));
  await xmpp.send(
    xml("message", { type: "chat", to: peer, id: "xmppjs-1" }, xml("body", {}, "hello from xmpp.js")),
  );
});
await xmpp.start();
