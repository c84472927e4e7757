// Shared helpers of the browser tests (tests/e2e/*.e2e.mjs, run by tests/e2e/run.mjs):
// launching Debian's Chromium with the flags of ../shared/TESTING.md, the local servers
// (static dist/ and the hub), the page-contract hooks of DESIGN.md ("Contract: the page"),
// CDP drag-and-drop of folders, reference rankings from the native CLI, and comparisons
// that fail with a message saying what differs.
//
// Everything that waits has a timeout and fails with the page's state in the message;
// everything that starts something registers its own clean-up with `t.defer` (see run.mjs).

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startHub } from "../../scripts/hub-server.mjs";
import { serveStatic } from "../../scripts/static-server.mjs";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const FIXTURES = join(ROOT, "tests/fixtures");
export const OUT = join(ROOT, "tests/e2e/out");
export const CHROMIUM = process.env.CLIPSEEK_CHROMIUM ?? "/usr/bin/chromium";
export const CLI = process.env.CLIPSEEK_CLI ?? join(ROOT, "target/release/clipseek");
/** Multiplies every timeout (slow or busy machines): E2E_TIMEOUT_SCALE=2. */
export const TIMEOUT_SCALE = Number(process.env.E2E_TIMEOUT_SCALE ?? 1) || 1;
export const ms = (n) => Math.round(n * TIMEOUT_SCALE);

// Without these Chromium keeps trying to reach Google's services (TESTING.md).
export const CHROMIUM_ARGS = [
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--no-default-browser-check",
  "--disable-dev-shm-usage",
];

/** The models the hub serves in every test, as `model` URL parameters. */
export const MODELS = {
  "test/tiny-clip": join(FIXTURES, "tiny-clip"),
  "test/shapes-clip": join(FIXTURES, "shapes-clip"),
};
export const MODEL_FILES = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"];

/** The folders the tests drop, and what the CLI says of them (kept in step with the fixtures). */
export const IMAGES = join(FIXTURES, "images"); // 28 good images + bad/ (4 bad files)
export const BAD = join(FIXTURES, "images/bad");
export const SHAPES = join(FIXTURES, "shapes"); // 64 pictures in warm/, warm/yellow/, cool/, cool/blue/
export const BAD_FILES = ["bad/bomb.png", "bad/empty.jpg", "bad/text.jpg", "bad/truncated.jpg"];

/** Queries compared with the CLI, per model (the mock app's references are made for these). */
export const QUERIES = {
  "test/tiny-clip": ["a photo of a dog", "a red landscape at sunset", "grey", "a cat sitting on a sofa"],
  "test/shapes-clip": ["red circle", "a blue square", "green star", "yellow triangle"],
};

export const sleep = (n) => new Promise((ok) => setTimeout(ok, n));

// --- small utilities ------------------------------------------------------------------------

/** Rejects with `what` once `timeoutMs` have passed; clears its timer either way. */
export async function withTimeout(promise, timeoutMs, what) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${(timeoutMs / 1000).toFixed(0)} s: ${what}`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Throws an Error with `message` (and optional details) unless `ok`. */
export function expect(ok, message, details) {
  if (!ok) throw new Error(details ? `${message}\n${indent(details)}` : message);
}

export function indent(text, prefix = "    ") {
  return String(text)
    .split("\n")
    .map((line) => prefix + line)
    .join("\n");
}

/** Prints one measurement as a JSON line (and appends it to tests/e2e/out/metrics.jsonl). */
export async function metric(name, value, unit, extra = {}) {
  const line = JSON.stringify({ metric: name, value: Number.isFinite(value) ? Number(value.toFixed(3)) : value, unit, ...extra });
  console.log(line);
  await mkdir(OUT, { recursive: true });
  await writeFile(join(OUT, "metrics.jsonl"), line + "\n", { flag: "a" });
}

/** Lists the files under `dir`, recursively, as paths relative to it with '/' separators. */
export async function listFiles(dir) {
  const out = [];
  async function walk(d) {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.push(relative(dir, p).split(sep).join("/"));
    }
  }
  await walk(dir);
  return out.sort();
}

/**
 * The byte range [start, end) of a tensor's data in a safetensors file (header: u64 LE
 * length, JSON with `data_offsets` relative to the end of the header).
 */
export async function safetensorsTensorRange(file, name) {
  const handle = await open(file, "r");
  try {
    const lenBuf = Buffer.alloc(8);
    await handle.read(lenBuf, 0, 8, 0);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    const header = Buffer.alloc(headerLen);
    await handle.read(header, 0, headerLen, 8);
    const json = JSON.parse(header.toString("utf8"));
    const tensor = json[name];
    if (!tensor) throw new Error(`${file} has no tensor ${name} (has ${Object.keys(json).slice(0, 8).join(", ")}, ...)`);
    const [a, b] = tensor.data_offsets;
    return { start: 8 + headerLen + a, end: 8 + headerLen + b, dataStart: 8 + headerLen, dtype: tensor.dtype, shape: tensor.shape };
  } finally {
    await handle.close();
  }
}

// --- servers ----------------------------------------------------------------------------------

/** The origins the hub answers from: its own, and its "CDN" host when it redirects elsewhere. */
export function hubOrigins(hub, hubOptions = {}) {
  const origins = [hub.url];
  if (hubOptions.redirect && hubOptions.cdnHost) origins.push(`http://${hubOptions.cdnHost}:${hub.port}`);
  return origins;
}

