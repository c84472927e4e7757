// Self-tests of tests/e2e/helpers.mjs: node --test tests/e2e/helpers.test.mjs
// The pure functions (path normalising, ranking comparison, safetensors ranges), the CLI
// references, and the browser helpers on small pages written here: Chromium launch and
// close, CDP drag-and-drop of nested folders, setInputFiles on a webkitdirectory input,
// the state/progress recorder, search(), timeouts with messages, persistent profiles.
// Needs Chromium and target/release/clipseek (the CLI tests are skipped without it).

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { serveStatic } from "../../scripts/static-server.mjs";
import {
  BAD_FILES,
  CLI,
  FIXTURES,
  IMAGES,
  MODELS,
  SHAPES,
  cliReference,
  compareRanking,
  dropPaths,
  listFiles,
  load,
  normalisePagePath,
  openBrowser,
  pickFolder,
  rankingTable,
  recorded,
  safetensorsTensorRange,
  search,
  waitUntil,
  withTimeout,
} from "./helpers.mjs";

describe("pure helpers", () => {
  test("normalisePagePath", () => {
    assert.equal(normalisePagePath("images/bad/empty.jpg", "images"), "bad/empty.jpg");
    assert.equal(normalisePagePath("/images/a.jpg", "images"), "a.jpg");
    assert.equal(normalisePagePath("./a.jpg", "images"), "a.jpg");
    assert.equal(normalisePagePath("a.jpg", "images"), "a.jpg");
    assert.equal(normalisePagePath("imagesX/a.jpg", "images"), "imagesX/a.jpg");
    assert.equal(normalisePagePath("warm\\red.png", "shapes"), "warm/red.png");
  });

  const cli = [
    { path: "a.jpg", score: 0.5 },
    { path: "b.jpg", score: 0.4 },
    { path: "c.jpg", score: 0.3995 }, // ties b within 1e-3
    { path: "d.jpg", score: 0.2 },
  ];
  const page = (rows) => rows.map(([path, score]) => ({ path: `images/${path}`, score }));

  test("compareRanking: equal, and ties may swap", () => {
    assert.deepEqual(compareRanking(page([["a.jpg", "0.5000"], ["b.jpg", "0.4000"], ["c.jpg", "0.3995"], ["d.jpg", "0.2000"]]), cli, { rootName: "images" }), []);
    assert.deepEqual(compareRanking(page([["a.jpg", "0.5000"], ["c.jpg", "0.3995"], ["b.jpg", "0.4000"]]), cli, { rootName: "images" }).filter((p) => !p.includes("higher")), []);
    assert.deepEqual(compareRanking(page([["a.jpg", "0.5004"], ["b.jpg", "0.3992"]]), cli, { rootName: "images" }), []);
  });

  test("compareRanking: catches wrong order, scores, paths, formats, duplicates, too few", () => {
    const swapped = compareRanking(page([["b.jpg", "0.4000"], ["a.jpg", "0.5000"]]), cli, { rootName: "images" });
    assert.ok(swapped.some((p) => /rank 1: the page has b.jpg/.test(p)), swapped.join("\n"));
    assert.ok(swapped.some((p) => /higher than the rank above/.test(p)));
    const off = compareRanking(page([["a.jpg", "0.5020"]]), cli, { rootName: "images" });
    assert.ok(off.some((p) => /has score 0.5020, the CLI gives 0.500000/.test(p)), off.join("\n"));
    const unknown = compareRanking(page([["x.jpg", "0.5000"]]), cli, { rootName: "images" });
    assert.ok(unknown.some((p) => /x.jpg is not among/.test(p)));
    const format = compareRanking(page([["a.jpg", "0.5"]]), cli, { rootName: "images" });
    assert.ok(format.some((p) => /4 decimals/.test(p)));
    const dup = compareRanking(page([["a.jpg", "0.5000"], ["a.jpg", "0.5000"]]), cli, { rootName: "images" });
    assert.ok(dup.some((p) => /appears twice/.test(p)));
    const few = compareRanking(page([["a.jpg", "0.5000"]]), cli, { rootName: "images", minCount: 3 });
    assert.ok(few.some((p) => /shows 1 results, expected at least 3/.test(p)));
    const none = compareRanking([{ path: null, score: null }], cli, {});
    assert.ok(none.some((p) => /no data-path/.test(p)));
    assert.match(rankingTable(page([["a.jpg", "0.5000"]]), cli, "images"), /1 {2}a\.jpg 0\.5000 +a\.jpg 0\.5000/);
  });

  test("safetensorsTensorRange", async () => {
    const file = join(MODELS["test/tiny-clip"], "model.safetensors");
    const r = await safetensorsTensorRange(file, "visual_projection.weight");
    assert.equal(r.dtype, "F32");
    assert.equal(r.end - r.start, 4 * r.shape.reduce((a, b) => a * b, 1));
    assert.ok(r.start >= r.dataStart && r.end <= (await stat(file)).size);
    await assert.rejects(safetensorsTensorRange(file, "nope"), /has no tensor nope/);
  });

  test("listFiles and the fixture folders the tests rely on", async () => {
    const images = await listFiles(IMAGES);
    assert.equal(images.length, 32);
    assert.deepEqual(images.filter((f) => f.startsWith("bad/")), BAD_FILES);
    assert.equal((await listFiles(SHAPES)).length, 64);
  });

  test("withTimeout names what timed out", async () => {
    await assert.rejects(withTimeout(new Promise(() => {}), 50, "waiting for Godot"), /timed out after 0 s: waiting for Godot/);
    assert.equal(await withTimeout(Promise.resolve(3), 50, "x"), 3);
  });
});

