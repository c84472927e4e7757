// Unit tests of the service worker's decisions (www/sw-core.mjs): node --test.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CACHE_PREFIX,
  FIXED,
  cacheName,
  handles,
  keyOf,
  newestLast,
  shellOf,
  staleCaches,
  storable,
  versionFor,
  versionOf,
  versionOfCache,
  withTimeout,
} from "../../www/sw-core.mjs";

const SCOPE = "http://127.0.0.1:8000/";
const get = (path, extra = {}) => ({ method: "GET", url: new URL(path, SCOPE).href, range: null, ...extra });

const PAGE = `<!doctype html><html><head>
<link rel="stylesheet" href="./style-0a1b2c3d4e5f6a7b.css" integrity="sha384-x">
<link rel="modulepreload" href="./clipseek-app-1234abcd5678ef90.js">
<link rel="preload" href="./clipseek-app-1234abcd5678ef90_bg.wasm" as="fetch" type="application/wasm">
<link rel="icon" href="data:,">
<script type="module" src="./boot.js" data-clipseek-js="./clipseek-app-1234abcd5678ef90.js" data-clipseek-wasm="./clipseek-app-1234abcd5678ef90_bg.wasm"></script>
<a href="https://huggingface.co/openai">hub</a><a href="#query">skip</a><a href="./">home</a>
</head></html>`;

test("only the app shell is handled: top-level GETs of the page's folder, no Range, nothing of the hub", () => {
  assert.equal(handles(get("./"), SCOPE), true);
  assert.equal(handles(get("index.html?hub=x&model=y"), SCOPE), true);
  assert.equal(handles(get("clipseek-app-1234abcd.wasm"), SCOPE), true);
  assert.equal(handles(get("encoder-worker.js?v=1234"), SCOPE), true);
  // The hub mirrored on the page's own origin: nested paths, never touched.
  assert.equal(handles(get("test/tiny-clip/resolve/main/model.safetensors"), SCOPE), false);
  assert.equal(handles(get("api/models/test/tiny-clip/revision/main?blobs=true"), SCOPE), false);
  assert.equal(handles(get("model.safetensors", { range: "bytes=0-" }), SCOPE), false, "a ranged request is never handled");
  assert.equal(handles(get("./", { method: "HEAD" }), SCOPE), false);
  assert.equal(handles({ method: "GET", url: "https://huggingface.co/x", range: null }, SCOPE), false);
  // A page in a sub-folder handles its own folder only.
  const sub = "https://user.github.io/clipseek/";
  assert.equal(handles({ method: "GET", url: "https://user.github.io/clipseek/boot.js", range: null }, sub), true);
  assert.equal(handles({ method: "GET", url: "https://user.github.io/other.js", range: null }, sub), false);
});

test("only whole same-origin 200 answers are stored", () => {
  const whole = { status: 200, type: "basic" };
  assert.equal(storable(get("boot.js"), whole), true);
  assert.equal(storable(get("boot.js"), { status: 206, type: "basic" }), false);
  assert.equal(storable(get("boot.js", { range: "bytes=0-0" }), whole), false);
  assert.equal(storable(get("boot.js"), { status: 200, type: "opaque" }), false);
  assert.equal(storable(get("boot.js"), { status: 404, type: "basic" }), false);
  assert.equal(storable(get("boot.js", { method: "POST" }), whole), false);
});

test("a version is the app script's hash; its shell is every same-origin file the page names", () => {
  assert.equal(versionOf(PAGE), "1234abcd5678ef90");
  const { version, urls } = shellOf(PAGE, SCOPE);
  assert.equal(version, "1234abcd5678ef90");
  for (const f of ["style-0a1b2c3d4e5f6a7b.css", "clipseek-app-1234abcd5678ef90.js", "clipseek-app-1234abcd5678ef90_bg.wasm", ...FIXED]) {
    assert.ok(urls.includes(new URL(f, SCOPE).href), `${f} is in the shell`);
  }
  assert.ok(!urls.some((u) => u.includes("huggingface") || u.startsWith("data:")), "no other origin, no data: URL");
  assert.ok(!urls.includes(SCOPE), "the page itself is stored apart");
  assert.equal(new Set(urls).size, urls.length, "no file twice");
  // Without a hashed name the text itself names the version, one per content.
  const plain = "<html>no app tag</html>";
  assert.match(versionOf(plain), /^page-[0-9a-f]{8}$/);
  assert.notEqual(versionOf(plain), versionOf(plain + " "));
});

test("keys drop the query: any ?hub=… variant of the page finds it", () => {
  assert.equal(keyOf(`${SCOPE}index.html?hub=x#y`), `${SCOPE}index.html`);
});

test("a request is answered by its own version's files, never by another version's", () => {
  const complete = ["old1", "new2"];
  assert.equal(versionFor(`${SCOPE}encoder-worker.js?v=old1`, undefined, complete), "old1", "?v= names the version");
  assert.equal(versionFor(`${SCOPE}boot.js`, "old1", complete), "old1", "the asking page's version");
  assert.equal(versionFor(`${SCOPE}boot.js`, undefined, complete), "new2", "else the newest");
  assert.equal(versionFor(`${SCOPE}boot.js`, "fresh3", complete), null, "a page of a version not stored: the network");
  assert.equal(versionFor(`${SCOPE}clipseek-worker.js?v=fresh3`, "new2", complete), null);
  assert.equal(versionFor(`${SCOPE}boot.js`, undefined, []), null);
});

test("once a version is in use every other cache of ours goes, no one else's", () => {
  const names = [cacheName("a"), cacheName("b"), "someone-else", `${CACHE_PREFIX}c`];
  assert.deepEqual(staleCaches(names, "b"), [cacheName("a"), cacheName("c")]);
  assert.equal(versionOfCache("clipseek-shell-v1"), "v1");
  assert.equal(versionOfCache("other"), null);
  assert.deepEqual(newestLast([{ version: "b", at: 5 }, { version: "a", at: 9 }, { version: "c", at: 1 }]), ["c", "b", "a"]);
});

test("the network's time limit: a silent network gives way, an answer in time wins, the timer is cleared", async () => {
  const never = new Promise(() => {});
  await assert.rejects(withTimeout(never, 20), (e) => e.name === "TimeoutError");
  assert.equal(await withTimeout(Promise.resolve("page"), 1000), "page");
  let cleared = 0;
  const timers = { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => (cleared++, clearTimeout(t)) };
  await withTimeout(Promise.resolve(1), 1000, timers);
  await withTimeout(Promise.reject(new Error("offline")), 1000, timers).catch(() => {});
  assert.equal(cleared, 2);
});