/**
 * Starts the hub (every model of MODELS) and the static server for `dist`, registering
 * their shutdown with `t.defer`. `hubOptions` go to startHub (redirect, onlyRevision, ...).
 * With `sameOrigin` (or E2E_SAME_ORIGIN=1), the hub also serves the site, so the page and
 * the hub share one origin (the production policy: connect-src 'self' covers it).
 * Otherwise the site is the test build: the static server adds exactly the hub's origins
 * to the page's connect-src (`connect: false` serves the production policy unchanged, which
 * refuses the hub). `site.requests` lists what the static server served.
 */
export async function startServers(t, { dist = t.options.dist, hubOptions = {}, staticPort = 0, sameOrigin = t.options.sameOrigin, connect = true } = {}) {
  const hub = await startHub({ models: MODELS, ...hubOptions, ...(sameOrigin ? { site: dist, port: staticPort } : {}) });
  t.defer(() => hub.close());
  let site;
  if (sameOrigin) {
    site = { url: `${hub.url}/`, port: hub.port, close: async () => {}, sameOrigin: true };
  } else {
    const connectSrc = connect ? hubOrigins(hub, hubOptions) : [];
    site = await serveStatic(dist, { port: staticPort, connectSrc });
    site.connectSrc = connectSrc;
    t.defer(() => site.close());
  }
  return { hub, site };
}

/** Restarts the static server on the port it had (same origin: IndexedDB and the service worker are per origin). */
export async function restartSite(t, site, dist = t.options.dist) {
  if (site.sameOrigin) throw new Error("restartSite: not with sameOrigin (the hub serves the site)");
  const again = await serveStatic(dist, { port: site.port, connectSrc: site.connectSrc ?? [] });
  again.connectSrc = site.connectSrc;
  t.defer(() => again.close());
  return again;
}

/** The page URL with the contract's parameters (DESIGN.md: hub, model, revision, backend, workers). */
export function appUrl(site, hub, { model = "test/tiny-clip", revision = "main", backend = "cpu", workers = 1, ...extra } = {}) {
  const params = new URLSearchParams({ hub: hub.url, model, revision, backend, workers: String(workers) });
  // The CLI references are f32, and precision=auto is the 8-bit path on the page's CPU
  // engine: pages that may run on the CPU are pinned to f32 unless a test asks otherwise.
  if (backend !== "webgpu" && !("precision" in extra)) params.set("precision", "f32");
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) params.set(k, String(v));
  return `${site.url}index.html?${params}`;
}

// --- the browser --------------------------------------------------------------------------

// Runs in the page before its own scripts: records every change of #status and of the two
// <progress> elements with a timestamp (a MutationObserver with old values, so that states
// that last less than a frame are seen too), and every CSP violation.
const RECORDER = String.raw`(() => {
  if (window.__e2e) return;
  const rec = (window.__e2e = { trace: [], states: [], model: [], index: [], csp: [] });
  let lastKey = "";
  const status = () => document.getElementById("status");
  function snap() {
    const s = status();
    if (s) {
      const d = s.dataset;
      const entry = {
        state: d.state ?? null, indexed: d.indexed ?? null, skipped: d.skipped ?? null,
        backend: d.backend ?? null, verifyFailures: d.verifyFailures ?? null,
        text: (s.textContent || "").trim().replace(/\s+/g, " ").slice(0, 300),
      };
      const key = JSON.stringify(entry);
      if (key !== lastKey) { lastKey = key; rec.trace.push({ t: Date.now(), ...entry }); }
      const state = d.state ?? null;
      if (rec.states.length === 0 || rec.states[rec.states.length - 1].state !== state) rec.states.push({ t: Date.now(), state });
    }
    for (const [id, list] of [["model-progress", rec.model], ["index-progress", rec.index]]) {
      const p = document.getElementById(id);
      if (!p) continue;
      const value = p.hasAttribute("value") ? Number(p.value) : null;
      const max = Number(p.max);
      const last = list[list.length - 1];
      if (!last || last.value !== value || last.max !== max) list.push({ t: Date.now(), value, max });
    }
  }
  const observer = new MutationObserver((records) => {
    // States that came and went within one task: each record's old value is the state
    // before it, so the value after record i is the old value of the next such record.
    const own = records.filter((r) => r.type === "attributes" && r.attributeName === "data-state" && r.target.id === "status");
    for (let i = 1; i < own.length; i++) {
      const state = own[i].oldValue;
      const last = rec.states[rec.states.length - 1];
      if (!last || last.state !== state) rec.states.push({ t: Date.now(), state, brief: true });
    }
    snap();
  });
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true, attributeOldValue: true });
  setInterval(snap, 25);
  document.addEventListener("securitypolicyviolation", (e) => {
    rec.csp.push({ t: Date.now(), directive: e.effectiveDirective, blocked: e.blockedURI, source: e.sourceFile });
  });
})();`;

