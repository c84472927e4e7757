#!/usr/bin/env node
// The whole-pipeline benchmark of the page (issue 9): our built app (dist/) indexes a folder
// of photo-like JPEGs of mixed sizes in headless Chromium on the CPU — decode, preprocess,
// model, thumbnail, save: drop to done — with 1 and N encoder workers, and the peer
// (onnxruntime-web wasm in the same Chromium, 1 thread, fp32 and int8, model only, batch 1;
// shared/peers' bench_browser.mjs) runs before and after ours in the same session. Prints
// the ratio table (peer model-only ms per image / our whole-pipeline ms per image: above
// 1.0 we are faster) as markdown and writes target/bench/page.json.
//
//   node scripts/bench_page.mjs [--dist dist] [--model DIR] [--peer DIR] [--photos N]
//       [--sizes 4000x3000,3024x4032,1920x1080,1280x960,800x600] [--workers 1,2]
//       [--precision auto] [--runs 3] [--cold 3] [--peer-variants fp32,int8]
//
//   --model DIR   the model folder in the hub layout (default /tmp/clipseek-b32: made with
//                 `cargo run --release --example make_synthetic_model -- DIR` when missing)
//   --peer DIR    a writable copy of shared/peers, set up with its setup.sh (its ONNX files
//                 in /tmp/peer-models/onnx); without it the peer rows are left out
//   --photos N    how many JPEGs (default 40), drawn by examples/make_photos with --sizes
//   --runs N      timed drops per worker count (default 3; the median is reported)
//   --cold N      cold starts (reloads with the model cached) per run (default 3), each
//                 with the workers' own timings (#engine-text[data-load-query]: where the
//                 weights came from — `packed` 8-bit weights kept by an earlier start, or
//                 `model` — and ms per step: open, read, convert, build, packed_read, …)
//   --peer-variants  the peer's variants (default fp32,int8)
//
// The peer runs before our first timed drop and again after each one (interleaved), so
// each of our runs has a peer figure on each side of it, taken under the same load; the
// ratio of a run uses the median of those two. With 1 worker the photo worker's own
// totals per step (`LoadReport::work`: read, hash, decode, pixels, thumb, model, post)
// split the drop's time per image; what they leave is the page's side (messages, the
// index and thumbnail saves) and waiting.
//
// Needs what scripts/setup installs (Chromium, playwright-core, trunk's dist/). Timings are
// measured, never asserted; the load of other processes is reported beside each figure.
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { startHub } from "./hub-server.mjs";
import { serveStatic } from "./static-server.mjs";
import { ROOT, appUrl, dropPaths, load, loadReport, openBrowser, recorded, waitIndexed, waitModelReady, waitPacked, waitUntil } from "../tests/e2e/helpers.mjs";

const a = {
  dist: join(ROOT, "dist"),
  model: "/tmp/clipseek-b32",
  peer: null,
  photos: 40,
  sizes: "4000x3000,3024x4032,1920x1080,1280x960,800x600",
  workers: "1,2",
  precision: "auto",
  runs: 3,
  cold: 3,
  "peer-variants": "fp32,int8",
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, "");
  if (!(k in a)) throw new Error(`bench_page: unknown option --${k}`);
  a[k] = process.argv[i + 1];
}
const say = (s) => process.stderr.write(`bench_page: ${s}\n`);
const OUT = join(ROOT, "target/bench");
/** A folder of one photo unlike the benchmark's (indexed before the timed drop). */
const PRIME = join(OUT, "prime");

function run(cmd, args, opts = {}) {
  return new Promise((ok, fail) =>
    execFile(cmd, args, { cwd: ROOT, maxBuffer: 64 << 20, ...opts }, (e, out, err) => (e ? fail(new Error(`${cmd} ${args.join(" ")}: ${e.message}\n${err}`)) : ok(out))),
  );
}

function procStat() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((x, y) => x + y, 0);
  return { busy: total - idle, total };
}
const coresBusy = (p0, p1) => +(((p1.busy - p0.busy) / Math.max(1, p1.total - p0.total)) * cpus().length).toFixed(2);
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)];

