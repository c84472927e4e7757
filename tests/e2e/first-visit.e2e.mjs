// First visit (issue 3, e2e a and e): the model downloads from the local hub with a real
// progress bar, a folder with nested folders is dropped (CDP drag-and-drop), indexing ends
// with 28 images indexed and the 4 bad files skipped and listed, and typed queries rank
// exactly as the native CLI ranks the same images with the same model.
// Then a folder holding only bad files: nothing indexed, 4 skipped, no crash.

import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  BAD,
  BAD_FILES,
  IMAGES,
  MODELS,
  QUERIES,
  appUrl,
  cliReference,
  describe,
  dropPaths,
  expect,
  expectNoProblems,
  expectSameRanking,
  expectThumbnails,
  load,
  ms,
  openBrowser,
  readSkipped,
  recorded,
  search,
  startServers,
  waitIndexed,
  waitModelReady,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";

/** Checks a recorded <progress> series: real, growing values that end full. */
function checkProgress(series, what, { minIntermediate }) {
  const real = series.filter((p) => p.value !== null && p.max > 0);
  expect(real.length > 0, `${what}: never had a value and a max (an indeterminate <progress> is not "real values")`);
  const finalMax = real.at(-1).max;
  const intermediate = new Set(real.filter((p) => p.value > 0 && p.value < p.max).map((p) => p.value));
  expect(
    intermediate.size >= minIntermediate,
    `${what}: saw ${intermediate.size} distinct values strictly between 0 and max, expected at least ${minIntermediate}`,
    real.slice(0, 20).map((p) => `${p.value}/${p.max}`).join(", "),
  );
  for (let i = 1; i < real.length; i++) {
    const a = real[i - 1].value / real[i - 1].max;
    const b = real[i].value / real[i].max;
    if (real[i].max === real[i - 1].max && b + 1e-9 < a && real[i].value !== 0) {
      throw new Error(`${what}: went backwards from ${real[i - 1].value}/${real[i - 1].max} to ${real[i].value}/${real[i].max}`);
    }
  }
  const best = Math.max(...real.map((p) => p.value / p.max));
  expect(best >= 0.999, `${what}: never reached its max (best ${(best * 100).toFixed(1)} % of ${finalMax})`);
}

