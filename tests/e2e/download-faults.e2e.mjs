// The model download when the network misbehaves (issue 3, e2e c), counted at the hub:
// - the connection drops at 40 % of model.safetensors: the page resumes by itself with a
//   Range request, without fetching the finished part again;
// - the tab is reloaded in the middle of the download: same;
// - bytes of a tensor arrive corrupted: the page notices (sha256 / X-Linked-Etag), says so,
//   fetches them again, and is never ready with the corrupt bytes; results equal the CLI;
// - the same behind a CDN redirect whose answers carry no SHA-256 (as the real hub's):
//   the hash comes from the hub's API (`api/models/.../revision/...?blobs=true`).
// Issue 10 (download faults), each with a hub switch:
// - c5: the connection goes silent at 40 % but stays open: after the stall time (15 s)
//   the page gives it up and resumes with a Range request;
// - c6: the hub answers 503: bounded backoff, a plain sentence when it gives up, Retry
//   resumes; 503s in the middle are ridden out;
// - c7: the origin's quota is too small (DevTools `Storage.overrideQuotaForOrigin`): a
//   plain message, never ready with half a model, Retry once there is room goes on;
// - c8: "Stop and remove the download" while a request is in flight: nothing of the
//   model is left in IndexedDB afterwards;
// - c9: the hub replaces model.safetensors (same size, other bytes) in the middle of the
//   download: the page starts that file over and is ready with the new one, never
//   checking new bytes against the old hash.