/**
 * Launches Chromium with a persistent profile in `userDataDir` (a fresh temporary folder
 * unless given: reuse one to test persistence), with the recorder installed and problems
 * (uncaught errors, console errors, failed requests, HTTP errors) collected. Closed by
 * t.defer; a fresh profile folder is deleted then too. `webgpu: true` turns on Chromium's
 * WebGPU.
 */
export async function openBrowser(t, { userDataDir, viewport = { width: 1280, height: 900 }, webgpu = false } = {}) {
  const fresh = !userDataDir;
  const dir = userDataDir ?? (await mkdtemp(join(tmpdir(), "clipseek-e2e-profile-")));
  if (fresh) t.defer(() => rm(dir, { recursive: true, force: true }));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    // --enable-unsafe-webgpu: headless Chromium's WebGPU (SwiftShader; TESTING.md). Without
    // it requestAdapter() gives null, as on a machine without WebGPU.
    args: webgpu ? [...CHROMIUM_ARGS, "--enable-unsafe-webgpu"] : CHROMIUM_ARGS,
    viewport,
    serviceWorkers: "allow",
    timeout: ms(60_000),
  });
  const session = { context, page: null, dir, problems: [], closed: false };
  const close = async () => {
    if (session.closed) return;
    session.closed = true;
    await withTimeout(context.close(), ms(20_000), "closing Chromium").catch(() => {
      // A browser that does not close is killed with its process group by run.mjs's watchdog.
    });
  };
  session.close = close;
  t.defer(close);
  context.setDefaultTimeout(ms(30_000));
  context.setDefaultNavigationTimeout(ms(60_000));
  await context.addInitScript(RECORDER);
  const watch = (page) => {
    const note = (kind, text) => session.problems.push({ t: Date.now(), kind, text });
    page.on("pageerror", (error) => note("pageerror", error.message));
    page.on("crash", () => note("crash", "the page crashed"));
    page.on("console", (message) => {
      if (message.type() === "error") note("console.error", message.text());
    });
    // net::ERR_ABORTED is what Chromium reports for a HEAD, for a body read through a
    // stream reader, and for a fetch the page cancels itself: noted apart, not a problem.
    page.on("requestfailed", (request) => {
      const error = request.failure()?.errorText ?? "";
      note(error === "net::ERR_ABORTED" ? "aborted" : "requestfailed", `${request.method()} ${request.url()} (${error})`);
    });
    page.on("response", (response) => {
      if (response.status() >= 400) note("http", `HTTP ${response.status()} ${response.request().method()} ${response.url()}`);
    });
  };
  context.on("page", watch);
  for (const page of context.pages()) watch(page);
  session.page = context.pages()[0] ?? (await context.newPage());
  return session;
}

/** Problems of the given kinds (default: all) collected so far, one per line. */
export function problemsText(session, kinds) {
  const list = session.problems.filter((p) => !kinds || kinds.includes(p.kind));
  return list.map((p) => `${p.kind}: ${p.text}`).join("\n");
}

/**
 * Fails if the page threw, crashed or logged errors, if a request failed (other than
 * net::ERR_ABORTED) or got an HTTP error, or if the CSP refused something. `allow`: kinds
 * ("console.error", "requestfailed", "http") or RegExps on the text to let through.
 */
export async function expectNoProblems(session, { allow = [] } = {}) {
  const csp = await session.page.evaluate(() => window.__e2e?.csp ?? []).catch(() => []);
  const allowed = ["aborted", ...allow];
  const list = session.problems.filter((p) => !allowed.includes(p.kind) && !allow.some((a) => a instanceof RegExp && a.test(p.text)));
  const lines = list.map((p) => `${p.kind}: ${p.text}`).concat(csp.map((c) => `CSP refused ${c.blocked} (${c.directive})`));
  expect(lines.length === 0, "the page reported problems:", lines.slice(0, 20).join("\n"));
}

/** The #status hook and the progress elements, as the page shows them now. */
export async function snapshot(page) {
  return page.evaluate(() => {
    const s = document.getElementById("status");
    const prog = (id) => {
      const p = document.getElementById(id);
      return p ? { value: p.hasAttribute("value") ? Number(p.value) : null, max: Number(p.max) } : null;
    };
    return {
      state: s?.dataset.state ?? null,
      indexed: s?.dataset.indexed ?? null,
      skipped: s?.dataset.skipped ?? null,
      backend: s?.dataset.backend ?? null,
      verifyFailures: s?.dataset.verifyFailures ?? null,
      text: (s?.textContent ?? "").trim().replace(/\s+/g, " ").slice(0, 300),
      modelProgress: prog("model-progress"),
      indexProgress: prog("index-progress"),
      results: document.querySelectorAll("#results > *").length,
    };
  });
}