export const tests = [
  {
    name: "a. first visit: download with progress, drop a nested folder, results equal the CLI",
    timeoutMs: 300_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      expect(ref.indexed === 28 && ref.skipped.join() === BAD_FILES.join(), `fixture check: the CLI indexed ${ref.indexed} and skipped ${ref.skipped}`);
      const { hub, site } = await startServers(t);
      const weights = join(MODELS[MODEL], "model.safetensors");
      const size = (await stat(weights)).size;
      // ~100 chunks of 64 KiB at 25 ms each: the download lasts a few seconds, long enough to watch.
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 25 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { timeout: ms(120_000) });

      let rec = await recorded(b.page);
      const states = rec.states.map((s) => s.state);
      const firstDownloading = states.indexOf("downloading");
      expect(firstDownloading >= 0, `data-state never was "downloading" (states: ${states.join(" -> ")})`);
      expect(states.lastIndexOf("ready") > firstDownloading, `"ready" did not come after "downloading" (states: ${states.join(" -> ")})`);
      expect(!states.includes("error"), `data-state went through "error" (states: ${states.join(" -> ")})`);
      checkProgress(rec.model, "#model-progress", { minIntermediate: 3 });
      const weightsDone = Math.max(...hub.control.stats().requests.filter((q) => q.key === `${MODEL}/model.safetensors` && q.method === "GET").map((q) => q.endedAt ?? Infinity));
      const early = rec.states.find((s) => s.state === "ready" && s.t < weightsDone);
      expect(!early, `data-state was "ready" before model.safetensors had arrived (states: ${states.join(" -> ")})`);

      const files = hub.control.stats().files;
      for (const f of ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"]) {
        expect(files[`${MODEL}/${f}`]?.gets > 0, `the page never GOT ${f} from the hub`, await describe(b, hub));
      }
      const served = files[`${MODEL}/model.safetensors`].bytes;
      expect(served >= size && served < size * 1.1, `model.safetensors: the hub served ${served} bytes for a ${size}-byte file on a clean first visit`);
      const snap0 = await b.page.evaluate(() => document.getElementById("status").dataset.backend);
      expect(snap0 === "cpu", `#status[data-backend] is "${snap0}" with backend=cpu`);

      // Drop the folder: 28 images at the top, 4 bad files in bad/.
      const dropAt = Date.now();
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await waitIndexed(b, { indexed: 28, skipped: 4, hub });
      rec = await recorded(b.page);
      const after = rec.states.filter((s) => s.t >= dropAt).map((s) => s.state);
      expect(after.includes("indexing"), `data-state never was "indexing" after the drop (states: ${after.join(" -> ")})`);
      checkProgress(rec.index.filter((p) => p.t >= dropAt), "#index-progress", { minIntermediate: 1 });
      const listed = await readSkipped(b.page, "images");
      expect(
        listed.join() === BAD_FILES.join(),
        `the skipped files are not listed as #skipped li[data-path] (found ${JSON.stringify(listed)}, expected ${JSON.stringify(BAD_FILES)})`,
      );

      // Ranking: the first query typed with no Enter (debounced ranking), the others with Enter.
      const [first, ...rest] = QUERIES[MODEL];
      const shown = await expectSameRanking(b, first, ref, { rootName: "images", enter: false, hub });
      expectThumbnails(shown, `query "${first}"`);
      for (const q of rest) await expectSameRanking(b, q, ref, { rootName: "images", hub });
      await search(b, "   ", { expectEmpty: true, hub });
      await expectNoProblems(b);
    },
  },
  {
    name: "a2. the real hub's ways: revision refs/pr/15 (refs%2Fpr%2F15 in the URL), weights behind a 302 to a CDN host",
    timeoutMs: 240_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      // Like huggingface.co: the weights are only on refs/pr/15, and resolve answers LFS files
      // with a redirect to another host (here "localhost" instead of 127.0.0.1: another origin).
      const cdnHost = process.env.E2E_CDN_HOST ?? "localhost";
      const { hub, site } = await startServers(t, { hubOptions: { redirect: true, cdnHost, onlyRevision: "refs/pr/15" } });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL, revision: "refs/pr/15" }));
      await waitModelReady(b, hub);
      const reqs = hub.control.stats().requests;
      const wrongRevision = reqs.filter((q) => q.revision !== "refs/pr/15" && q.key !== null);
      expect(wrongRevision.length === 0, "requests for another revision than refs/pr/15", wrongRevision.map((q) => q.path).join("\n"));
      const notFound = reqs.filter((q) => q.status === 404);
      expect(notFound.length === 0, "404s from the hub (revision not percent-encoded as refs%2Fpr%2F15?)", notFound.map((q) => `${q.method} ${q.path}`).join("\n"));
      const viaCdn = reqs.filter((q) => q.via === "cdn" && q.key === `${MODEL}/model.safetensors` && q.method === "GET" && q.bytes > 0);
      expect(viaCdn.length > 0, `model.safetensors was never fetched from the CDN location (http://${cdnHost}:${hub.port}/cdn/...)`, await describe(b, hub));
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await waitIndexed(b, { indexed: 28, skipped: 4, hub });
      await expectSameRanking(b, QUERIES[MODEL][2], ref, { rootName: "images", hub });
      await expectNoProblems(b);
    },
  },
  {
    name: "e. a folder of only bad files: 0 indexed, 4 skipped and listed, back to ready, no crash",
    timeoutMs: 180_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      await dropPaths(b.page, "#drop-zone", [BAD]);
      const s = await waitIndexed(b, { indexed: 0, skipped: 4, hub });
      expect(s.state === "ready", `data-state is ${s.state} after indexing only bad files`);
      const listed = await readSkipped(b.page, "bad");
      const want = BAD_FILES.map((f) => f.replace(/^bad\//, ""));
      expect(listed.join() === want.join(), `#skipped li[data-path] lists ${JSON.stringify(listed)}, expected ${JSON.stringify(want)}`);
      const r = await search(b, QUERIES[MODEL][0], { expectEmpty: true, hub });
      expect(r.items.length === 0, `a query over an empty index shows ${r.items.length} results`);
      await expectNoProblems(b, { allow: ["console.error"] });
      // Still alive and answering.
      const alive = await b.page.evaluate(() => document.getElementById("status").dataset.state);
      expect(alive === "ready", `data-state is ${alive} at the end`);
      void readFile;
    },
  },
];
