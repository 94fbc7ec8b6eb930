// Opens the node's viewer page in headless Chromium and reports what the browser measured.
//
//   node scripts/browser/watch.mjs URL SECONDS OUT_DIR [SWITCH_TO ...]
//
// Plays URL (e.g. http://127.0.0.1:8080/watch/1) for SECONDS, switching the viewer to each
// SWITCH_TO channel in turn, evenly spaced; after each switch it waits until the decoded frame
// size is the one given as WIDTHxHEIGHT after a colon (e.g. 2:640x360), up to 3 s. Prints one
// JSON object on stdout (the page's window.corecast.stats at the end, every switch with how long
// the new picture took, the video codec the browser decoded, the page's join timing, and a
// timeline of picture size and frames decoded while it played) and saves OUT_DIR/watch.png.
// Exits non-zero if the page failed.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [url, secondsArg, outDir, ...switchArgs] = process.argv.slice(2);
const seconds = Number(secondsArg);
if (!url || !(seconds > 0) || !outDir) {
  console.error("usage: watch.mjs URL SECONDS OUT_DIR [CHANNEL:WxH ...]");
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
  ],
});
const result = { url, seconds, switches: [], console: [], timeline: [] };
let failed = false;
try {
  const page = await browser.newPage();
  page.on("console", (m) => result.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => result.console.push(`pageerror: ${e}`));
  await page.goto(url);
  const started = Date.now();
  // Connected and decoding before the clock for the switches starts.
  await page.waitForFunction(() => window.corecast?.stats?.framesDecoded > 0 || window.corecast?.error,
    null, { timeout: 15000 });
  result.firstFrameMs = Date.now() - started;
  // Play for `ms`, noting the page's measurements (every 250 ms) as they change: ms since the
  // page opened, picture size, frames and keyframes decoded.
  const play = async (ms) => {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      const s = await page.evaluate(() => window.corecast.stats);
      const last = result.timeline[result.timeline.length - 1];
      if (s && (!last || last.framesDecoded !== s.framesDecoded || last.width !== s.width)) {
        result.timeline.push({ ms: Date.now() - started, width: s.width, height: s.height,
          framesDecoded: s.framesDecoded, keyFramesDecoded: s.keyFramesDecoded });
      }
      await page.waitForTimeout(Math.min(250, Math.max(0, until - Date.now())));
    }
  };
  const plan = switchArgs.map((a) => {
    const [channel, size] = a.split(":");
    const [w, h] = (size || "0x0").split("x").map(Number);
    return { channel: Number(channel), width: w, height: h };
  });
  const slot = (seconds * 1000) / (plan.length + 1);
  for (const s of plan) {
    await play(slot);
    const asked = Date.now();
    const status = await page.evaluate((c) => window.corecast.switchTo(c), s.channel);
    let shownMs = null;
    if (s.width > 0) {
      try {
        await page.waitForFunction(({ w, h }) => {
          const st = window.corecast.stats;
          return st && st.width === w && st.height === h;
        }, { w: s.width, h: s.height }, { timeout: 3000, polling: 50 });
        shownMs = Date.now() - asked;
      } catch (_) { shownMs = null; }
    }
    result.switches.push({ ...s, status, shownMs });
  }
  await play(slot);
  // One more measurement after the last second of play.
  await page.waitForTimeout(1100);
  // Reading a subscriber is not a viewer's right: the test's admin token, when it has one.
  const admin = process.env.CORECAST_ADMIN_TOKEN || null;
  Object.assign(result, await page.evaluate(async (admin) => ({
    stats: window.corecast.stats, error: window.corecast.error, resource: window.corecast.resource,
    timing: window.corecast.timing,
    // The node's view of this viewer (the page's own resource), before the page goes.
    viewer: window.corecast.resource
      ? await (await fetch(window.corecast.resource,
        { headers: admin ? { Authorization: "Bearer " + admin } : {} })).json() : null,
    // The codec the browser decodes video with, as its getStats names it.
    videoCodec: await (async () => {
      const stats = await window.corecast.pc.getStats();
      let codec = null;
      stats.forEach((r) => {
        if (r.type === "inbound-rtp" && r.kind === "video" && stats.get(r.codecId)) {
          const c = stats.get(r.codecId);
          codec = { mimeType: c.mimeType, payloadType: c.payloadType, sdpFmtpLine: c.sdpFmtpLine };
        }
      });
      return codec;
    })(),
  }), admin));
  await page.screenshot({ path: `${outDir}/watch.png` });
  failed = Boolean(result.error);
} catch (e) {
  result.error = String(e);
  failed = true;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(failed ? 1 : 0);