import { cp, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  IMAGES,
  MODELS,
  QUERIES,
  appUrl,
  cliReference,
  describe,
  expect,
  expectSameRanking,
  load,
  ms,
  openBrowser,
  pickFolder,
  recorded,
  safetensorsTensorRange,
  sleep,
  startServers,
  waitIndexed,
  waitModelReady,
  modelCacheFiles,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const KEY = `${MODEL}/model.safetensors`;
const WEIGHTS = join(MODELS[MODEL], "model.safetensors");

/** The hub's GETs of model.safetensors, oldest first. */
/** Counts the model cache's records in the page's IndexedDB. */
async function cachedRecords(page) {
  const files = await modelCacheFiles(page);
  return { files: files.filter((f) => !f.orphan).length, chunks: files.reduce((n, f) => n + f.chunks, 0) };
}

/** The #status text and state now. */
async function statusNow(page) {
  return page.evaluate(() => {
    const s = document.getElementById("status");
    return { state: s?.dataset.state ?? null, text: (s?.textContent ?? "").trim().replace(/\s+/g, " ") };
  });
}

/** Waits until #status is in `state`; returns its text. */
async function waitState(b, hub, state, timeoutMs) {
  const deadline = Date.now() + ms(timeoutMs);
  for (;;) {
    const s = await statusNow(b.page);
    if (s.state === state) return s.text;
    if (Date.now() > deadline) throw new Error(`#status never reached data-state=${state} (now ${s.state}: "${s.text}")\n${await describe(b, hub)}`);
    await sleep(100);
  }
}

const weightGets = (hub) => hub.control.stats().requests.filter((q) => q.key === KEY && q.method === "GET");

function requestLines(gets) {
  return gets.map((q) => `GET [${q.range ?? "no Range"}] -> ${q.status} ${q.bytes} B${q.cut ? " (cut)" : ""}${q.corrupted ? ` (corrupted ${q.corrupted})` : ""}${q.error && !q.cut ? ` (${q.error})` : ""}`).join("\n");
}

/** Requires that the download resumed rather than restarted. */
function expectResumed(hub, size, what) {
  const gets = weightGets(hub);
  const served = hub.control.stats().files[KEY]?.bytes ?? 0;
  const resumed = gets.filter((q) => q.start !== null && q.start > 0 && q.status === 206);
  expect(resumed.length > 0, `${what}: no Range request for the rest of model.safetensors (starting after byte 0) was seen`, requestLines(gets));
  expect(
    served < size * 1.3,
    `${what}: the hub served ${served} bytes of model.safetensors (${(served / size).toFixed(2)} x its ${size} bytes): finished parts were fetched again (limit 1.3 x)`,
    requestLines(gets),
  );
  const last = gets.filter((q) => q.completed);
  expect(last.length > 0, `${what}: no GET of model.safetensors ever completed`, requestLines(gets));
  return { served, gets: gets.length };
}

/** Checks that the model works by comparing one query with the CLI. */
async function expectRightResults(b, hub) {
  const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
  await pickFolder(b.page, IMAGES);
  await waitIndexed(b, { indexed: 28, skipped: 4, hub });
  await expectSameRanking(b, QUERIES[MODEL][1], ref, { rootName: "images", hub });
}

export const tests = [
  {
    name: "c1. a connection cut at 40 % of model.safetensors resumes by itself (Range), finished bytes not fetched again",
    timeoutMs: 240_000,
    async run(t) {
      const size = (await stat(WEIGHTS)).size;
      const { hub, site } = await startServers(t);
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 5 });
      hub.control.setFault({ type: "cut", file: KEY, at: Math.floor(size * 0.4) });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { tolerateError: true, timeout: ms(120_000) });
      const cut = weightGets(hub).filter((q) => q.cut);
      expect(cut.length === 1, `test setup: the cut fault was applied to ${cut.length} GETs (did the page ever fetch byte ${Math.floor(size * 0.4)}?)`, requestLines(weightGets(hub)));
      const { served, gets } = expectResumed(hub, size, "after the cut");
      t.log(`served ${served} bytes of ${size} in ${gets} GETs`);
      await expectRightResults(b, hub);
    },
  },
  {
    name: "c2. a reload in the middle of the download resumes it (Range), finished bytes not fetched again",
    timeoutMs: 240_000,
    async run(t) {
      const size = (await stat(WEIGHTS)).size;
      const { hub, site } = await startServers(t);
      // ~100 chunks x 40 ms: about 4 s for the whole file.
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 40 });
      const b = await openBrowser(t);
      const url = appUrl(site, hub, { model: MODEL });
      await load(b, url);
      const deadline = Date.now() + ms(60_000);
      while ((hub.control.stats().files[KEY]?.bytes ?? 0) < size * 0.45) {
        if (Date.now() > deadline) throw new Error(`the download did not reach 45 % within 60 s\n${await describe(b, hub)}`);
        if (weightGets(hub).some((q) => q.completed)) break;
        await sleep(20);
      }
      const before = hub.control.stats().files[KEY]?.bytes ?? 0;
      expect(before < size, `test setup: the whole file (${before} bytes) was served before the reload could happen`);
      // Let the page store what it has (a person does not reload at an exact byte either).
      await sleep(300);
      const reloadAt = Date.now();
      await b.page.reload({ waitUntil: "load" });
      await waitModelReady(b, hub, { tolerateError: true, timeout: ms(120_000) });
      const afterReload = weightGets(hub).filter((q) => q.startedAt >= reloadAt);
      expect(afterReload.length > 0, "no GET of model.safetensors after the reload: where did the rest come from?", requestLines(weightGets(hub)));
      const resumedAfterReload = afterReload.filter((q) => q.status === 206 && q.start > 0);
      expect(resumedAfterReload.length > 0, "after the reload the download started from byte 0 again instead of resuming with Range", requestLines(weightGets(hub)));
      const { served } = expectResumed(hub, size, "after the reload");
      t.log(`${before} bytes served before the reload; ${served} in all for ${size}`);
      await expectRightResults(b, hub);
    },
  },
  {
    name: "c3. corrupted bytes are detected, reported, refetched, never used; results equal the CLI",
    timeoutMs: 240_000,
    async run(t) {
      const size = (await stat(WEIGHTS)).size;
      // Corrupt a tensor that every image embedding goes through, so corrupt weights would
      // visibly change the results (bytes XOR 0xff: wild f32 values).
      const range = await safetensorsTensorRange(WEIGHTS, "visual_projection.weight");
      const { hub, site } = await startServers(t);
      hub.control.setFault({ type: "corrupt", file: KEY, start: range.start, end: range.end, count: 1 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { tolerateError: true, timeout: ms(120_000) });

      const gets = weightGets(hub);
      const bad = gets.find((q) => q.corrupted);
      expect(bad, "test setup: no GET carried the corrupted bytes (the fault never applied)", requestLines(gets));
      // The corrupted range must arrive again, clean, in one GET or several.
      const later = gets.filter((q) => q.startedAt >= bad.startedAt && q.id !== bad.id && !q.corrupted && q.start !== null);
      let covered = range.start;
      let refetchEndedAt = 0;
      for (const q of [...later].sort((x, y) => x.start - y.start)) {
        const [a, z] = [q.start, q.start + q.bytes];
        if (a <= covered && z > covered) {
          covered = z;
          refetchEndedAt = Math.max(refetchEndedAt, q.endedAt ?? Date.now());
        }
        if (covered >= range.end) break;
      }
      expect(covered >= range.end, `the corrupted bytes [${range.start}, ${range.end}) were never all fetched again (clean up to ${covered})`, requestLines(gets));
      const refetch = { endedAt: refetchEndedAt };

      const rec = await recorded(b.page);
      const readyEarly = rec.states.find((s) => s.state === "ready" && s.t < refetch.endedAt);
      if (readyEarly) {
        throw new Error(
          `the page was ready at ${new Date(readyEarly.t).toISOString()} with the corrupt bytes, before they were fetched again (done ${new Date(refetch.endedAt).toISOString()})\n` +
            `    states: ${rec.states.map((s) => s.state).join(" -> ")}`,
        );
      }
      const reported = rec.trace.some(
        (e) => Number(e.verifyFailures ?? 0) > 0 || /verif|corrupt|checksum|integrity|sha-?256|hash|mismatch/i.test(e.text),
      );
      expect(
        reported,
        "the page never reported the failed verification (expected #status[data-verify-failures] > 0 or a #status text about verification / checksum / corruption)",
        rec.trace.map((e) => `${e.state}: ${e.text}`).slice(-12).join("\n"),
      );
      const served = hub.control.stats().files[KEY].bytes;
      expect(served < size * 2.5, `the hub served ${served} bytes (${(served / size).toFixed(1)} x the file) to recover from one corrupted range`, requestLines(gets));
      t.log(`served ${served} bytes of ${size} in ${gets.length} GETs`);
      await expectRightResults(b, hub);
    },
  },
  {
    realAppOnly: true,
    name: "c4. behind a CDN redirect that hides the SHA-256, corrupted bytes are still caught (the hash from the hub's API), refetched; results equal the CLI",
    timeoutMs: 240_000,
    async run(t) {
      const range = await safetensorsTensorRange(WEIGHTS, "visual_projection.weight");
      const { hub, site } = await startServers(t, { hubOptions: { redirect: true, opaqueCdnEtag: true } });
      hub.control.setFault({ type: "corrupt", file: KEY, start: range.start, end: range.end, count: 1 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { tolerateError: true, timeout: ms(120_000) });

      const requests = hub.control.stats().requests;
      const api = requests.filter((q) => q.via === "api");
      expect(api.length >= 1 && api.every((q) => q.status === 200), `the page did not ask the hub's API for the SHA-256 (API requests: ${api.map((q) => q.status).join(", ") || "none"})`);
      const gets = weightGets(hub);
      expect(gets.some((q) => q.via === "cdn" && q.corrupted), "test setup: no GET from the CDN carried the corrupted bytes", requestLines(gets));
      const bad = gets.find((q) => q.corrupted);
      const refetched = gets.filter((q) => q.startedAt > bad.startedAt && !q.corrupted && q.bytes > 0);
      expect(refetched.length > 0, "the corrupted weights were never fetched again", requestLines(gets));
      const rec = await recorded(b.page);
      const reported = rec.trace.some((e) => Number(e.verifyFailures ?? 0) > 0 || /verif|corrupt|checksum|sha-?256|mismatch/i.test(e.text));
      expect(reported, "the page never reported the failed verification", rec.trace.map((e) => `${e.state}: ${e.text}`).slice(-12).join("\n"));
      t.log(`${api.length} API request(s); ${gets.length} GETs of the weights`);
      await expectRightResults(b, hub);
    },
  },
  {
    realAppOnly: true,
    name: "c5. a connection that goes silent at 40 % (kept open) is given up after the stall time and resumed (Range)",
    timeoutMs: 240_000,
    async run(t) {
      const size = (await stat(WEIGHTS)).size;
      const { hub, site } = await startServers(t);
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 5 });
      hub.control.setFault({ type: "stall", file: KEY, at: Math.floor(size * 0.4) });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { tolerateError: false, timeout: ms(120_000) });
      const gets = weightGets(hub);
      const stalled = gets.filter((q) => q.stalled);
      expect(stalled.length === 1, `test setup: the stall applied to ${stalled.length} GETs`, requestLines(gets));
      const [s] = stalled;
      expect(s.endedAt !== null, "the page never let go of the silent connection", requestLines(gets));
      const waited = s.endedAt - s.startedAt;
      expect(waited >= 14_000 && waited < 60_000, `the silent connection was given up after ${waited} ms (expected the 15 s stall time)`, requestLines(gets));
      const after = gets.filter((q) => q.startedAt >= s.endedAt - 50 && q.status === 206 && q.start > 0);
      expect(after.length > 0, "no Range request resumed the download after the stall", requestLines(gets));
      const { served } = expectResumed(hub, size, "after the stall");
      t.log(`stalled connection given up after ${waited} ms; served ${served} bytes of ${size}`);
    },
  },
  {
    realAppOnly: true,
    name: "c6. 503s: ridden out with bounded backoff; five in a row say the hub is failing, and Retry goes on",
    timeoutMs: 240_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      // Two 503s, then the file (cut at 40 %), then the rest with Range.
      const size = (await stat(WEIGHTS)).size;
      hub.control.setFault({ type: "status", file: KEY, status: 503, count: 2 });
      hub.control.setFault({ type: "cut", file: KEY, at: Math.floor(size * 0.4) });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { tolerateError: false, timeout: ms(120_000) });
      let gets = weightGets(hub);
      expect(gets.filter((q) => q.status === 503).length === 2, "test setup: two 503 answers expected", requestLines(gets));
      const rec = await recorded(b.page);
      expect(rec.trace.some((e) => /trying again/i.test(e.text)), "the page never said it was trying again", rec.trace.map((e) => e.text).slice(-8).join("\n"));
      expectResumed(hub, size, "after the 503s");

      // A fresh profile: five 503s in a row (1 + 2 + 4 + 8 s of backoff), then a sentence.
      const { hub: hub2, site: site2 } = await startServers(t);
      hub2.control.setFault({ type: "status", file: KEY, status: 503, count: 5 });
      const b2 = await openBrowser(t);
      const started = Date.now();
      await load(b2, appUrl(site2, hub2, { model: MODEL }));
      const text = await waitState(b2, hub2, "error", 60_000);
      const took = Date.now() - started;
      expect(/kept answering with an error \(HTTP 503/.test(text), `the page's words for a failing hub: "${text}"`);
      expect(took >= 14_000, `gave up after ${took} ms: the backoff (1 + 2 + 4 + 8 s) was not waited`);
      gets = weightGets(hub2);
      expect(gets.length === 5, `expected exactly 5 GETs before giving up, saw ${gets.length}`, requestLines(gets));
      expect(await b2.page.locator("#retry-button").isVisible(), "no Retry button after the hub failed");
      await b2.page.locator("#retry-button").click();
      await waitModelReady(b2, hub2, { tolerateError: false, timeout: ms(120_000) });
      t.log(`gave up after ${took} ms with "${text}"; Retry finished the download`);
    },
  },
  {
    realAppOnly: true,
    name: "c7. quota exceeded: a plain message, never ready with half a model; Retry once there is room goes on from what was saved",
    timeoutMs: 240_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      // First a refused config.json, so that the page settles (service worker, app
      // shell) before the quota is set relative to what it already uses.
      hub.control.setFault({ type: "status", file: "config.json", status: 403, count: 1 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitState(b, hub, "error", 60_000);
      await sleep(2_000);
      const { usage } = await b.page.evaluate(() => navigator.storage.estimate());
      const cdp = await b.page.context().newCDPSession(b.page);
      const origin = new URL(site.url).origin;
      // Room for the JSON files (3.6 MB) and part of the weights (6.5 MB), not all.
      await cdp.send("Storage.overrideQuotaForOrigin", { origin, quotaSize: usage + 6_500_000 });
      await b.page.locator("#retry-button").click();
      const text = await waitState(b, hub, "error", 60_000).then(async (first) => {
        // The first error may still be the refused config.json's.
        if (/no room left/.test(first)) return first;
        await sleep(500);
        return waitState(b, hub, "error", 60_000);
      });
      expect(/no room left to store the model/.test(text), `the page's words for a full disk: "${text}"`);
      let rec = await recorded(b.page);
      expect(!rec.states.some((s) => s.state === "ready"), "the page was ready with part of the model");
      const stored = await cachedRecords(b.page);
      expect(stored.chunks > 0, `test setup: no chunk was stored before the quota hit (${JSON.stringify(stored)})`);
      const retryAt = Date.now();
      // Space again: Retry goes on.
      await cdp.send("Storage.overrideQuotaForOrigin", { origin });
      await b.page.locator("#retry-button").click();
      await waitModelReady(b, hub, { tolerateError: false, timeout: ms(120_000), expectDownload: false });
      const served = hub.control.stats().files[KEY]?.bytes ?? 0;
      // (The first answer reached the browser whole: localhost fills the socket buffers
      // faster than the page stores; what counts is where Retry starts.)
      const again = weightGets(hub).filter((q) => q.startedAt >= retryAt);
      expect(again.length > 0 && again.every((q) => q.start > 0), "Retry fetched model.safetensors from byte 0: what was saved before the quota hit was not kept", requestLines(weightGets(hub)));
      rec = await recorded(b.page);
      expect(!rec.states.some((s) => s.state === "ready" && s.t < retryAt), "the page was ready before Retry");
      t.log(`quota error: "${text}"; ${stored.chunks} chunks kept; ${served} bytes served in all`);
      await expectRightResults(b, hub);
    },
  },
  {
    realAppOnly: true,
    name: "c8. \"Stop and remove\" while a request is in flight leaves nothing of the model in IndexedDB",
    timeoutMs: 240_000,
    async run(t) {
      const size = (await stat(WEIGHTS)).size;
      const { hub, site } = await startServers(t);
      // ~100 pieces x 40 ms: the download takes about 4 s.
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 40 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      const deadline = Date.now() + ms(60_000);
      while ((hub.control.stats().files[KEY]?.bytes ?? 0) < size * 0.3) {
        if (Date.now() > deadline) throw new Error(`the download did not reach 30 % within 60 s\n${await describe(b, hub)}`);
        await sleep(20);
      }
      const button = b.page.locator("#remove-model-button");
      expect(/stop and remove/i.test((await button.textContent()) ?? ""), `the button says "${await button.textContent()}"`);
      await button.click();
      // Whatever was in flight has had time to arrive and be (wrongly) stored.
      await sleep(2_000);
      const left = await cachedRecords(b.page);
      expect(left.files === 0 && left.chunks === 0, `after "Stop and remove", IndexedDB still holds ${left.files} model files and ${left.chunks} chunks`);
      const s = await statusNow(b.page);
      expect(s.state !== "downloading" && s.state !== "ready", `after "Stop and remove" the page is ${s.state}: "${s.text}"`);
      t.log(`removed at ${hub.control.stats().files[KEY]?.bytes} of ${size} bytes; nothing left`);
    },
  },
  {
    realAppOnly: true,
    name: "c9. model.safetensors replaced on the hub mid-download (same size): started over, verified against the new file's hash",
    timeoutMs: 240_000,
    async run(t) {
      const dir = await mkdtemp(join(tmpdir(), "clipseek-e2e-model-"));
      t.defer(() => rm(dir, { recursive: true, force: true }));
      await cp(MODELS[MODEL], dir, { recursive: true });
      const file = join(dir, "model.safetensors");
      const v1 = await readFile(file);
      const v2 = Buffer.from(v1);
      v2[v2.length - 1000] ^= 0x5a; // tensor data: the header still reads
      const size = v1.length;
      const { hub, site } = await startServers(t, { hubOptions: { models: { ...MODELS, [MODEL]: dir } } });
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 20 });
      hub.control.setFault({ type: "cut", file: KEY, at: Math.floor(size * 0.6) });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      const deadline = Date.now() + ms(60_000);
      while ((hub.control.stats().files[KEY]?.bytes ?? 0) < size * 0.3) {
        if (Date.now() > deadline) throw new Error(`the download did not reach 30 % within 60 s\n${await describe(b, hub)}`);
        await sleep(10);
      }
      // A new file in its place (a new inode: the answer in flight keeps the old bytes).
      await writeFile(`${file}.new`, v2);
      await rename(`${file}.new`, file);
      const changedAt = Date.now();
      await waitModelReady(b, hub, { tolerateError: false, timeout: ms(120_000) });
      const gets = weightGets(hub);
      const restarted = gets.filter((q) => q.startedAt >= changedAt && q.start === 0 && q.completed);
      expect(restarted.length > 0, "after the change the page never fetched the new file from its start", requestLines(gets));
      const rec = await recorded(b.page);
      const failed = rec.trace.some((e) => Number(e.verifyFailures ?? 0) > 0);
      t.log(`${gets.length} GETs; ${failed ? "one failed verification" : "no failed verification"} on the way`);
      const s = await statusNow(b.page);
      expect(s.state === "ready", `the page is ${s.state}: "${s.text}"`);
    },
  },
];