/** What the recorder saw: {trace, states, model, index, csp}. */
export async function recorded(page) {
  return page.evaluate(() => window.__e2e ?? { trace: [], states: [], model: [], index: [], csp: [] });
}

/** A few lines describing the page and the hub, for failure messages. */
export async function describe(session, hub) {
  const lines = [];
  try {
    const s = await withTimeout(snapshot(session.page), 5_000, "reading #status");
    lines.push(
      `#status: data-state=${s.state} data-indexed=${s.indexed} data-skipped=${s.skipped} data-backend=${s.backend}` +
        `${s.verifyFailures !== null ? ` data-verify-failures=${s.verifyFailures}` : ""} text="${s.text}"`,
    );
    lines.push(
      `#model-progress ${JSON.stringify(s.modelProgress)}  #index-progress ${JSON.stringify(s.indexProgress)}  #results: ${s.results} children`,
    );
    const r = await withTimeout(recorded(session.page), 5_000, "reading the recorder");
    lines.push(`states seen: ${r.states.map((x) => x.state).join(" -> ") || "(none)"}`);
    for (const c of r.csp.slice(0, 5)) lines.push(`CSP refused ${c.blocked} (${c.directive})`);
  } catch (error) {
    lines.push(`(page not readable: ${error.message.split("\n")[0]})`);
  }
  if (hub) {
    const reqs = hub.control.stats().requests;
    lines.push(`hub: ${reqs.length} requests${reqs.length ? ":" : " (nothing reached the hub)"}`);
    for (const q of reqs.slice(-8)) {
      lines.push(`  ${q.method} ${q.path}${q.range ? ` [${q.range}]` : ""} -> ${q.status} ${q.bytes} B${q.error ? ` (${q.error})` : ""}`);
    }
  }
  const problems = session.problems.slice(-8);
  if (problems.length) lines.push("page problems (last 8):", ...problems.map((p) => `  ${p.kind}: ${p.text.slice(0, 300)}`));
  return lines.join("\n");
}

/** Loads `url`, failing with a clear message unless the page answers (from network or service worker). */
export async function load(session, url, { waitUntil = "load" } = {}) {
  let response;
  try {
    response = await session.page.goto(url, { waitUntil, timeout: ms(60_000) });
  } catch (error) {
    throw new Error(`could not load ${url}: ${error.message.split("\n")[0]}`);
  }
  expect(!response || response.ok(), `loading ${url} answered HTTP ${response?.status()}`);
  return response;
}

/**
 * Polls `check(snapshot)` until it returns true; returns the last snapshot. `check` may
 * throw to fail at once. On timeout: an error naming `what`, with the page's state.
 */
export async function waitUntil(session, check, { timeout, what, hub, every = 100 }) {
  const started = Date.now();
  let last;
  while (Date.now() - started < timeout) {
    last = await withTimeout(snapshot(session.page), ms(15_000), `reading the page while waiting for ${what}`);
    if (await check(last, Date.now() - started)) return last;
    await sleep(every);
  }
  throw new Error(`timed out after ${(timeout / 1000).toFixed(0)} s waiting for ${what}\n${indent(await describe(session, hub))}`);
}

/**
 * Waits for the model to be downloaded, verified and loaded: #status[data-state=ready].
 * Fails early (with the reason) when the page shows `error` (unless `tolerateError`), or
 * when nothing reached the hub within `startTimeout` (the download never started: URL
 * parameters ignored, or the hub blocked by the CSP's connect-src). Clicks a
 * `#download-model` button if the page waits in `idle` with one.
 */
export async function waitModelReady(session, hub, { timeout = ms(120_000), startTimeout = ms(20_000), tolerateError = false, expectDownload = true } = {}) {
  let clicked = false;
  return waitUntil(
    session,
    async (s, elapsed) => {
      if (s.state === "ready") return true;
      if (s.state === "error" && !tolerateError) {
        throw new Error(`the page went to data-state=error before the model was ready: "${s.text}"\n${indent(await describe(session, hub))}`);
      }
      if (s.state === "idle" && !clicked) {
        // The button may go as the page starts by itself: a click that finds none is no error.
        const button = session.page.locator("#download-model");
        if ((await button.isVisible().catch(() => false)) && (await button.isEnabled().catch(() => false))) {
          clicked = await button.click({ timeout: ms(2_000) }).then(() => true, () => false);
        }
      }
      if (expectDownload && elapsed > startTimeout) {
        const asked = hub.control.stats().requests.filter((q) => q.key && MODEL_FILES.some((f) => q.key.endsWith("/" + f)));
        if (asked.length === 0) {
          const csp = (await recorded(session.page)).csp;
          throw new Error(
            `no model file was requested from the hub ${hub.url} within ${(startTimeout / 1000).toFixed(0)} s ` +
              `(data-state=${s.state}): the download never started. Does the page read the hub/model/revision ` +
              `URL parameters, and does its CSP connect-src allow ${hub.url}?` +
              `${csp.length ? ` CSP refused: ${csp.map((c) => c.blocked).join(", ")}` : ""}\n${indent(await describe(session, hub))}`,
          );
        }
      }
      return false;
    },
    { timeout, what: "the model to be ready (#status[data-state=ready])", hub, every: 150 },
  );
}

