// Screenshots of the page's states (issue 3, e2e f) and measurements (e2e g), printed as
// JSON lines and kept in tests/e2e/out/metrics.jsonl. Timings are measured, never asserted;
// the runs must still succeed.
//
// E2E_BENCH_IMAGES (default 12): how many 12-megapixel JPEGs to index per worker count;
// E2E_BENCH_MODEL=DIR: a model folder (hub layout) to measure with instead of tiny-clip;
// E2E_BENCH_WORKERS (default "1,2").

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startHub } from "../../scripts/hub-server.mjs";
import {
  MODELS,
  MODEL_FILES,
  OUT,
  ROOT,
  QUERIES,
  appUrl,
  dropPaths,
  expect,
  load,
  makeImageFolder,
  metric,
  ms,
  openBrowser,
  recorded,
  search,
  startServers,
  waitIndexed,
  waitModelReady,
  waitUntil,
} from "./helpers.mjs";
import { serveStatic } from "../../scripts/static-server.mjs";

const MODEL = "test/tiny-clip";

async function shot(page, name) {
  await mkdir(OUT, { recursive: true });
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  const size = (await stat(path)).size;
  expect(size > 2_000, `screenshot ${path} is only ${size} bytes`);
  return path;
}

/**
 * 12 MP JPEGs (4000x3000), each a different picture, drawn by this crate
 * (`examples/make_photos.rs`), cached in tests/e2e/out/bench-12mp-N/.
 */
async function twelveMegapixelFolder(count) {
  const dir = join(OUT, `bench-12mp-${count}`);
  if (existsSync(dir) && (await readdir(dir)).filter((f) => f.endsWith(".jpg")).length === count) return dir;
  await mkdir(dir, { recursive: true });
  const args = ["cargo", "run", "--quiet", "--release", "--example", "make_photos", "--", dir, String(count)];
  await new Promise((ok, fail) =>
    execFile("nice", args, { cwd: ROOT, timeout: 600_000 }, (error, _out, stderr) =>
      error ? fail(new Error(`could not draw the 12 MP JPEGs (${args.join(" ")}): ${error.message}\n${stderr}`)) : ok(),
    ),
  );
  return dir;
}

export const tests = [
  {
    name: "f. screenshots of the states empty, downloading, indexing, results (tests/e2e/out/*.png)",
    timeoutMs: 300_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      // Slow enough to catch the download in the act (~100 chunks x 60 ms).
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 60 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitUntil(b, (s) => s.state === "downloading" && s.modelProgress?.value > 0, {
        timeout: ms(60_000),
        what: "data-state=downloading with #model-progress above 0",
        hub,
      });
      await b.page.waitForTimeout(400);
      const shots = [await shot(b.page, "downloading")];
      hub.control.clearFaults();
      await waitModelReady(b, hub);
      shots.push(await shot(b.page, "empty"));

      const parent = await mkdtemp(join(tmpdir(), "clipseek-e2e-many-"));
      t.defer(() => rm(parent, { recursive: true, force: true }));
      const folder = join(parent, "holiday-photos");
      const count = await makeImageFolder(folder, 6);
      await dropPaths(b.page, "#drop-zone", [folder]);
      await waitUntil(b, (s) => s.state === "indexing" && s.indexProgress?.value > 0, {
        timeout: ms(60_000),
        what: `data-state=indexing with #index-progress above 0 (a folder of ${count} images)`,
        hub,
      });
      shots.push(await shot(b.page, "indexing"));
      await waitIndexed(b, { indexed: count, skipped: 0, hub, timeout: ms(240_000) });
      await search(b, QUERIES[MODEL][1], { hub });
      await b.page.waitForTimeout(300); // thumbnails decode
      shots.push(await shot(b.page, "results"));
      t.log(`screenshots: ${shots.join(", ")}`);
    },
  },
  {
    name: "g. measurements: download throughput from the local hub",
    timeoutMs: 180_000,
    async run(t) {
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      const started = Date.now();
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      const readyMs = Date.now() - started;
      const gets = hub.control.stats().requests.filter((q) => q.method === "GET" && q.key?.startsWith(`${MODEL}/`));
      const bytes = gets.reduce((a, q) => a + q.bytes, 0);
      const first = Math.min(...gets.map((q) => q.startedAt));
      const last = Math.max(...gets.map((q) => q.endedAt ?? Date.now()));
      const seconds = Math.max(1, last - first) / 1000;
      const rec = await recorded(b.page);
      const dl = rec.states.find((s) => s.state === "downloading");
      await metric("download_throughput_local_hub", bytes / 1e6 / seconds, "MB/s", {
        model: MODEL,
        bytes,
        files: MODEL_FILES.length,
        first_request_to_last_byte_ms: last - first,
        page_downloading_to_ready_ms: dl ? rec.states.findLast((s) => s.state === "ready").t - dl.t : null,
        page_open_to_ready_ms: readyMs,
        note: "a 6.5 MB model on loopback: mostly per-request and IndexedDB overhead",
      });
    },
  },
  {
    name: "g. measurements: images/s indexed (12 MP JPEGs, CPU, 1 and 2 workers)",
    timeoutMs: 900_000,
    async run(t) {
      const count = Number(process.env.E2E_BENCH_IMAGES ?? 12);
      const workersList = (process.env.E2E_BENCH_WORKERS ?? "1,2").split(",").map(Number);
      const folder = await twelveMegapixelFolder(count);
      const benchModel = process.env.E2E_BENCH_MODEL;
      let hub;
      let site;
      if (benchModel) {
        hub = await startHub({ models: { "bench/model": benchModel } });
        t.defer(() => hub.close());
        site = await serveStatic(t.options.dist, { port: 0, connectSrc: [hub.url] });
        t.defer(() => site.close());
      } else ({ hub, site } = await startServers(t));
      const model = benchModel ? "bench/model" : MODEL;
      for (const workers of workersList) {
        const b = await openBrowser(t);
        await load(b, appUrl(site, hub, { model, workers }));
        await waitModelReady(b, hub, { timeout: ms(600_000) });
        const dropAt = Date.now();
        await dropPaths(b.page, "#drop-zone", [folder]);
        await waitIndexed(b, { indexed: count, skipped: 0, hub, timeout: ms(600_000) });
        const doneAt = Date.now();
        const rec = await recorded(b.page);
        const indexing = rec.states.find((s) => s.t >= dropAt && s.state === "indexing");
        const seconds = (doneAt - dropAt) / 1000;
        await metric("index_images_per_s", count / seconds, "images/s", {
          model: benchModel ?? MODEL,
          workers,
          backend: "cpu",
          images: count,
          image: "4000x3000 JPEG",
          drop_to_done_ms: doneAt - dropAt,
          indexing_state_to_done_ms: indexing ? doneAt - indexing.t : null,
        });
        await b.close();
      }
    },
  },
];
