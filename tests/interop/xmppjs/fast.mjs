// xmpp.js against roost: logs in with SCRAM-SHA-1 through SASL2 (XEP-0388) with Bind 2,
// receives a FAST token (XEP-0484), then logs in again with the token alone (the password
// given the second time is wrong, so only the token can work), pings the server and
// stops. Prints one JSON line with what happened; exits non-zero on any failure.
//
// Environment: ROOST_SERVICE (xmpp://127.0.0.1:PORT), ROOST_DOMAIN, ROOST_USER,
// ROOST_PASSWORD; NODE_EXTRA_CA_CERTS names roost's self-signed certificate.
import { client, xml } from "@xmpp/client";

const { ROOST_SERVICE, ROOST_DOMAIN, ROOST_USER, ROOST_PASSWORD } = process.env;
const userAgent = () =>
  xml("user-agent", { id: "4c1f2a9e-7d3b-4e0a-9a51-2f6d8c0b7e11" }, xml("software", {}, "xmpp.js"));

// Every step is bounded.
const timeout = (ms, what) =>
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms));

async function session(password, token) {
  const xmpp = client({
    service: ROOST_SERVICE,
    domain: ROOST_DOMAIN,
    username: ROOST_USER,
    password,
    resource: "interop",
    userAgent: userAgent(),
  });
  xmpp.reconnect.stop();
  let saved = null;
  xmpp.fast.saveToken = async (t) => {
    saved = t;
  };
  xmpp.fast.fetchToken = async () => token;
  const errors = [];
  xmpp.on("error", (e) => errors.push(String(e)));
  const jid = await Promise.race([xmpp.start(), timeout(15000, "login")]);
  const pong = await Promise.race([
    xmpp.iqCaller.request(
      xml("iq", { type: "get", to: ROOST_DOMAIN }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    ),
    timeout(10000, "ping"),
  ]);
  await Promise.race([xmpp.stop(), timeout(10000, "stop")]);
  return { jid: String(jid), pong: pong.attrs.type, saved, errors };
}

try {
  const first = await session(ROOST_PASSWORD, null);
  if (!first.saved || !first.saved.token) throw new Error("no FAST token after the first login");
  const second = await session("not-the-password", first.saved);
  console.log(
    JSON.stringify({
      first: { jid: first.jid, pong: first.pong, mechanism: first.saved.mechanism, expiry: first.saved.expiry },
      second: { jid: second.jid, pong: second.pong, rotated: second.saved !== null },
      errors: [...first.errors, ...second.errors],
    }),
  );
  process.exit(0);
} catch (e) {
  console.error(`xmpp.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}
