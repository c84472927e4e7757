// Browser smoke test of the built app (dist/, from `trunk build --release`): serves it
// from a sub-path of a local static server (the app must work from any static host and
// path), opens it in headless Chromium and waits until the wasm marks
// #status[data-state="idle"]. Also checks the page's stable test hooks (DESIGN.md, "the
// page") and that nothing was refused by the Content-Security-Policy or thrown.
//
//   node tests/e2e/smoke.mjs [DIST_DIR=dist]
//
// Needs playwright-core (npm ci) and Debian's Chromium (scripts/setup); no browser is
// downloaded. Ends with the plain line `N passed, N failed`; exit status 1 on any failure.

import { mkdtemp, rm, stat, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";
import { serveStatic } from "../../scripts/static-server.mjs";

const DIST = resolve(process.argv[2] ?? "dist");
const CHROMIUM = process.env.CLIPSEEK_CHROMIUM ?? "/usr/bin/chromium";
const START_TIMEOUT_MS = Number(process.env.SMOKE_TIMEOUT_MS ?? 90_000);
// Without these flags Chromium keeps trying to reach Google's services.
const CHROMIUM_ARGS = [
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--no-default-browser-check",
];

const results = [];
function check(name, ok, detail = "") {
  results.push({ name, ok });
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
}

// A hard stop, in case the browser hangs: the finally block below is the normal path.
const watchdog = setTimeout(() => {
  console.error(`smoke: gave up after ${START_TIMEOUT_MS + 60_000} ms`);
  process.exit(1);
}, START_TIMEOUT_MS + 60_000);
watchdog.unref();

let browser;
let server;
let siteRoot;
let exitCode = 1;
try {
  const index = await stat(join(DIST, "index.html")).catch(() => null);
  if (!index) throw new Error(`${DIST}/index.html not found: run \`trunk build --release\` first`);

  // Serve DIST at /clipseek/ rather than /, so relative asset URLs are exercised.
  siteRoot = await mkdtemp(join(tmpdir(), "clipseek-smoke-"));
  await symlink(DIST, join(siteRoot, "clipseek"), "dir");
  server = await serveStatic(siteRoot, { port: 0 });
  const url = `${server.url}clipseek/`;

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const context = await browser.newContext();
  const page = await context.newPage();

  const problems = [];
  const warnings = [];
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console.error: ${message.text()}`);
    if (message.type() === "warning") warnings.push(message.text());
  });
  page.on("requestfailed", (request) => {
    problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !response.url().endsWith("/favicon.ico")) {
      problems.push(`HTTP ${response.status()}: ${response.url()}`);
    }
  });

  const started = Date.now();
  const response = await page.goto(url, { waitUntil: "load" });
  check("page loads", response?.ok() === true, `${url} -> HTTP ${response?.status()}`);

  // Wait for the wasm to settle: idle is success, error (set by www/boot.js or the app)
  // ends the wait early.
  let state = "none";
  try {
    await page.waitForFunction(
      () => ["idle", "error"].includes(document.getElementById("status")?.dataset.state),
      null,
      { timeout: START_TIMEOUT_MS, polling: 100 },
    );
  } catch {
    // timed out: reported below with the state it was left in
  }
  state = await page.evaluate(() => document.getElementById("status")?.dataset.state ?? "missing");
  const statusText = await page.evaluate(() => document.getElementById("status")?.textContent ?? "");
  check(
    'wasm sets #status[data-state="idle"]',
    state === "idle",
    `state ${state} after ${Date.now() - started} ms (${statusText.trim()})`,
  );

  const hooks = await page.evaluate(() => {
    const el = (id) => document.getElementById(id);
    const missing = [];
    const want = (ok, what) => ok || missing.push(what);
    want(el("status")?.getAttribute("aria-live") === "polite", "#status[aria-live=polite]");
    want(el("drop-zone"), "#drop-zone");
    want(el("folder-input")?.matches("input[type=file][webkitdirectory]"), "#folder-input (webkitdirectory)");
    want(el("files-input")?.matches("input[type=file][multiple]"), "#files-input (multiple)");
    want(el("query")?.getAttribute("role") === "searchbox", "#query[role=searchbox]");
    want(el("results"), "#results");
    want(el("model-progress") instanceof HTMLProgressElement, "#model-progress <progress>");
    want(el("index-progress") instanceof HTMLProgressElement, "#index-progress <progress>");
    want(
      document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content.includes("script-src 'self'"),
      "Content-Security-Policy meta",
    );
    return missing;
  });
  check("page has its stable test hooks", hooks.length === 0, hooks.length ? `missing ${hooks.join(", ")}` : "");

  check(
    "no errors, failed requests or CSP refusals",
    problems.length === 0,
    problems.length ? `\n  ${problems.join("\n  ")}` : "",
  );

  // Warnings do not fail the test, but are worth seeing.
  for (const warning of warnings) console.log(`note: console.warn: ${warning}`);

  exitCode = results.every((r) => r.ok) ? 0 : 1;
} catch (error) {
  check("smoke test ran", false, error?.stack ?? String(error));
  exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
  await server?.close().catch(() => {});
  if (siteRoot) await rm(siteRoot, { recursive: true, force: true }).catch(() => {});
  const passed = results.filter((r) => r.ok).length;
  console.log(`${passed} passed, ${results.length - passed} failed`);
  process.exit(exitCode);
}