/**
 * Waits for indexing to end: data-state back to ready with data-indexed + data-skipped
 * reaching `indexed + skipped`; then requires both exactly. Fails early if the page is
 * ready with other counts that do not move for `settle` ms, or shows error.
 */
export async function waitIndexed(session, { indexed, skipped, timeout = ms(180_000), settle = ms(8_000), hub }) {
  let stableSince = null;
  let lastKey = "";
  const s = await waitUntil(
    session,
    async (now) => {
      if (now.state === "error") throw new Error(`the page went to data-state=error while indexing: "${now.text}"\n${indent(await describe(session, hub))}`);
      const done = Number(now.indexed ?? NaN) + Number(now.skipped ?? NaN);
      if (now.state === "ready" && done >= indexed + skipped) return true;
      const key = `${now.state}|${now.indexed}|${now.skipped}|${now.indexProgress?.value}`;
      if (key !== lastKey) {
        lastKey = key;
        stableSince = Date.now();
      } else if (now.state === "ready" && Date.now() - stableSince > settle && done > 0) {
        throw new Error(
          `indexing ended with data-indexed=${now.indexed} data-skipped=${now.skipped}, expected ${indexed} and ${skipped}\n${indent(await describe(session, hub))}`,
        );
      }
      return false;
    },
    { timeout, what: `indexing to finish (data-state=ready, data-indexed=${indexed}, data-skipped=${skipped})`, hub, every: 150 },
  );
  expect(
    Number(s.indexed) === indexed && Number(s.skipped) === skipped,
    `after indexing: data-indexed=${s.indexed} data-skipped=${s.skipped}, expected ${indexed} and ${skipped}`,
    await describe(session, hub),
  );
  return s;
}

// --- giving the page files ---------------------------------------------------------------------

/**
 * Drops files and folders (absolute paths) on `selector` the way a person does, through
 * CDP's Input.dispatchDragEvent (dragEnter, dragOver, drop): the page gets real
 * FileSystemEntry objects, directories included (TESTING.md).
 */
export async function dropPaths(page, selector, paths) {
  const target = page.locator(selector);
  expect((await target.count()) === 1, `no single ${selector} to drop on (found ${await target.count()})`);
  await target.scrollIntoViewIfNeeded();
  const box = await target.boundingBox();
  expect(box && box.width > 0 && box.height > 0, `${selector} is not visible: cannot drop on it`);
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  const data = { items: [], files: paths.map((p) => resolve(p)), dragOperationsMask: 1 };
  const cdp = await page.context().newCDPSession(page);
  try {
    for (const type of ["dragEnter", "dragOver", "drop"]) {
      await cdp.send("Input.dispatchDragEvent", { type, x, y, data });
    }
  } finally {
    await cdp.detach().catch(() => {});
  }
}

/** Picks a whole folder with the `webkitdirectory` input (each File keeps its webkitRelativePath). */
export async function pickFolder(page, dir, selector = "#folder-input") {
  await page.setInputFiles(selector, resolve(dir));
}

// --- search -------------------------------------------------------------------------------------

/** #results as the page shows them: [{path, score (string), thumb: {loaded, width} | null}]. */
export async function readResults(page) {
  return page.evaluate(() => {
    const list = document.getElementById("results");
    return {
      query: list?.dataset.query ?? null,
      items: [...(list?.children ?? [])].map((el) => {
        const img = el.querySelector("img");
        return {
          path: el.dataset.path ?? null,
          score: el.dataset.score ?? null,
          thumb: img ? { loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth } : null,
        };
      }),
    };
  });
}

/**
 * Runs a query: focuses #query, clears it (a blank query must empty #results: DESIGN.md),
 * types `query` and presses Enter (unless `enter: false`: then the debounced ranking must
 * answer by itself) and waits for results. Results "for this query": `#results[data-query]`
 * equal to it when the page sets that attribute; otherwise #results non-empty and unchanged
 * for `stableMs`. Returns readResults().
 */
