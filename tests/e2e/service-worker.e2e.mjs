// The service worker (issue 10, item 4), with the hub mirrored on the page's own origin
// (the hub server serves the site too, as `--same-origin` does), so every model request
// passes the service worker's fetch handler:
// v1: the download, reloaded mid-way with the worker in control, resumes with Range (206)
//     answers that are neither cached nor failed; nothing of the hub is in the cache.
// v2: a new version of the page deployed: stored whole in the background, then the old
//     version's files are gone from the cache; offline, the new HTML with the new bundle.
// v3: a new version whose bundle cannot be fetched: offline, the old HTML with the old
//     bundle, never the new HTML with a bundle it does not have.
// v4: a network that stops answering: the navigation gives way to the stored page within
//     the worker's time limit (sw-core.mjs NETWORK_TIMEOUT_MS) instead of hanging.
// A "new version" is a copy of dist/ with the app's hashed script and wasm renamed (a
// new hash, as a new build gets) and a marker in index.html.

import { cp, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, dropPaths, expect, load, ms, openBrowser, sleep, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const NETWORK_TIMEOUT_MS = 4000; // www/sw-core.mjs

/** The app's hash in dist/ (clipseek-app-HASH.js). */
async function appHash(dist) {
  const js = (await readdir(dist)).find((f) => /^clipseek-app-[0-9a-f]+\.js$/.test(f));
  expect(js, `no clipseek-app-HASH.js in ${dist}`);
  return /^clipseek-app-([0-9a-f]+)\.js$/.exec(js)[1];
}

/** A copy of `dist` as the next version: the app's files under a new hash, a marker in the page. */
async function nextVersion(t, dist, { withoutWasm = false } = {}) {
  const dir = await mkdtemp(join(tmpdir(), "clipseek-e2e-v2-"));
  t.defer(() => rm(dir, { recursive: true, force: true }));
  await cp(dist, dir, { recursive: true });
  const old = await appHash(dist);
  const hash = [...old].map((c) => ((parseInt(c, 16) + 1) % 16).toString(16)).join("");
  for (const f of await readdir(dir)) {
    if (f.includes(`clipseek-app-${old}`)) await rename(join(dir, f), join(dir, f.replace(old, hash)));
  }
  if (withoutWasm) await rm(join(dir, `clipseek-app-${hash}_bg.wasm`));
  const html = (await readFile(join(dir, "index.html"), "utf8")).replaceAll(old, hash).replace("<head>", '<head>\n  <meta name="clipseek-e2e-version" content="2">');
  await writeFile(join(dir, "index.html"), html);
  return { dir, hash, old };
}

/** Cache Storage as the page sees it: {cacheName: [url, ...]}. */
async function cacheContents(page) {
  return page.evaluate(async () => {
    const out = {};
    for (const name of await caches.keys()) out[name] = (await (await caches.open(name)).keys()).map((r) => r.url);
    return out;
  });
}

/** Waits for the service worker to control the page and a complete version of `hash` to be the only one stored. */
async function waitStored(b, hub, hash) {
  let last = {};
  const started = Date.now();
  while (Date.now() - started < ms(60_000)) {
    last = await cacheContents(b.page).catch(() => ({}));
    const names = Object.keys(last);
    const urls = names.flatMap((n) => last[n]);
    const controlled = await b.page.evaluate(() => !!navigator.serviceWorker.controller).catch(() => false);
    if (controlled && names.length === 1 && names[0].endsWith(hash) && urls.some((u) => u.includes("__clipseek-complete__"))) return last;
    await sleep(200);
  }
  throw new Error(`the service worker did not come to hold version ${hash} alone: ${JSON.stringify(last, null, 1).slice(0, 1500)}\n${await describe(b, hub)}`);
}

async function goOffline(t, b, hub) {
  hub.control.setFault({ type: "offline", mode: "reset" });
  t.defer(() => hub.control.clearFaults());
}

async function readyOffline(b, hub, url) {
  await load(b, url);
  const s = await waitUntil(b, (now) => now.state === "ready" || now.state === "error", { timeout: ms(60_000), what: "the page offline", hub });
  const page = await b.page.evaluate(() => ({
    marker: document.querySelector('meta[name="clipseek-e2e-version"]')?.content ?? "1",
    script: document.querySelector("script[data-clipseek-js]")?.dataset.clipseekJs ?? "",
    wasm: performance.getEntriesByType("resource").map((e) => e.name).filter((n) => /clipseek-app-[0-9a-f]+_bg\.wasm/.test(n)),
  }));
  return { s, page };
}

/** First visit on one origin: the model downloaded, the service worker holding version 1. */
async function firstVisit(t) {
  const { hub, site } = await startServers(t, { sameOrigin: true });
  const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-sw-"));
  t.defer(() => rm(profile, { recursive: true, force: true }));
  const b = await openBrowser(t, { userDataDir: profile });
  const url = appUrl(site, hub, { model: MODEL });
  await load(b, url);
  await waitModelReady(b, hub);
  return { hub, site, b, url };
}

export const tests = [
  {
    name: "v1. same origin: a download reloaded mid-way under the service worker resumes with 206 answers, none cached, none failed",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const { hub, site } = await startServers(t, { sameOrigin: true });
      const b = await openBrowser(t);
      const url = appUrl(site, hub, { model: MODEL, chunk_kb: 256 });
      hub.control.setFault({ type: "delay", msPer64KiB: 60, file: "model.safetensors" });
      await load(b, url);
      await waitUntil(b, async () => b.page.evaluate(() => !!navigator.serviceWorker.controller), { timeout: ms(60_000), what: "the service worker to control the page", hub });
      const size = (await hub.control.files())[MODEL].files["model.safetensors"].size;
      await waitUntil(b, () => (hub.control.stats().files[`${MODEL}/model.safetensors`]?.bytes ?? 0) > size * 0.3, { timeout: ms(60_000), what: "30 % of the weights served", hub });
      await b.page.reload({ waitUntil: "load" });
      const controlled = await b.page.evaluate(() => !!navigator.serviceWorker.controller);
      expect(controlled, "after the reload the page is not controlled by the service worker: the test proves nothing");
      hub.control.clearFaults();
      await waitModelReady(b, hub);
      const gets = hub.control.stats().requests.filter((q) => q.key === `${MODEL}/model.safetensors` && q.method === "GET");
      const ranged = gets.filter((q) => q.status === 206 && q.start > 0);
      expect(ranged.length > 0, "no ranged (206) request resumed the download after the reload", gets.map((q) => `${q.range} -> ${q.status}`).join("\n"));
      const cached = Object.values(await cacheContents(b.page)).flat();
      const hubFiles = cached.filter((u) => new URL(u).pathname.includes("/resolve/"));
      expect(hubFiles.length === 0, `the service worker cached model files: ${hubFiles.join(", ")}`);
      const failed = b.problems.filter((p) => p.kind === "requestfailed" && /resolve/.test(p.text));
      expect(failed.length === 0, "model requests failed under the service worker:", failed.map((p) => p.text).join("\n"));
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await waitIndexed(b, { indexed: 28, skipped: 4, hub });
    },
  },
  {
    name: "v2. a new version is stored whole and the old one's files evicted; offline, the new HTML with the new bundle",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const { hub, b, url } = await firstVisit(t);
      const v1 = await appHash(t.options.dist);
      await waitStored(b, hub, v1);
      const v2 = await nextVersion(t, t.options.dist);
      hub.control.setSite(v2.dir);
      await load(b, url); // online: the network's new page, stored in the background
      const stored = await waitStored(b, hub, v2.hash);
      const old = Object.values(stored).flat().filter((u) => u.includes(v1));
      expect(old.length === 0, `version 1's files are still cached: ${old.join(", ")}`);
      await goOffline(t, b, hub);
      const { s, page } = await readyOffline(b, hub, url);
      expect(s.state === "ready" && Number(s.indexed) === 0, `offline after the update: data-state=${s.state} "${s.text}"`, await describe(b, hub));
      expect(page.marker === "2" && page.script.includes(v2.hash), `offline the page is version ${page.marker} with ${page.script}, expected version 2`);
      expect(page.wasm.length > 0 && page.wasm.every((w) => w.includes(v2.hash)), `offline version 2's page ran the wasm ${page.wasm.join(", ") || "(none)"}`);
    },
  },
  {
    name: "v3. a new version whose bundle cannot be fetched is never kept: offline, the old HTML with the old bundle",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const { hub, b, url } = await firstVisit(t);
      const v1 = await appHash(t.options.dist);
      await waitStored(b, hub, v1);
      const v2 = await nextVersion(t, t.options.dist, { withoutWasm: true });
      hub.control.setSite(v2.dir);
      await load(b, url); // the broken deployment, from the network
      await waitUntil(b, (now) => now.state === "error", { timeout: ms(30_000), what: "version 2 to fail to start (its wasm is missing)", hub });
      await sleep(2_000); // the worker tries to store version 2, and must give it up
      await waitStored(b, hub, v1);
      await goOffline(t, b, hub);
      const { s, page } = await readyOffline(b, hub, url);
      expect(page.marker === "1" && page.script.includes(v1), `offline the page is version ${page.marker} with ${page.script}, expected version 1 whole`);
      expect(s.state === "ready", `offline with version 1: data-state=${s.state} "${s.text}"`, await describe(b, hub));
    },
  },
  {
    name: "v4. network first, with a time limit: a page the network never answers comes from the cache within the limit",
    timeoutMs: 180_000,
    realAppOnly: true,
    async run(t) {
      const { hub, b, url } = await firstVisit(t);
      await waitStored(b, hub, await appHash(t.options.dist));
      hub.control.setFault({ type: "hang", path: "/index.html" });
      const started = Date.now();
      await load(b, url, { waitUntil: "domcontentloaded" });
      const tookMs = Date.now() - started;
      const s = await waitUntil(b, (now) => now.state === "ready" || now.state === "error", { timeout: ms(60_000), what: "the page from the cache", hub });
      expect(s.state === "ready", `the page from the cache: data-state=${s.state} "${s.text}"`, await describe(b, hub));
      expect(tookMs >= NETWORK_TIMEOUT_MS - 500 && tookMs < NETWORK_TIMEOUT_MS + ms(8_000), `the silent network was given up after ${tookMs} ms (the limit is ${NETWORK_TIMEOUT_MS} ms)`);
      const hung = hub.control.stats().requests.filter((q) => q.hung);
      expect(hung.length > 0, "test setup: the navigation never reached the silent server");
      t.log(`the cached page after ${tookMs} ms of silence`);
    },
  },
];
