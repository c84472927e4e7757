// The WebGPU engine in the app (issue 4, browser part), on headless Chromium's WebGPU
// (SwiftShader, with --enable-unsafe-webgpu; slow, hence the tiny model):
//   w1. backend=webgpu indexes the fixture folder and gives the same results as backend=cpu
//       in another browser (scores within 2e-4, order equal up to such ties);
//   w2. without an adapter, backend=auto runs on the CPU and says why, and backend=webgpu
//       is a clear error;
//   w3. backend=auto starts on WebGPU; the device is lost mid-run (a fault injected into the
//       workers destroys it at its third submission): the work moves to the CPU, no photo
//       is lost or skipped, results equal the CLI;
//   w4. backend=auto with a device whose limits the model does not fit: CPU, said so;
//   w5. idle photo encoders (and their GPU devices) are stopped after idle_s seconds and
//       start again for a search by photo;
//   w6. backend=webgpu, a device lost mid-run: the worker opens a new device and goes on
//       on WebGPU, nothing lost;
//   w7. a device that claims shader-f16 but refuses the f16 kernels: the engine is built
//       again in f32 on the GPU (not the CPU), said so.
// The faults are JavaScript run in the encoder workers before the app's own code
// (distWithWorkerPrelude): they patch the WebGPU API the way a failing GPU would behave.