export async function search(session, query, { enter = true, timeout = ms(30_000), stableMs = 700, expectEmpty = false, hub } = {}) {
  const { page } = session;
  const box = page.locator("#query");
  try {
    await box.waitFor({ state: "visible", timeout: ms(10_000) });
    await page.waitForFunction(() => !document.getElementById("query")?.disabled, null, { timeout: ms(10_000) });
  } catch {
    throw new Error(`#query is not visible and enabled\n${indent(await describe(session, hub))}`);
  }
  await box.click();
  await box.fill("");
  const clearedBy = Date.now() + ms(5_000);
  for (;;) {
    const now = await readResults(page);
    if (now.items.length === 0) break;
    if (Date.now() > clearedBy) {
      throw new Error(`a blank #query still shows ${now.items.length} results after 5 s (DESIGN.md: an empty or blank query shows no results)`);
    }
    await sleep(50);
  }
  await box.pressSequentially(query, { delay: 15 });
  if (enter) await box.press("Enter");
  const started = Date.now();
  let last = null;
  let stableFrom = Date.now();
  while (Date.now() - started < timeout) {
    const now = await readResults(page);
    if (last === null || JSON.stringify(now.items) !== JSON.stringify(last.items)) stableFrom = Date.now();
    last = now;
    const settled = Date.now() - stableFrom >= stableMs;
    const countOk = expectEmpty ? now.items.length === 0 : now.items.length > 0;
    const forThisQuery = now.query === null || now.query === query;
    if (settled && countOk && forThisQuery && (!expectEmpty || Date.now() - started >= stableMs * 2)) return now;
    await sleep(50);
  }
  throw new Error(
    `no ${expectEmpty ? "empty " : ""}#results for the query "${query}"${enter ? " after Enter" : " typed without Enter (debounced ranking)"} within ${(timeout / 1000).toFixed(0)} s ` +
      `(#results has ${last?.items.length ?? "?"} children${last?.query !== null && last?.query !== undefined ? `, data-query="${last.query}"` : ""})\n${indent(await describe(session, hub))}`,
  );
}

/** Checks thumbnails: every result shows an <img> that loaded. */
export function expectThumbnails(results, what) {
  const missing = results.items.filter((r) => !r.thumb || !r.thumb.loaded);
  expect(
    missing.length === 0,
    `${what}: ${missing.length} of ${results.items.length} results have no loaded <img> thumbnail`,
    missing.slice(0, 5).map((r) => `${r.path}: ${r.thumb ? "img not loaded" : "no img"}`).join("\n"),
  );
}

// --- the native CLI as the reference ---------------------------------------------------------

