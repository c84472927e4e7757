// Runs the browser tests of the built app (tests/e2e/*.e2e.mjs) in Debian's Chromium, after
// the unit tests of the hub server, the helpers and the service worker's rules, one test at
// a time, each with a hard timeout and its own servers, browser and profile, all closed in
// the end whatever happens. Prints one line per test and ends with the plain line
// `N passed, N failed`; exit status 1 on any failure.
//
//   node tests/e2e/run.mjs [options] [NAME_FILTER...]
//     --dist DIR       the built app (default dist/, from `trunk build --release`)
//     --mock           test the mock page (tests/e2e/mock-app) instead: checks the tests
//     --mock-bug NAME  the mock misbehaves on purpose (see mock-app/app.js: no-resume,
//                      no-verify, no-skipped-list, wrong-order, score-off, root-stripped,
//                      no-restore, no-sw, indeterminate, ready-early): tests must fail
//     --same-origin    serve the app from the hub server (one origin; E2E_SAME_ORIGIN=1)
//     --no-unit        skip the node --test unit tests of the hub server and helpers
//     --build-cli      always run `cargo build --release --bin clipseek` first (otherwise
//                      only when the binary is missing or older than the native sources)
//     --list           list the tests and exit
//   NAME_FILTER: run only tests whose name contains one of these strings.
//   Environment: E2E_TIMEOUT_SCALE (multiply every timeout), CLIPSEEK_CHROMIUM, CLIPSEEK_CLI.
//
// Measurements are printed as JSON lines ({"metric": ...}) and kept in
// tests/e2e/out/metrics.jsonl; screenshots go to tests/e2e/out/*.png.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { CHROMIUM, IMAGES, MODELS, OUT, QUERIES, ROOT, SHAPES, TIMEOUT_SCALE, cliReference, ensureCli, withTimeout } from "./helpers.mjs";

const args = process.argv.slice(2);
const options = { dist: join(ROOT, "dist"), mock: false, sameOrigin: process.env.E2E_SAME_ORIGIN === "1", unit: true, buildCli: false, list: false };
const filters = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--dist") options.dist = resolve(args[++i]);
  else if (a === "--mock") options.mock = true;
  else if (a === "--mock-bug") {
    options.mock = true;
    options.mockBug = args[++i];
  }
  else if (a === "--same-origin") options.sameOrigin = true;
  else if (a === "--no-unit") options.unit = false;
  else if (a === "--build-cli") options.buildCli = true;
  else if (a === "--list") options.list = true;
  else if (a === "--help" || a === "-h") {
    const { readFileSync } = await import("node:fs");
    console.log(readFileSync(new URL(import.meta.url), "utf8").split("\n").slice(0, 20).join("\n").replace(/^\/\/ ?/gm, ""));
    process.exit(0);
  } else if (a.startsWith("--")) {
    console.error(`run.mjs: unknown option ${a}`);
    process.exit(2);
  } else filters.push(a);
}

const HERE = join(ROOT, "tests/e2e");
const results = [];
const cleanupsOnExit = new Set();

function report(name, ok, seconds, message = "") {
  results.push({ name, ok, seconds, message });
  const head = `${ok ? "ok  " : "FAIL"} ${name} (${seconds.toFixed(1)} s)`;
  console.log(message ? `${head}\n${message.replace(/^/gm, "     ")}` : head);
}

function finish() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  console.log("\n==> e2e summary");
  for (const r of results) console.log(`${r.ok ? "ok  " : "FAIL"} ${r.seconds.toFixed(1).padStart(6)} s  ${r.name}`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && results.length > 0 ? 0 : 1);
}