describe("CLI references", { skip: !existsSync(CLI) && `no ${CLI}` }, () => {
  test("images: 28 indexed, the 4 bad skipped, paths relative to the folder, sorted by score", async () => {
    const ref = await cliReference(MODELS["test/tiny-clip"], IMAGES, ["a photo of a dog"]);
    assert.equal(ref.indexed, 28);
    assert.deepEqual(ref.skipped, BAD_FILES);
    const m = ref.queries["a photo of a dog"];
    assert.equal(m.length, 28);
    assert.ok(m.every((x) => !x.path.startsWith("/") && !x.path.startsWith("./") && !x.path.startsWith("images/")));
    for (let i = 1; i < m.length; i++) assert.ok(m[i - 1].score >= m[i].score);
  });

  test("shapes: 'red circle' gives the red circles on top", async () => {
    const ref = await cliReference(MODELS["test/shapes-clip"], SHAPES, ["red circle"]);
    assert.equal(ref.indexed, 64);
    const top = ref.queries["red circle"].slice(0, 4).map((x) => x.path);
    assert.ok(top.every((p) => /(^|\/)red-circle-\d\./.test(p)), top.join(", "));
    assert.ok(top.every((p) => p.startsWith("warm/")));
  });
});

// --- browser helpers on small pages --------------------------------------------------------------
const PAGE = `<!doctype html><meta charset="utf-8"><title>helpers test</title>
<p id="status" data-state="idle">idle</p>
<progress id="model-progress" max="10" value="0"></progress>
<progress id="index-progress" max="1" value="0"></progress>
<div id="drop-zone" style="width: 400px; height: 200px; border: 1px solid">drop here</div>
<input id="folder-input" type="file" webkitdirectory multiple>
<input id="query" type="search" role="searchbox">
<ol id="results"></ol>
<script src="page.js"></script>`;

const SCRIPT = `
const status = document.getElementById("status");
window.received = null;
const zone = document.getElementById("drop-zone");
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("dragenter", (e) => e.preventDefault());
async function walk(entry, out) {
  if (entry.isFile) {
    const f = await new Promise((ok, fail) => entry.file(ok, fail));
    out.push(entry.fullPath + ":" + f.size);
  } else {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const e of batch) await walk(e, out);
    }
  }
}
zone.addEventListener("drop", async (e) => {
  e.preventDefault();
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry());
  const out = [];
  for (const en of entries) await walk(en, out);
  window.received = out.sort();
});
document.getElementById("folder-input").addEventListener("change", (e) => {
  window.picked = [...e.target.files].map((f) => f.webkitRelativePath).sort();
});
window.burst = () => {
  // Three states within one task: the recorder must see the middle one.
  status.dataset.state = "downloading";
  status.dataset.state = "loading";
  status.dataset.state = "ready";
};
window.progress = async () => {
  const p = document.getElementById("model-progress");
  for (let i = 1; i <= 10; i++) { p.value = i; await new Promise((ok) => setTimeout(ok, 30)); }
};
let timer;
const q = document.getElementById("query");
function rank() {
  const list = document.getElementById("results");
  list.replaceChildren();
  list.dataset.query = q.value;
  if (!q.value.trim()) return;
  for (const [i, name] of ["a.jpg", "b.jpg"].entries()) {
    const li = document.createElement("li");
    li.dataset.path = "images/" + name;
    li.dataset.score = (0.5 - i / 10 + q.value.length / 1000).toFixed(4);
    list.append(li);
  }
}
q.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(rank, 200); });
q.addEventListener("keydown", (e) => { if (e.key === "Enter") { clearTimeout(timer); setTimeout(rank, 400); } });
`;