function run(cmd, args, { cwd, timeout }) {
  return new Promise((ok, fail) => {
    execFile(cmd, args, { cwd, timeout, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`${basename(cmd)} ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else ok(stdout);
    });
  });
}

async function newestMtime(paths) {
  let newest = 0;
  async function walk(p) {
    const info = await stat(p).catch(() => null);
    if (!info) return;
    if (info.isDirectory()) {
      for (const e of await readdir(p)) await walk(join(p, e));
    } else newest = Math.max(newest, info.mtimeMs);
  }
  for (const p of paths) await walk(p);
  return newest;
}

/**
 * Makes sure target/release/clipseek exists and is not older than the native sources
 * (everything under src/ but the browser shell src/web/ and src/main.rs, plus Cargo.toml
 * and Cargo.lock); builds it with `nice cargo build --release --bin clipseek` otherwise.
 * `force`: always run cargo (a no-op when up to date). Returns a note of what happened.
 */
export async function ensureCli({ force = false, timeout = 40 * 60_000 } = {}) {
  if (process.env.CLIPSEEK_CLI) {
    expect(existsSync(CLI), `CLIPSEEK_CLI=${CLI} does not exist`);
    return `using CLIPSEEK_CLI=${CLI}`;
  }
  const binary = await stat(CLI).catch(() => null);
  const srcEntries = (await readdir(join(ROOT, "src"))).filter((e) => e !== "web" && e !== "main.rs").map((e) => join(ROOT, "src", e));
  const newest = await newestMtime([...srcEntries, join(ROOT, "Cargo.toml"), join(ROOT, "Cargo.lock")]);
  // A no-op cargo build leaves the binary's mtime alone: remember what it was built from.
  const stampFile = join(OUT, ".clipseek-cli.stamp");
  const stamp = Number(await readFile(stampFile, "utf8").catch(() => "0"));
  if (binary && Math.max(binary.mtimeMs, stamp) >= newest && !force) return `${relative(ROOT, CLI)} is up to date`;
  const why = binary ? "older than the native sources" : "missing";
  console.log(`e2e: ${relative(ROOT, CLI)} is ${why}: nice cargo build --release --bin clipseek`);
  await new Promise((ok, fail) => {
    const child = spawn("nice", ["cargo", "build", "--release", "--bin", "clipseek"], { cwd: ROOT, stdio: ["ignore", "inherit", "inherit"] });
    const timer = setTimeout(() => child.kill("SIGTERM"), timeout);
    child.on("error", fail);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) ok();
      else fail(new Error(`cargo build --release --bin clipseek failed (${signal ?? `exit ${code}`})`));
    });
  });
  await mkdir(OUT, { recursive: true });
  await writeFile(stampFile, String(newest));
  return `built ${relative(ROOT, CLI)} (it was ${why})`;
}

const referenceCache = new Map();

/**
 * The CLI's view of `folder` with `modelDir`: {indexed, skipped: [relative paths],
 * queries: {query: [{path, score}] (every indexed image, best first)}}. Paths are relative
 * to `folder` with '/' separators. Cached per (model, folder, queries).
 */
export async function cliReference(modelDir, folder, queries) {
  const key = JSON.stringify([modelDir, folder, queries]);
  if (referenceCache.has(key)) return referenceCache.get(key);
  const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-ref-"));
  try {
    // Run from the folder itself so that the CLI's paths are relative to it ("./a/b.jpg").
    const indexFile = join(work, "index.bin");
    const indexed = JSON.parse(await run(CLI, ["index", "--model", modelDir, "--json", "--out", indexFile, "."], { cwd: folder, timeout: 600_000 }));
    const rel = (p) => p.replace(/^\.\//, "").split(sep).join("/");
    const result = { indexed: indexed.indexed, skipped: indexed.skipped.map((s) => rel(s.path)).sort(), queries: {} };
    if (queries.length > 0 && indexed.indexed > 0) {
      const out = JSON.parse(
        await run(CLI, ["search", "--model", modelDir, "--index", indexFile, "--json", "--top-k", "100000", ...queries], { cwd: folder, timeout: 600_000 }),
      );
      for (const q of out.queries) {
        result.queries[q.query] = q.matches.map((m) => ({ path: rel(m.path), score: m.score }));
      }
    }
    referenceCache.set(key, result);
    return result;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// --- comparisons ---------------------------------------------------------------------------------

/**
 * The page's data-path as a path relative to the dropped folder: leading "/" and "./"
 * removed, and the folder's own name removed when the page keeps it (webkitRelativePath
 * and drag-and-drop fullPath both start with it).
 */
export function normalisePagePath(path, rootName) {
  let p = String(path ?? "").replace(/\\/g, "/").replace(/^\.?\/+/, "");
  if (rootName && p.startsWith(rootName + "/")) p = p.slice(rootName.length + 1);
  return p;
}

/**
 * Compares the page's ranking with the CLI's. Returns a list of problems (empty: equal):
 * every shown path is a CLI path (relative to the dropped folder), no duplicates, every
 * data-score has 4 decimals and is within `tol` (+ rounding) of the CLI's score for that
 * path AND of the CLI's score at the same rank (so the order is the CLI's up to ties of
 * `tol`), scores never increase down the list, and at least `minCount` results are shown.
 */
export function compareRanking(items, cliMatches, { rootName, tol = 1e-3, minCount = 1 } = {}) {
  const problems = [];
  const slack = tol + 5e-5 + 1e-9; // data-score is rounded to 4 decimals
  const cli = new Map(cliMatches.map((m) => [m.path, m.score]));
  const want = Math.min(minCount, cliMatches.length);
  if (items.length < want) problems.push(`the page shows ${items.length} results, expected at least ${want}`);
  if (items.length > cliMatches.length) problems.push(`the page shows ${items.length} results but only ${cliMatches.length} images were indexed`);
  const seen = new Set();
  let previous = Infinity;
  items.forEach((item, i) => {
    const rank = i + 1;
    const path = normalisePagePath(item.path, rootName);
    if (item.path === null) problems.push(`rank ${rank}: no data-path`);
    if (!/^-?\d+\.\d{4}$/.test(item.score ?? "")) problems.push(`rank ${rank} (${path}): data-score="${item.score}" is not a number with 4 decimals`);
    const score = Number(item.score);
    if (seen.has(path)) problems.push(`rank ${rank}: ${path} appears twice`);
    seen.add(path);
    if (!cli.has(path)) {
      problems.push(`rank ${rank}: ${path} is not among the CLI's indexed images`);
    } else if (Math.abs(score - cli.get(path)) > slack) {
      problems.push(`rank ${rank}: ${path} has score ${item.score}, the CLI gives ${cli.get(path).toFixed(6)}`);
    }
    if (i < cliMatches.length && Math.abs(score - cliMatches[i].score) > slack) {
      problems.push(
        `rank ${rank}: the page has ${path} (${item.score}) where the CLI has ${cliMatches[i].path} (${cliMatches[i].score.toFixed(6)}): order differs beyond ties of ${tol}`,
      );
    }
    if (score > previous + 1e-9) problems.push(`rank ${rank}: score ${item.score} is higher than the rank above it (${previous})`);
    previous = score;
  });
  return problems;
}

/** A side-by-side table of the page's and the CLI's top results, for failure messages. */
export function rankingTable(items, cliMatches, rootName, n = 12) {
  const rows = [`rank  page${" ".repeat(36)}cli`];
  for (let i = 0; i < Math.min(n, Math.max(items.length, cliMatches.length)); i++) {
    const p = items[i] ? `${normalisePagePath(items[i].path, rootName)} ${items[i].score}` : "-";
    const c = cliMatches[i] ? `${cliMatches[i].path} ${cliMatches[i].score.toFixed(4)}` : "-";
    rows.push(`${String(i + 1).padStart(4)}  ${p.padEnd(40)}${c}`);
  }
  return rows.join("\n");
}

/** Runs `query` in the page and requires the CLI's ranking (see compareRanking). */
export async function expectSameRanking(session, query, reference, { rootName, minCount = 8, enter = true, hub } = {}) {
  const cliMatches = reference.queries[query];
  expect(cliMatches, `no CLI reference for the query "${query}"`);
  const results = await search(session, query, { enter, hub });
  const problems = compareRanking(results.items, cliMatches, { rootName, minCount });
  expect(
    problems.length === 0,
    `query "${query}": #results differ from the CLI (${problems.length} problems):`,
    `${problems.slice(0, 12).join("\n")}\n${rankingTable(results.items, cliMatches, rootName)}`,
  );
  return results;
}

/** The list of skipped files the page shows: `#skipped li[data-path]` (normalised paths). */
export async function readSkipped(page, rootName) {
  const paths = await page.evaluate(() => [...document.querySelectorAll("#skipped li[data-path]")].map((li) => li.dataset.path));
  return paths.map((p) => normalisePagePath(p, rootName)).sort();
}

/**
 * The model cache's files in the page's IndexedDB: `[{model, file, chunks, bytes}]` (every
 * file of every model, its chunk records and their bytes).
 */
export async function modelCacheFiles(page) {
  return page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const open = indexedDB.open("clipseek");
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const db = open.result;
          if (!db.objectStoreNames.contains("model-files")) return ok([]);
          const tx = db.transaction(["model-files", "model-chunks"], "readonly");
          const files = new Map();
          const key = (m, f) => JSON.stringify([m, f]);
          tx.objectStore("model-files").getAllKeys().onsuccess = (e) => {
            for (const [model, file] of e.target.result) files.set(key(model, file), { model, file, chunks: 0, bytes: 0 });
          };
          tx.objectStore("model-chunks").openCursor().onsuccess = (e) => {
            const c = e.target.result;
            if (!c) return;
            const [model, file] = c.key;
            const k = key(model, file);
            if (!files.has(k)) files.set(k, { model, file, chunks: 0, bytes: 0, orphan: true });
            files.get(k).chunks += 1;
            files.get(k).bytes += c.value.len ?? 0;
            c.continue();
          };
          tx.oncomplete = () => {
            db.close();
            ok([...files.values()]);
          };
          tx.onerror = () => fail(tx.error);
        };
      }),
  );
}

