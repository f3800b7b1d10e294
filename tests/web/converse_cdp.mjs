// Drives Debian's headless Chromium through the DevTools protocol: opens PAGE_URL, waits
// (bounded) until the page's Converse.js has received a message with ANSWER and shows it,
// saves a screenshot to SCREENSHOT, and prints the page's events as one JSON line.
// Exit 0 only when the answer is on the screen.
//   node converse_cdp.mjs PAGE_URL ANSWER SCREENSHOT
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

const [pageUrl, answer, screenshot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "roost-chromium-"));
const browser = spawn(process.env.CHROMIUM || "chromium", [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  // The server's certificate is self-signed, for localhost.
  "--ignore-certificate-errors",
  "--window-size=1280,900",
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

// Chromium writes its DevTools port into the profile.
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
const console_ = [];
ws.on("message", (raw) => {
  const m = JSON.parse(raw);
  if (m.method === "Runtime.exceptionThrown") {
    console_.push(m.params.exceptionDetails?.exception?.description || m.params.exceptionDetails?.text);
  }
  if (m.method === "Runtime.consoleAPICalled" && console_.length < 200) {
    console_.push(m.params.args.map((a) => a.value ?? a.description ?? "").join(" ").slice(0, 300));
  }
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

await call("Page.enable");
await call("Runtime.enable");
await call("Page.navigate", { url: pageUrl });
let events = [];
let shown = false;
for (let i = 0; i < 120 && !shown; i++) {
  await sleep(500);
  events = (await evaluate("JSON.stringify(window.roostEvents || [])")) || "[]";
  events = JSON.parse(events);
  const answered = events.some((e) => e.event === "message" && e.body === answer);
  // On the screen, not only received: the chat shows the text.
  shown = answered && (await evaluate(
    `document.body.innerText.includes(${JSON.stringify(answer)})`));
}
const shot = await call("Page.captureScreenshot", { format: "png" });
if (shot.result?.data) writeFileSync(screenshot, Buffer.from(shot.result.data, "base64"));
done(shown ? 0 : 2, { events, shown, console: shown ? [] : console_.slice(-40) });
