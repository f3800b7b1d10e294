// Drives Debian's headless Chromium through the DevTools protocol as a relative with a
// phone would: opens an invitation's landing page PAGE_URL at phone size (390×844, touch,
// 3× pixels), checks what it shows, saves a screenshot of the whole page to
// SCREENSHOT_DIR/invite-landing.png, opens the fallback form, types USERNAME and PASSWORD
// (twice), submits it, waits (bounded) for the page that names the new address and saves
// it as SCREENSHOT_DIR/invite-created.png. Prints one JSON line; exit 0 only when the
// account page shows the address.
//   node invite_cdp.mjs PAGE_URL USERNAME PASSWORD SCREENSHOT_DIR
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

const [pageUrl, username, password, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "roost-chromium-"));
const browser = spawn(process.env.CHROMIUM || "chromium", [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  // The server's certificate is self-signed, for localhost.
  "--ignore-certificate-errors",
  "--window-size=390,844",
  "--remote-debugging-port=0",
  `--user-data-dir=${profile}`,
  "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });
let browserLog = "";
browser.stderr.on("data", (d) => { browserLog += d; });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const done = (code, result) => {
  console.log(JSON.stringify(result));
  browser.kill("SIGKILL");
  try { rmSync(profile, { recursive: true, force: true }); } catch {}
  process.exit(code);
};
// The whole run is bounded.
setTimeout(() => done(4, { error: "timed out" }), 60000).unref();

let port;
for (let i = 0; i < 100 && !port; i++) {
  const f = join(profile, "DevToolsActivePort");
  if (existsSync(f)) port = readFileSync(f, "utf8").split("\n")[0];
  else await sleep(100);
}
if (!port) done(3, { error: "Chromium did not start", log: browserLog.slice(-2000) });
const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
const page = targets.find((t) => t.type === "page");
const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((r, e) => { ws.once("open", r); ws.once("error", e); });
let next = 1;
const pending = new Map();
const errors = [];
ws.on("message", (raw) => {
  const m = JSON.parse(raw);
  if (m.method === "Runtime.exceptionThrown") errors.push(m.params.exceptionDetails?.text);
  if (m.id && pending.has(m.id)) {
    pending.get(m.id)(m);
    pending.delete(m.id);
  }
});
const call = (method, params = {}) => new Promise((resolve) => {
  const id = next++;
  pending.set(id, resolve);
  ws.send(JSON.stringify({ id, method, params }));
});
const evaluate = async (expression) =>
  (await call("Runtime.evaluate", { expression, returnByValue: true })).result?.result?.value;
const waitFor = async (expression, what) => {
  for (let i = 0; i < 100; i++) {
    if (await evaluate(expression)) return;
    await sleep(100);
  }
  done(2, { error: `no ${what}`, errors, text: await evaluate("document.body?.innerText") });
};
// The whole page, however long, at phone width.
const screenshot = async (name) => {
  const m = await call("Page.getLayoutMetrics");
  const h = Math.ceil(m.result.cssContentSize.height);
  const shot = await call("Page.captureScreenshot", {
    format: "png", captureBeyondViewport: true,
    clip: { x: 0, y: 0, width: 390, height: h, scale: 1 },
  });
  writeFileSync(join(shots, name), Buffer.from(shot.result.data, "base64"));
  return h;
};

await call("Page.enable");
await call("Runtime.enable");
await call("Emulation.setDeviceMetricsOverride",
  { width: 390, height: 844, deviceScaleFactor: 3, mobile: true });
await call("Emulation.setTouchEmulationEnabled", { enabled: true });
await call("Page.navigate", { url: pageUrl });
await waitFor("document.readyState === 'complete' && !!document.querySelector('form')",
  "landing page");
const landing = JSON.parse(await evaluate(`JSON.stringify({
  title: document.title,
  scripts: document.scripts.length,
  appLink: document.querySelector('a.button')?.getAttribute('href'),
  qr: !!document.querySelector('svg.qr path'),
  apps: [...document.querySelectorAll('a.app b')].map((b) => b.textContent),
  // Nothing wider than the phone's screen: no sideways scrolling.
  scrollWidth: document.documentElement.scrollWidth,
  bodyText: document.body.innerText.length,
})`));
landing.height = await screenshot("invite-landing.png");
// The fallback form: open it, type as a person would, submit.
await evaluate("document.querySelector('summary').click()");
for (const [id, text] of [["username", username], ["password", password], ["password2", password]]) {
  await evaluate(`document.getElementById('${id}').focus()`);
  await call("Input.insertText", { text });
}
await evaluate("document.querySelector('form button[type=submit]').click()");
await waitFor("!!document.getElementById('jid')", "account page");
const jid = await evaluate("document.getElementById('jid').textContent");
await screenshot("invite-created.png");
done(jid ? 0 : 2, { landing, jid, errors });