/** A worker's timings from `#engine-text[data-load-ROLE]` (`query` or `photos`), or null. */
export async function loadReport(page, role) {
  const json = await page.evaluate((r) => document.getElementById("engine-text")?.getAttribute(`data-load-${r}`) ?? null, role);
  return json ? JSON.parse(json) : null;
}

/** Waits until the CPU engine's packed 8-bit weights of `tower` are kept in IndexedDB. */
export async function waitPacked(session, tower, { timeout = ms(60_000), hub } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const files = await modelCacheFiles(session.page);
    const kept = files.find((f) => f.file.startsWith(`clipseek-packed/${tower}-`) && f.chunks === 1);
    if (kept) return kept;
    if (Date.now() > deadline) throw new Error(`the packed ${tower} weights were not kept within ${timeout} ms; IndexedDB holds ${JSON.stringify(files)}\n${await describe(session, hub)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Copies of the good fixture images, `copies` times over in sub-folders, for longer indexing runs. */
export async function makeImageFolder(dir, copies) {
  const { copyFile } = await import("node:fs/promises");
  const good = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/"));
  await mkdir(dir, { recursive: true });
  for (let c = 0; c < copies; c++) {
    const sub = join(dir, `set-${String(c + 1).padStart(2, "0")}`);
    await mkdir(sub, { recursive: true });
    for (const f of good) await copyFile(join(IMAGES, f), join(sub, f.replace(/\//g, "_")));
  }
  return good.length * copies;
}

/**
 * A copy of the built app whose encoder workers run `prelude` (JavaScript) before anything
 * else: the way the WebGPU tests inject faults (a lost device, small limits) into the
 * workers, where no init script reaches. Deleted by t.defer.
 */
export async function distWithWorkerPrelude(t, prelude, dist = t.options.dist) {
  const dir = await mkdtemp(join(tmpdir(), "clipseek-e2e-dist-"));
  t.defer(() => rm(dir, { recursive: true, force: true }));
  await cp(dist, dir, { recursive: true });
  const file = join(dir, "encoder-worker.js");
  const original = await readFile(file, "utf8");
  await writeFile(file, `${prelude}\n${original}`);
  return dir;
}