async function ensureInputs() {
  await mkdir(PRIME, { recursive: true });
  await copyFile(join(ROOT, "tests/fixtures/images/exif-1.jpg"), join(PRIME, "prime.jpg"));
  if (!existsSync(join(a.model, "model.safetensors"))) {
    say(`making the synthetic ViT-B/32 in ${a.model} (~1 min)`);
    await run("nice", ["cargo", "run", "--quiet", "--release", "--example", "make_synthetic_model", "--", a.model]);
  }
  const dir = join(OUT, `photos-${a.photos}-${a.sizes.replace(/,/g, "_")}`);
  const have = existsSync(dir) ? (await readdir(dir)).filter((f) => f.endsWith(".jpg")).length : 0;
  if (have !== Number(a.photos)) {
    say(`drawing ${a.photos} JPEGs (${a.sizes}) in ${dir}`);
    await rm(dir, { recursive: true, force: true });
    await run("nice", ["cargo", "run", "--quiet", "--release", "--example", "make_photos", "--", dir, String(a.photos), a.sizes]);
  }
  return dir;
}

/** onnxruntime-web in Chromium, 1 thread, model only: ms per image at batch 1, per variant. */
async function peerRun(label) {
  if (!a.peer) return null;
  const out = join(OUT, `peer-${label}.json`);
  say(`peer (${label}): onnxruntime-web in Chromium, 1 thread, fp32 + int8`);
  await run("node", [join(resolve(a.peer), "bench_browser.mjs"), "--threads", "1", "--variants", a["peer-variants"], "--batches", "1", "--runs", "5", "--warmup", "3", "--out", out]);
  const r = JSON.parse(readFileSync(out, "utf8"));
  const rows = {};
  for (const c of r.configs) {
    if (c.error) throw new Error(`bench_page: the peer failed: ${c.error}`);
    for (const res of c.results ?? []) {
      rows[res.variant] = { ms_per_image: res.vision?.b1?.ms_per_image ?? null, machine_cores_busy: c.machine_cores_busy };
    }
  }
  return { file: out, chromium: r.chromium, rows };
}

/** One cold start with the model cached: navigation to ready, with the page's record of
 * #status and the progress bar (ms since the reload) and the query worker's own marks. */
async function coldStart(b, url, hub) {
  const reloadAt = Date.now();
  await load(b, url);
  await waitUntil(b, (s) => s.state === "ready", { timeout: 120_000, what: "ready after reload", hub });
  const readyMs = Date.now() - reloadAt;
  const cold = await recorded(b.page);
  const since = (x) => (x == null ? null : x.t - reloadAt);
  const steps = cold.model.filter((m) => m.value != null && m.max > 0);
  const full = steps.find((m) => m.value >= m.max);
  const out = {
    ready_ms: readyMs,
    first_status_ms: since(cold.trace[0]),
    model_checked_ms: since(full),
    query_worker: await loadReport(b.page, "query"),
    states: cold.states.map((x) => `${x.state}@${x.t - reloadAt}`),
  };
  say(`cold start: ${JSON.stringify(out)}`);
  return out;
}

/** Our page: `runs` drops of the folder, each in a fresh profile (download once per
 * profile), the peer run after each (`peerAfter(label)`). */
