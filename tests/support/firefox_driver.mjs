// Drives Debian's firefox-esr over WebDriver BiDi (puppeteer-core; no downloaded browser or driver) for
// tests/support/firefox.py: one JSON command per stdin line, one JSON reply per stdout line.
//   in:  {"id": 1, "op": "goto", "url": "..."}        out: {"id": 1, "ok": true, "value": ...}
//   out (unasked): {"event": "pageerror" | "console-error", "text": "..."}
// Ops mirror the few Playwright Page calls the browser tests make (goto, waitForSelector, click, fill,
// setChecked, evaluate, reload), so the same helpers drive both browsers.
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const executablePath = process.env.PEERWELL_FIREFOX || "/usr/bin/firefox-esr";
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath,
  headless: true,
  extraPrefsFirefox: {
    // Fake camera and microphone, no permission prompt.
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    // Camera and microphone allowed for every site: without a stored permission Firefox gathers only the
    // "default route" address, and a loopback-only namespace has no route (ICE then fails at once).
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    // The suite runs in a loopback-only namespace: offer 127.0.0.1 as a host candidate, unobfuscated.
    "media.peerconnection.ice.loopback": true,
    "media.peerconnection.ice.obfuscate_host_addresses": false,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
  },
});
const page = (await browser.pages())[0] || (await browser.newPage());
page.on("pageerror", (error) => send({ event: "pageerror", text: String(error && error.message || error) }));
page.on("console", (message) => {
  if (message.type() === "error") send({ event: "console-error", text: message.text() });
});

const ops = {
  goto: ({ url }) => page.goto(url, { waitUntil: "load" }).then(() => null),
  reload: () => page.reload({ waitUntil: "load" }).then(() => null),
  waitForSelector: ({ selector, timeout_ms }) =>
    page.waitForSelector(selector, { visible: true, timeout: timeout_ms }).then(() => null),
  click: ({ selector }) => page.click(selector).then(() => null),
  fill: ({ selector, value }) => page.locator(selector).fill(value).then(() => null),
  setChecked: async ({ selector, checked }) => {
    if ((await page.$eval(selector, (e) => e.checked)) !== checked) await page.click(selector);
    return null;
  },
  // `script` is a function's source, as Playwright's page.evaluate(script, arg) takes it.
  evaluate: ({ script, arg }) => page.evaluate(`(${script})(${JSON.stringify(arg ?? null)})`),
  close: async () => {
    await browser.close();
    return null;
  },
};

send({ event: "ready" });
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { id, op, ...args } = JSON.parse(line);
  try {
    const value = await ops[op](args);
    send({ id, ok: true, value: value === undefined ? null : value });
  } catch (error) {
    send({ id, ok: false, error: String(error && error.stack || error) });
  }
  if (op === "close") break;
}
await browser.close().catch(() => {});
process.exit(0);