/** Runs a node --test file as one result line. */
async function unitTests(name, file, timeoutMs) {
  const started = Date.now();
  const child = spawn(process.execPath, ["--test", "--test-reporter=spec", file], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const kill = () => {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {}
  };
  cleanupsOnExit.add(kill);
  const code = await new Promise((ok) => {
    const timer = setTimeout(() => {
      kill();
      ok("timeout");
    }, timeoutMs);
    child.on("exit", (c) => {
      clearTimeout(timer);
      ok(c);
    });
  });
  cleanupsOnExit.delete(kill);
  const summary = (out.match(/^ℹ (tests|pass|fail) \d+$/gm) ?? []).map((l) => l.slice(2)).join(", ");
  const ok = code === 0;
  report(`${name} [${summary || "no summary"}]`, ok, (Date.now() - started) / 1000, ok ? "" : code === "timeout" ? `timed out after ${timeoutMs / 1000} s\n${out.slice(-4000)}` : out.slice(-6000));
}

/** The mock page with refs.json from the CLI, in a temporary folder. */
async function buildMockSite() {
  const dir = await mkdtemp(join(tmpdir(), "clipseek-e2e-mock-"));
  cleanupsOnExit.add(() => rm(dir, { recursive: true, force: true }));
  await cp(join(HERE, "mock-app"), dir, { recursive: true });
  const models = {};
  const add = (name, ref) => {
    const m = (models[name] ??= { skipped: [], indexed: {}, scores: {} });
    m.skipped.push(...ref.skipped);
    for (const [q, matches] of Object.entries(ref.queries)) {
      m.scores[q] ??= {};
      for (const { path, score } of matches) {
        m.scores[q][path] = score;
        m.indexed[path] = true;
      }
    }
  };
  add("test/tiny-clip", await cliReference(MODELS["test/tiny-clip"], IMAGES, QUERIES["test/tiny-clip"]));
  add("test/shapes-clip", await cliReference(MODELS["test/shapes-clip"], SHAPES, QUERIES["test/shapes-clip"]));
  await writeFile(join(dir, "refs.json"), JSON.stringify({ models, bug: options.mockBug ?? "" }));
  return dir;
}

async function loadTests() {
  const files = (await readdir(HERE)).filter((f) => f.endsWith(".e2e.mjs")).sort();
  const tests = [];
  for (const f of files) {
    const mod = await import(join(HERE, f));
    for (const test of mod.tests ?? []) tests.push({ ...test, file: f });
  }
  return tests;
}

/** Runs one test with its timeout; clean-ups (t.defer) run in reverse order, each bounded. */
async function runTest(test) {
  const cleanups = [];
  const t = {
    name: test.name,
    options,
    defer: (fn) => cleanups.push(fn),
    log: (...parts) => console.log(`     ${parts.join(" ")}`),
  };
  const started = Date.now();
  const timeoutMs = Math.round(test.timeoutMs * TIMEOUT_SCALE);
  let error = null;
  const body = (async () => test.run(t))();
  body.catch(() => {}); // reported through the race below
  try {
    await withTimeout(body, timeoutMs, `the whole test (limit ${timeoutMs / 1000} s)`);
  } catch (e) {
    error = e;
  }
  for (const fn of cleanups.reverse()) {
    await withTimeout(Promise.resolve().then(fn), 30_000, "a clean-up step").catch((e) => {
      console.log(`     note: clean-up: ${e.message.split("\n")[0]}`);
    });
  }
  const seconds = (Date.now() - started) / 1000;
  // One-line errors get the test line that threw; multi-line ones already say enough.
  let message = "";
  if (error) {
    const where = String(error.stack ?? "").split("\n").find((l) => l.includes(".e2e.mjs"));
    message = error.message.includes("\n") || !where ? error.message : `${error.message}\n${where.trim()}`;
  }
  report(test.name, !error, seconds, message);
}

// --- main ------------------------------------------------------------------------------------------
const tests = (await loadTests())
  .filter((t) => filters.length === 0 || filters.some((f) => t.name.includes(f) || t.file.includes(f)))
  // Tests of what the mock page does not imitate (engines, the hub API) skip it.
  .filter((t) => !(options.mock && t.realAppOnly));
if (options.list) {
  for (const t of tests) console.log(`${t.file}: ${t.name} (limit ${t.timeoutMs / 1000} s)`);
  process.exit(0);
}

// A last line of defence: whatever hangs, the run ends.
const budgetMs = (tests.reduce((a, t) => a + t.timeoutMs + 40_000, 0) + 600_000) * TIMEOUT_SCALE + (options.buildCli ? 40 * 60_000 : 0);
const watchdog = setTimeout(() => {
  report("the run as a whole", false, budgetMs / 1000, `gave up after ${budgetMs / 1000} s`);
  for (const fn of cleanupsOnExit) Promise.resolve().then(fn).catch(() => {});
  finish();
}, budgetMs);
watchdog.unref();
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    report("the run as a whole", false, 0, `interrupted (${signal})`);
    finish();
  });
}

await mkdir(OUT, { recursive: true });
await rm(join(OUT, "metrics.jsonl"), { force: true });

if (options.unit && filters.length === 0) {
  await unitTests("hub server unit tests (node --test tests/e2e/hub-server.test.mjs)", "tests/e2e/hub-server.test.mjs", 180_000);
  await unitTests("helper self-tests (node --test tests/e2e/helpers.test.mjs)", "tests/e2e/helpers.test.mjs", 300_000);
  await unitTests("service worker rules (node --test tests/e2e/sw-core.test.mjs)", "tests/e2e/sw-core.test.mjs", 60_000);
}

// Prerequisites: reported once, clearly; the browser tests then fail on their own with the reason.
let setupProblem = null;
if (!existsSync(CHROMIUM)) setupProblem = `Chromium not found at ${CHROMIUM} (scripts/setup installs Debian's chromium)`;
try {
  const started = Date.now();
  const note = await ensureCli({ force: options.buildCli });
  console.log(`e2e: reference CLI: ${note} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
} catch (e) {
  setupProblem ??= `the reference CLI is not available: ${e.message}`;
}
if (options.mock && !setupProblem) {
  try {
    options.dist = await buildMockSite();
    console.log(`e2e: testing the MOCK page (${relative(ROOT, join(HERE, "mock-app"))})${options.mockBug ? ` with the bug "${options.mockBug}"` : ""} served from ${options.dist}`);
  } catch (e) {
    setupProblem = `could not build the mock site: ${e.message}`;
  }
} else if (!existsSync(join(options.dist, "index.html"))) {
  setupProblem ??= `${options.dist}/index.html not found: run \`trunk build --release\` first`;
}
if (!options.mock) console.log(`e2e: testing ${relative(ROOT, options.dist) || options.dist}${options.sameOrigin ? " (same origin as the hub)" : ""}`);

for (const test of tests) {
  if (setupProblem) {
    report(test.name, false, 0, `not run: ${setupProblem}`);
    continue;
  }
  await runTest(test);
}
for (const fn of cleanupsOnExit) await Promise.resolve().then(fn).catch(() => {});
finish();