async function pageRun(folder, workers, peerAfter) {
  const count = (await readdir(folder)).filter((f) => f.endsWith(".jpg")).length;
  const defers = [];
  const t = { defer: (f) => defers.push(f), options: { dist: a.dist }, log: say };
  const hub = await startHub({ models: { "bench/model": a.model } });
  t.defer(() => hub.close());
  const site = await serveStatic(a.dist, { port: 0, connectSrc: [hub.url] });
  t.defer(() => site.close());
  const runs = [];
  try {
    for (let i = 0; i < Number(a.runs); i++) {
      const b = await openBrowser(t);
      // Which worker build the page loaded (relaxed SIMD or simd128).
      const modules = new Set();
      b.context.on("request", (r) => {
        const m = /(clipseek-worker[a-z-]*)_bg\.wasm/.exec(r.url());
        if (m) modules.add(m[1]);
      });
      const url = appUrl(site, hub, { model: "bench/model", workers, precision: a.precision });
      await load(b, url);
      await waitModelReady(b, hub, { timeout: 900_000 });
      const firstLoad = await loadReport(b.page, "query");
      // 8-bit on the CPU: the first start keeps the packed weights; wait for them so that
      // the cold starts below read them (as a person's next visit would).
      // So does the first photo worker: one other photo is indexed first (not timed), so
      // that the timed drop starts as a person's next visit does.
      let primed = 0;
      if (firstLoad?.weights === "model" && (a.precision === "int8" || a.precision === "auto")) {
        await dropPaths(b.page, "#drop-zone", [PRIME]);
        await waitIndexed(b, { indexed: 1, skipped: 0, hub, timeout: 900_000 });
        primed = 1;
        for (const tower of ["text", "vision"]) {
          await waitPacked(b, tower, { timeout: 300_000, hub }).catch((e) => say(`no packed ${tower} weights: ${e.message.split("\n")[0]}`));
        }
      }
      const colds = [];
      for (let c = 0; c < Number(a.cold); c++) colds.push(await coldStart(b, url, hub));
      const coldStartMs = median(colds.map((c) => c.ready_ms));
      const p0 = procStat();
      const dropAt = Date.now();
      await dropPaths(b.page, "#drop-zone", [folder]);
      await waitIndexed(b, { indexed: count + primed, skipped: 0, hub, timeout: 1_800_000 });
      const doneAt = Date.now();
      const p1 = procStat();
      const rec = await recorded(b.page);
      const backend = rec.trace.findLast((s) => s.backend)?.backend ?? null;
      const photos = await loadReport(b.page, "photos");
      say(`photo worker: ${JSON.stringify(photos)}`);
      const loadAvg = (await run("cat", ["/proc/loadavg"])).split(" ").slice(0, 3).join(" ");
      runs.push({ ms_per_image: (doneAt - dropAt) / count, drop_to_done_ms: doneAt - dropAt, cold_start_ms: coldStartMs, first_load: firstLoad, cold_starts: colds, photo_worker: photos, worker_modules: [...modules], machine_cores_busy: coresBusy(p0, p1), load_average: loadAvg, backend });
      say(`page, ${workers} worker(s), run ${i + 1}: ${(doneAt - dropAt) / count} ms/image, cold start ${coldStartMs} ms, worker module ${[...modules].join(", ")}, load ${loadAvg}`);
      await b.close();
      runs.at(-1).peer_after = await peerAfter(`w${workers}-r${i + 1}`);
    }
  } finally {
    for (const f of defers.reverse()) await Promise.resolve(f()).catch(() => {});
  }
  return { workers, images: count, runs, ms_per_image: median(runs.map((r) => r.ms_per_image)), cold_start_ms: median(runs.map((r) => r.cold_start_ms)) };
}

const folder = await ensureInputs();
const peers = [await peerRun("before")];
const ours = [];
const peerAfter = async (label) => {
  peers.push(await peerRun(label));
  return peers.length - 1;
};
for (const w of a.workers.split(",").map(Number)) ours.push(await pageRun(folder, w, peerAfter));

