// The CPU engine's packed 8-bit weights (issue 9, cold start): the first load of each
// tower builds the 8-bit engine from model.safetensors and keeps it packed in IndexedDB
// beside the model; the next start reads it back instead (the workers say where their
// weights came from on #engine-text[data-load-query|photos]) and computes the same scores;
// "Remove model" removes it with the model, leaving nothing behind.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  appUrl,
  describe,
  dropPaths,
  expect,
  expectNoProblems,
  load,
  loadReport,
  makeImageFolder,
  modelCacheFiles,
  ms,
  openBrowser,
  search,
  startServers,
  waitIndexed,
  waitModelReady,
  waitPacked,
  waitUntil,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const QUERY = "a photo of a dog";

const marks = (r) => Object.fromEntries(r?.marks ?? []);
const scores = (results) => results.items.map((r) => `${r.path} ${r.score}`);

export const tests = [
  {
    realAppOnly: true,
    name: "k1. 8-bit weights packed on the first start, read back on the next (same scores), removed with the model",
    timeoutMs: 300_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      const dir = await mkdtemp(join(tmpdir(), "clipseek-e2e-packed-"));
      t.defer(() => rm(dir, { recursive: true, force: true }));
      const count = await makeImageFolder(join(dir, "first"), 1);
      const b = await openBrowser(t);
      const url = appUrl(site, hub, { model: MODEL, precision: "int8" });
      await load(b, url);
      await waitModelReady(b, hub, { timeout: ms(120_000) });

      // First start: both towers built from the model, then kept.
      const built = await loadReport(b.page, "query");
      expect(built?.weights === "model", `the query worker's first load read its weights from ${JSON.stringify(built)}`);
      await dropPaths(b.page, "#drop-zone", [join(dir, "first")]);
      await waitIndexed(b, { indexed: count, skipped: 0, hub });
      const photosBuilt = await loadReport(b.page, "photos");
      expect(photosBuilt?.weights === "model", `the photo worker's first load: ${JSON.stringify(photosBuilt)}`);
      expect("first_batch" in marks(photosBuilt), `no first_batch mark: ${JSON.stringify(photosBuilt)}`);
      const before = scores(await search(b, QUERY, { hub }));
      const text = await waitPacked(b, "text", { hub });
      const vision = await waitPacked(b, "vision", { hub });
      t.log(`kept: ${text.file} (${text.bytes} bytes), ${vision.file} (${vision.bytes} bytes)`);

      // Next start: read back, not built; the same scores.
      await load(b, url);
      await waitUntil(b, (s) => s.state === "ready", { timeout: ms(60_000), what: "ready after reload", hub });
      const again = await loadReport(b.page, "query");
      expect(again?.weights === "packed", `after a reload the query worker read its weights from ${JSON.stringify(again)}`);
      expect("packed_read" in marks(again) && !("read" in marks(again)), `marks ${JSON.stringify(again)}`);
      const queried = scores(await search(b, QUERY, { hub }));
      expect(JSON.stringify(queried) === JSON.stringify(before), "the packed query engine ranks otherwise than the one built from the model", `${before.join("\n")}\nvs\n${queried.join("\n")}`);
      // The photos again (the index cleared, so they are encoded, not reused by hash).
      await b.page.locator("#clear-button").click();
      await b.page.locator("#clear-button").click();
      await waitUntil(b, (s) => s.state === "ready" && Number(s.indexed) === 0, { timeout: ms(30_000), what: "the index cleared", hub });
      await dropPaths(b.page, "#drop-zone", [join(dir, "first")]);
      await waitIndexed(b, { indexed: count, skipped: 0, hub });
      const photos = await loadReport(b.page, "photos");
      expect(photos?.weights === "packed", `after a reload the photo worker read its weights from ${JSON.stringify(photos)}`);
      const after = scores(await search(b, QUERY, { hub }));
      expect(JSON.stringify(after) === JSON.stringify(before), "photos encoded by the packed engine score otherwise than by the built one", `${before.join("\n")}\nvs\n${after.join("\n")}`);
      t.log(`cold start marks: query ${JSON.stringify(again.marks)}, photos ${JSON.stringify(photos.marks)}`);

      // Removed with the model: nothing of it stays.
      await b.page.locator("#remove-model-button").click();
      await waitUntil(b, (s) => s.state !== "ready" && s.state !== "loading", { timeout: ms(30_000), what: "the model removed", hub });
      const left = await modelCacheFiles(b.page);
      expect(left.length === 0, `after "Remove model" IndexedDB still holds ${JSON.stringify(left)}`, await describe(b, hub));
      await expectNoProblems(b);
    },
  },
];