describe("browser helpers", () => {
  let dir;
  let site;
  const cleanups = [];
  const t = { options: {}, defer: (fn) => cleanups.push(fn), log: () => {} };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "helpers-test-"));
    await writeFile(join(dir, "index.html"), PAGE);
    await writeFile(join(dir, "page.js"), SCRIPT);
    await writeFile(join(dir, "store.html"), `<!doctype html><script src="store.js"></script>`);
    await writeFile(
      join(dir, "store.js"),
      `window.put = (v) => new Promise((ok) => { const r = indexedDB.open("t", 1); r.onupgradeneeded = () => r.result.createObjectStore("s");
         r.onsuccess = () => { const tx = r.result.transaction("s", "readwrite"); tx.objectStore("s").put(v, "k"); tx.oncomplete = () => ok(true); }; });
       window.get = () => new Promise((ok) => { const r = indexedDB.open("t", 1); r.onupgradeneeded = () => r.result.createObjectStore("s");
         r.onsuccess = () => { const g = r.result.transaction("s").objectStore("s").get("k"); g.onsuccess = () => ok(g.result ?? null); }; });`,
    );
    site = await serveStatic(dir, { port: 0 });
  });

  after(async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => {});
    await site?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test("CDP drag-and-drop gives every file of nested folders as entries", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    await dropPaths(b.page, "#drop-zone", [IMAGES, join(SHAPES, "warm", "red-circle-1.jpg")]);
    await b.page.waitForFunction(() => window.received !== null, null, { timeout: 20_000 });
    const received = await b.page.evaluate(() => window.received);
    const want = [...(await listFiles(IMAGES)).map((f) => `/images/${f}`), "/red-circle-1.jpg"].sort();
    assert.deepEqual(received.map((r) => r.split(":")[0]), want);
    assert.ok(received.includes("/images/bad/empty.jpg:0"));
    await b.close();
  });

  test("setInputFiles on the webkitdirectory input keeps relative paths", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    await pickFolder(b.page, SHAPES);
    const picked = await b.page.evaluate(() => window.picked);
    assert.deepEqual(picked, (await listFiles(SHAPES)).map((f) => `shapes/${f}`));
    await b.close();
  });

  test("the recorder sees states that last less than a task, and progress values", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    await b.page.evaluate(() => window.burst());
    await b.page.evaluate(() => window.progress());
    await b.page.waitForTimeout(100);
    const rec = await recorded(b.page);
    assert.deepEqual(rec.states.map((s) => s.state), ["idle", "downloading", "loading", "ready"]);
    assert.deepEqual(rec.model.map((p) => p.value), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(rec.model.every((p) => p.max === 10));
    await b.close();
  });

  test("search(): debounced typing, Enter, data-query, blank query", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    const typed = await search(b, "a dog", { enter: false });
    assert.equal(typed.query, "a dog");
    assert.deepEqual(typed.items.map((r) => [r.path, r.score]), [["images/a.jpg", "0.5050"], ["images/b.jpg", "0.4050"]]);
    const entered = await search(b, "a cat on a mat");
    assert.equal(entered.items[0].score, "0.5140");
    const empty = await search(b, "  ", { expectEmpty: true });
    assert.equal(empty.items.length, 0);
    await b.close();
  });

  test("waits fail in time with the page's state in the message", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    const started = Date.now();
    await assert.rejects(
      waitUntil(b, (s) => s.state === "never", { timeout: 1_500, what: "a state that never comes" }),
      (e) => /timed out after 2 s waiting for a state that never comes/.test(e.message) && /data-state=idle/.test(e.message),
    );
    assert.ok(Date.now() - started < 10_000);
    await assert.rejects(load(b, `${site.url}missing.html`), /answered HTTP 404/);
    await assert.rejects(dropPaths(b.page, "#nothing", [IMAGES]), /no single #nothing/);
    await b.close();
  });

  test("a persistent profile keeps IndexedDB across a browser restart; a fresh one does not", { timeout: 120_000 }, async () => {
    const profile = await mkdtemp(join(tmpdir(), "helpers-profile-"));
    try {
      const one = await openBrowser(t, { userDataDir: profile });
      await load(one, `${site.url}store.html`);
      assert.equal(await one.page.evaluate(() => window.put("kept")), true);
      await one.close();
      const two = await openBrowser(t, { userDataDir: profile });
      await load(two, `${site.url}store.html`);
      assert.equal(await two.page.evaluate(() => window.get()), "kept");
      await two.close();
      const fresh = await openBrowser(t);
      await load(fresh, `${site.url}store.html`);
      assert.equal(await fresh.page.evaluate(() => window.get()), null);
      await fresh.close();
    } finally {
      await rm(profile, { recursive: true, force: true });
    }
  });

  test("problems are collected: uncaught errors and failed requests", { timeout: 90_000 }, async () => {
    const b = await openBrowser(t);
    await load(b, `${site.url}index.html`);
    await b.page.evaluate(() => {
      setTimeout(() => {
        throw new Error("boom");
      });
      fetch("/nothing-here").catch(() => {});
    });
    await b.page.waitForTimeout(500);
    const kinds = b.problems.map((p) => p.kind);
    assert.ok(kinds.includes("pageerror"), kinds.join());
    assert.ok(kinds.includes("http"), kinds.join());
    await b.close();
    assert.equal(b.closed, true);
  });
});

void FIXTURES;