const peerMs = (variant, runs = peers) => {
  const xs = runs.map((p) => p?.rows[variant]?.ms_per_image).filter((x) => x != null);
  return xs.length ? median(xs) : null;
};
// Each of our runs against the peer runs on either side of it (same load).
for (const o of ours) {
  for (const r of o.runs) {
    const beside = [peers[r.peer_after - 1], peers[r.peer_after]];
    r.peer_int8_beside = beside.map((p) => p?.rows.int8?.ms_per_image ?? null);
    const p = peerMs("int8", beside);
    r.paired_ratio = p ? +(p / r.ms_per_image).toFixed(3) : null;
  }
  o.paired_ratio = median(o.runs.map((r) => r.paired_ratio).filter((x) => x != null)) ?? null;
}
const lines = [
  `| what | ms per image | peer int8 ÷ this (≥ 1: we are faster) | other load (cores) |`,
  `|---|---:|---:|---:|`,
];
const int8 = peerMs("int8");
const fp32 = peerMs("fp32");
const ratio = (ms) => (int8 && ms ? `${(int8 / ms).toFixed(2)}×` : "—");
const one = ours.find((o) => o.workers === 1);
for (const o of ours) {
  const busy = median(o.runs.map((r) => r.machine_cores_busy));
  const scaling = one && o.workers > 1 ? `; ${(one.ms_per_image / o.ms_per_image / o.workers).toFixed(2)} of ${o.workers}× one worker` : "";
  const paired = o.paired_ratio ? `${o.paired_ratio.toFixed(2)}× paired (${o.runs.map((r) => r.paired_ratio).join(", ")})` : ratio(o.ms_per_image);
  lines.push(`| clipseek page, whole pipeline, ${o.workers} worker(s), precision=${a.precision} (${o.runs[0]?.backend ?? "?"}${scaling}) | ${o.ms_per_image.toFixed(1)} | ${paired} | ${busy} (whole machine; load ${o.runs.map((r) => r.load_average.split(" ")[0]).join(", ")}) |`);
}
for (const [v, ms] of [["fp32", fp32], ["int8", int8]]) {
  const each = peers.map((p) => p?.rows[v]?.ms_per_image?.toFixed(0)).join(", ");
  if (ms) lines.push(`| onnxruntime-web ${v}, Chromium, 1 thread, model only, batch 1 (median of ${peers.length} runs: ${each}) | ${ms.toFixed(1)} | ${ratio(ms)} | — |`);
}
// Where one worker's time went, per image, by its own totals.
for (const o of ours.filter((o) => o.workers === 1)) {
  for (const r of o.runs) {
    const work = Object.fromEntries(r.photo_worker?.work ?? []);
    const n = work.photos;
    if (!n) continue;
    lines.push("", `| 1 worker, run ${o.runs.indexOf(r) + 1}: step | ms per image |`, `|---|---:|`);
    let inWorker = 0;
    for (const [k, ms] of Object.entries(work)) {
      if (k === "photos") continue;
      inWorker += ms;
      lines.push(`| worker: ${k} | ${(ms / n).toFixed(1)} |`);
    }
    lines.push(`| outside the worker's steps (page, messages, saves, waiting) | ${(r.ms_per_image - inWorker / n).toFixed(1)} |`);
    lines.push(`| drop to done | ${r.ms_per_image.toFixed(1)} |`);
  }
}
const result = { date: new Date().toISOString(), folder, photos: Number(a.photos), sizes: a.sizes, precision: a.precision, ours, peers, table: lines };
await mkdir(OUT, { recursive: true });
await writeFile(join(OUT, "page.json"), JSON.stringify(result, null, 2));
console.log(lines.join("\n"));
console.log(`\ncold start with the model cached (navigation to ready, median): ${ours.map((o) => `${o.cold_start_ms} ms (${o.workers} worker(s))`).join(", ")}`);
// Where the cold starts went, by the query worker's marks (median per step over every cold start).
const colds = ours.flatMap((o) => o.runs.flatMap((r) => r.cold_starts));
const steps = [...new Set(colds.flatMap((c) => (c.query_worker?.marks ?? []).map(([k]) => k)))];
const stepMs = (k) => median(colds.map((c) => Object.fromEntries(c.query_worker?.marks ?? [])[k]).filter((x) => x != null));
console.log(`\n| cold start (median of ${colds.length}) | ms |\n|---|---:|`);
console.log(`| navigation to ready | ${median(colds.map((c) => c.ready_ms))} |`);
console.log(`| first status (app's wasm up) | ${median(colds.map((c) => c.first_status_ms))} |`);
console.log(`| model found stored and checked | ${median(colds.map((c) => c.model_checked_ms))} |`);
console.log(`| query worker's weights from | ${[...new Set(colds.map((c) => c.query_worker?.weights))].join(", ")} |`);
for (const k of steps) console.log(`| query worker: ${k} | ${stepMs(k)} |`);
const photo = ours.flatMap((o) => o.runs.map((r) => r.photo_worker)).filter(Boolean);
for (const p of photo) console.log(`photo worker (first start of its profile): ${JSON.stringify(p)}`);
say(`wrote ${join(OUT, "page.json")}`);
process.exit(0);