import { join } from "node:path";
import { BAD_FILES, IMAGES, MODELS, QUERIES, appUrl, cliReference, describe, distWithWorkerPrelude, dropPaths, expect, expectNoProblems, expectSameRanking, load, ms, normalisePagePath, openBrowser, readSkipped, recorded, search, sleep, snapshot, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const ROOT_NAME = "images";

/** The engine line of the model panel. */
const engineText = (page) => page.evaluate(() => document.getElementById("engine-text")?.textContent ?? "");

/** The data-backend values the recorder saw, in order, without repeats. */
async function backendsSeen(page) {
  const rec = await recorded(page);
  const seen = [];
  for (const e of rec.trace) if (e.backend && seen.at(-1) !== e.backend) seen.push(e.backend);
  return seen;
}

/** Opens the app with `params`, downloads the model and indexes the fixture folder. */
async function indexFixtures(t, { webgpu, params, dist, servers }) {
  const { hub, site } = servers ?? (await startServers(t, dist ? { dist } : {}));
  const b = await openBrowser(t, { webgpu });
  await load(b, appUrl(site, hub, { model: MODEL, ...params }));
  await waitModelReady(b, hub);
  await dropPaths(b.page, "#drop-zone", [IMAGES]);
  await waitIndexed(b, { indexed: 28, skipped: BAD_FILES.length, hub, timeout: ms(300_000) });
  const skipped = await readSkipped(b.page, ROOT_NAME);
  expect(skipped.join() === BAD_FILES.join(), `#skipped lists ${skipped.join(", ")}; expected only the bad files ${BAD_FILES.join(", ")}`);
  return { b, hub, site };
}

/** Requires equal rankings: same paths in the same order up to ties of `tol`, scores within `tol`. */
function compareTwoPages(gpuItems, cpuItems, tol) {
  const problems = [];
  if (gpuItems.length !== cpuItems.length) problems.push(`webgpu shows ${gpuItems.length} results, cpu ${cpuItems.length}`);
  const cpu = new Map(cpuItems.map((r) => [normalisePagePath(r.path, ROOT_NAME), Number(r.score)]));
  const slack = tol + 5e-5 + 1e-9; // data-score has 4 decimals
  gpuItems.forEach((r, i) => {
    const path = normalisePagePath(r.path, ROOT_NAME);
    const score = Number(r.score);
    if (cpu.has(path) && Math.abs(cpu.get(path) - score) > slack) problems.push(`rank ${i + 1}: ${path} scores ${r.score} on webgpu, ${cpu.get(path).toFixed(4)} on cpu`);
    if (cpuItems[i] && Math.abs(Number(cpuItems[i].score) - score) > slack) {
      problems.push(`rank ${i + 1}: webgpu has ${path} (${r.score}) where cpu has ${normalisePagePath(cpuItems[i].path, ROOT_NAME)} (${cpuItems[i].score})`);
    }
  });
  return problems;
}

// Runs in each encoder worker before the app: a device that reaches its third
// queue.submit() is destroyed just before it (as when the GPU process dies or the driver
// resets), for the first `times` devices of the worker. The query worker has its own device
// and meets the same fate at its third query.
const loseDevice = (times) => String.raw`(() => {
  let left = ${times};
  const devices = new Map();
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    devices.set(device.queue, { device, submits: 0 });
    return device;
  };
  const submit = GPUQueue.prototype.submit;
  GPUQueue.prototype.submit = function (...args) {
    const d = devices.get(this);
    if (d && ++d.submits === 3 && left > 0) {
      left -= 1;
      console.warn("e2e fault: destroying the WebGPU device at its 3rd submission");
      d.device.destroy();
    }
    return submit.apply(this, args);
  };
})();`;

// Runs in each encoder worker before the app: every device reports a 4 KiB storage-binding
// limit, far below what any weight of the model needs (as on a small mobile GPU with a big model).
const SMALL_LIMITS = String.raw`(() => {
  const descriptor = Object.getOwnPropertyDescriptor(GPUDevice.prototype, "limits");
  Object.defineProperty(GPUDevice.prototype, "limits", {
    configurable: true,
    get() {
      const real = descriptor.get.call(this);
      return new Proxy(real, {
        get(target, key) {
          if (key === "maxStorageBufferBindingSize") return 4096;
          const value = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    },
  });
})();`;

// Runs in each encoder worker before the app: devices claim the shader-f16 feature they do
// not have, so the engine picks f16 and the browser's shader compiler refuses its kernels.
const FAKE_F16 = String.raw`(() => {
  const descriptor = Object.getOwnPropertyDescriptor(GPUDevice.prototype, "features");
  Object.defineProperty(GPUDevice.prototype, "features", {
    configurable: true,
    get() {
      const real = descriptor.get.call(this);
      return new Proxy(real, {
        get(target, key) {
          if (key === "has") return (name) => name === "shader-f16" || target.has(name);
          const value = Reflect.get(target, key, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    },
  });
})();`;

export const tests = [
  {
    realAppOnly: true,
    name: "w1. backend=webgpu (Chromium WebGPU): indexes the fixture folder, results equal backend=cpu's",
    timeoutMs: 600_000,
    async run(t) {
      const servers = await startServers(t);
      const gpu = await indexFixtures(t, { webgpu: true, params: { backend: "webgpu" }, servers });
      const seen = await backendsSeen(gpu.b.page);
      const now = await snapshot(gpu.b.page);
      expect(now.backend === "webgpu", `backend=webgpu: #status[data-backend] is "${now.backend}" after indexing (seen: ${seen.join(" -> ")})`);
      const engine = await engineText(gpu.b.page);
      expect(/^Encoding on WebGPU\b/.test(engine) && !/CPU/.test(engine), `the engine line says "${engine}", expected WebGPU only`);
      t.log(`engine: ${engine}`);

      const cpu = await indexFixtures(t, { webgpu: false, params: { backend: "cpu" }, servers });
      expect((await snapshot(cpu.b.page)).backend === "cpu", "backend=cpu: data-backend is not cpu");
      for (const query of QUERIES[MODEL]) {
        const g = await search(gpu.b, query, { hub: gpu.hub });
        const c = await search(cpu.b, query, { hub: cpu.hub });
        const problems = compareTwoPages(g.items, c.items, 2e-4);
        expect(problems.length === 0, `query "${query}": backend=webgpu and backend=cpu differ (${problems.length} problems)`, problems.slice(0, 10).join("\n"));
      }
      expect((await snapshot(gpu.b.page)).backend === "webgpu", "data-backend left webgpu while searching");
      await expectNoProblems(gpu.b);
      await expectNoProblems(cpu.b);
    },
  },
  {
    realAppOnly: true,
    name: "w2. no WebGPU adapter: backend=auto runs on the CPU and says why; backend=webgpu is a clear error",
    timeoutMs: 240_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t, { webgpu: false });
      await load(b, appUrl(site, hub, { model: MODEL, backend: "auto" }));
      await waitModelReady(b, hub);
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await waitIndexed(b, { indexed: 28, skipped: BAD_FILES.length, hub });
      const s = await snapshot(b.page);
      expect(s.backend === "cpu", `backend=auto without an adapter: data-backend="${s.backend}"`);
      const engine = await engineText(b.page);
      expect(/CPU/.test(engine) && /WebGPU is not available/.test(engine), `the engine line should say the CPU is used and why: "${engine}"`);
      t.log(`engine: ${engine}`);
      await expectSameRanking(b, QUERIES[MODEL][0], ref, { rootName: ROOT_NAME, hub });
      await expectNoProblems(b);

      // Same browser, model already stored: backend=webgpu must refuse, clearly.
      await load(b, appUrl(site, hub, { model: MODEL, backend: "webgpu" }));
      const failed = await waitUntil(b, async (now) => now.state === "error" || (now.state === "ready" && (await engineText(b.page)) !== ""), {
        timeout: ms(60_000),
        what: "backend=webgpu without an adapter to end in data-state=error",
        hub,
      });
      expect(failed.state === "error", `backend=webgpu without an adapter: data-state=${failed.state}, expected error ("${failed.text}")`);
      expect(/backend=webgpu/.test(failed.text) && /backend=auto/.test(failed.text), `the error should name backend=webgpu and the way out (backend=auto): "${failed.text}"`);
      t.log(`error: ${failed.text}`);
    },
  },
  {
    realAppOnly: true,
    name: "w3. backend=auto, WebGPU device lost mid-run: the rest moves to the CPU, nothing lost, results equal the CLI",
    timeoutMs: 600_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const dist = await distWithWorkerPrelude(t, loseDevice(1000));
      const { b, hub } = await indexFixtures(t, { webgpu: true, params: { backend: "auto" }, dist });
      const seen = await backendsSeen(b.page);
      const during = (await recorded(b.page)).trace.filter((e) => e.state === "indexing").map((e) => e.backend);
      expect(during.includes("webgpu"), `indexing never ran on WebGPU (data-backend while indexing: ${[...new Set(during)].join(", ")})`, await describe(b, hub));
      expect(seen.at(-1) === "cpu" && seen.lastIndexOf("webgpu") >= 0, `data-backend should go webgpu -> cpu after the loss; seen ${seen.join(" -> ")}`);
      const engine = await engineText(b.page);
      expect(/CPU/.test(engine) && /WebGPU engine failed/.test(engine), `the engine line should say the work moved to the CPU and why: "${engine}"`);
      t.log(`data-backend: ${seen.join(" -> ")}; engine: ${engine}`);
      // Three queries: the query worker's device is lost at the third, which must still answer.
      for (const q of QUERIES[MODEL]) await expectSameRanking(b, q, ref, { rootName: ROOT_NAME, hub });
      const after = await engineText(b.page);
      expect(/^Encoding on the CPU/.test(after), `after the query worker's device was lost too, the engine line says "${after}"`);
      await expectNoProblems(b);
    },
  },
  {
    realAppOnly: true,
    name: "w4. backend=auto, a device whose limits the model does not fit: the CPU engine, said so, results equal the CLI",
    timeoutMs: 300_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const dist = await distWithWorkerPrelude(t, SMALL_LIMITS);
      const { b, hub } = await indexFixtures(t, { webgpu: true, params: { backend: "auto" }, dist });
      const seen = await backendsSeen(b.page);
      expect(!seen.includes("webgpu"), `data-backend was webgpu at some point (${seen.join(" -> ")}) though the model fits no binding`);
      const engine = await engineText(b.page);
      expect(/CPU/.test(engine) && /limit/.test(engine), `the engine line should say the model does not fit the adapter's limits: "${engine}"`);
      t.log(`engine: ${engine}`);
      await expectSameRanking(b, QUERIES[MODEL][1], ref, { rootName: ROOT_NAME, hub });
      await expectNoProblems(b);
    },
  },
  {
    realAppOnly: true,
    name: "w5. idle photo encoders and their GPU devices are stopped after idle_s, and start again for a search by photo",
    timeoutMs: 300_000,
    async run(t) {
      const { b, hub } = await indexFixtures(t, { webgpu: true, params: { backend: "auto", idle_s: 2 } });
      const workers = () => b.page.workers().length;
      expect(workers() >= 2, `after indexing ${workers()} workers run, expected the query worker and a photo encoder`);
      const started = Date.now();
      while (workers() > 1 && Date.now() - started < ms(20_000)) await sleep(100);
      expect(workers() === 1, `idle_s=2: ${workers()} workers still run ${((Date.now() - started) / 1000).toFixed(0)} s after indexing; the photo encoders should have stopped`);
      const idle = await snapshot(b.page);
      expect(idle.state === "ready" && idle.backend === "webgpu", `after stopping the photo encoders: data-state=${idle.state} data-backend=${idle.backend} (the query worker still runs on WebGPU)`);
      t.log(`photo encoders stopped ${((Date.now() - started) / 1000).toFixed(1)} s after indexing`);

      // A search by photo starts a photo encoder again; the photo itself ranks first.
      const photo = join(IMAGES, "landscape.jpg");
      await dropPaths(b.page, "#query", [photo]);
      let found = [];
      await waitUntil(
        b,
        async () => {
          found = await b.page.evaluate(() => [...document.querySelectorAll("#results > *")].map((el) => ({ path: el.dataset.path, score: el.dataset.score })));
          return found.length > 0 && found[0].path?.endsWith("landscape.jpg");
        },
        { timeout: ms(60_000), what: "results for the dropped photo, itself first", hub },
      );
      expect(Number(found[0].score) > 0.999, `the dropped photo ranks itself with score ${found[0].score}, expected 1.0000`);
      expect(workers() >= 2, `searching by photo did not start a photo encoder (${workers()} workers)`);
      await expectNoProblems(b);
    },
  },
  {
    realAppOnly: true,
    name: "w6. backend=webgpu, a device lost mid-run: a new WebGPU device takes over, nothing lost, results equal the CLI",
    timeoutMs: 600_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const dist = await distWithWorkerPrelude(t, loseDevice(1));
      const { b, hub } = await indexFixtures(t, { webgpu: true, params: { backend: "webgpu" }, dist });
      const during = (await recorded(b.page)).trace.filter((e) => e.state === "indexing" || e.state === "ready").map((e) => e.backend);
      expect(!during.includes("cpu"), `backend=webgpu: data-backend was cpu while indexing or ready (${[...new Set(during)].join(", ")})`);
      const engine = await engineText(b.page);
      expect(/^Encoding on WebGPU/.test(engine) && /a new one was opened/.test(engine), `the engine line should say a new device took over: "${engine}"`);
      t.log(`engine: ${engine}`);
      for (const q of QUERIES[MODEL]) await expectSameRanking(b, q, ref, { rootName: ROOT_NAME, hub });
      expect((await snapshot(b.page)).backend === "webgpu", "data-backend left webgpu after the query worker's device was lost");
      await expectNoProblems(b);
    },
  },
  {
    realAppOnly: true,
    name: "w7. f16 kernels refused by the browser's compiler: the engine is built again in f32 on WebGPU, said so, results equal the CLI",
    timeoutMs: 300_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const dist = await distWithWorkerPrelude(t, FAKE_F16);
      // precision=auto: the f16 choice is what this test is about (appUrl pins f32 otherwise).
      const { b, hub } = await indexFixtures(t, { webgpu: true, params: { backend: "auto", precision: "auto" }, dist });
      const s = await snapshot(b.page);
      expect(s.backend === "webgpu", `data-backend is ${s.backend}: the f32 retry should have kept the work on WebGPU`);
      const engine = await engineText(b.page);
      expect(/^Encoding on WebGPU \(f32\)/.test(engine) && /f16 kernels failed/.test(engine), `the engine line should say f16 failed and f32 is used: "${engine}"`);
      t.log(`engine: ${engine.slice(0, 300)}`);
      await expectSameRanking(b, QUERIES[MODEL][0], ref, { rootName: ROOT_NAME, hub });
      await expectNoProblems(b);
    },
  },
];

