// The model download when the network misbehaves (issue 3, e2e c), counted at the hub:
// - the connection drops at 40 % of model.safetensors: the page resumes by itself with a
//   Range request, without fetching the finished part again;
// - the tab is reloaded in the middle of the download: same;
// - bytes of a tensor arrive corrupted: the page notices (sha256 / X-Linked-Etag), says so,
//   fetches them again, and is never ready with the corrupt bytes; results equal the CLI;
// - the same behind a CDN redirect whose answers carry no SHA-256 (as the real hub's):
//   the hash comes from the hub's API (`api/models/.../revision/...?blobs=true`).

import { stat } from "node:fs/promises";
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
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const KEY = `${MODEL}/model.safetensors`;
const WEIGHTS = join(MODELS[MODEL], "model.safetensors");

/** The hub's GETs of model.safetensors, oldest first. */
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
];
