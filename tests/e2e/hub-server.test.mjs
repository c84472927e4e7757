// Unit tests of the local hub (scripts/hub-server.mjs): node --test tests/e2e/hub-server.test.mjs
// No browser; a temporary model folder with known bytes, plus one check on a real fixture.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { get as httpGet, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseRange, startHub } from "../../scripts/hub-server.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SIZE = 300_000; // several 64 KiB chunks, not a multiple of one
const sha = (b) => createHash("sha256").update(b).digest("hex");

let dir;
let weights;
let config;
let hub;
let base;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "hub-test-"));
  await mkdir(join(dir, "model"));
  weights = randomBytes(SIZE);
  config = Buffer.from('{"projection_dim": 32}\n');
  await writeFile(join(dir, "model", "model.safetensors"), weights);
  await writeFile(join(dir, "model", "config.json"), config);
  await writeFile(join(dir, "model", "empty.bin"), Buffer.alloc(0));
  await writeFile(join(dir, "secret.txt"), "outside the model folder");
  hub = await startHub({ models: { "test/m": join(dir, "model"), single: join(dir, "model") } });
  base = `${hub.url}/test/m/resolve/main`;
});

after(async () => {
  await hub?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => hub.control.reset());

/** GET with node:http, returning the bytes received even when the connection breaks. */
function rawGet(url, headers = {}) {
  return new Promise((ok) => {
    const chunks = [];
    const req = httpGet(url, { headers, agent: false }, (res) => {
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), error: null }));
      res.on("error", (e) => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), error: e }));
      res.on("aborted", () => {});
    });
    req.on("error", (e) => ok({ status: null, headers: {}, body: Buffer.concat(chunks), error: e }));
  });
}

async function bytes(response) {
  return Buffer.from(await response.arrayBuffer());
}

describe("parseRange", () => {
  test("forms", () => {
    assert.deepEqual(parseRange("bytes=0-9", 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange("bytes=90-", 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange("bytes=-10", 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange("bytes=-1000", 100), { start: 0, end: 99 });
    assert.deepEqual(parseRange("bytes=50-1000", 100), { start: 50, end: 99 });
    assert.deepEqual(parseRange("bytes=99-99", 100), { start: 99, end: 99 });
    assert.equal(parseRange("bytes=100-", 100), "unsatisfiable");
    assert.equal(parseRange("bytes=-0", 100), "unsatisfiable");
    assert.equal(parseRange("bytes=0-", 0), "unsatisfiable");
    assert.equal(parseRange(undefined, 100), null);
    assert.equal(parseRange("bytes=5-1", 100), null);
    assert.equal(parseRange("bytes=0-1,5-6", 100), null);
    assert.equal(parseRange("items=0-1", 100), null);
    assert.equal(parseRange("bytes=-", 100), null);
  });
});

describe("resolve", () => {
  test("GET: the whole file with ETag, X-Linked-*, CORS, Accept-Ranges", async () => {
    const r = await fetch(`${base}/model.safetensors`);
    assert.equal(r.status, 200);
    assert.deepEqual(await bytes(r), weights);
    assert.equal(r.headers.get("etag"), `"${sha(weights)}"`);
    assert.equal(r.headers.get("x-linked-etag"), `"${sha(weights)}"`);
    assert.equal(r.headers.get("x-linked-size"), String(SIZE));
    assert.equal(r.headers.get("content-length"), String(SIZE));
    assert.equal(r.headers.get("accept-ranges"), "bytes");
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    const exposed = r.headers.get("access-control-expose-headers").split(/,\s*/);
    for (const h of ["ETag", "X-Linked-Etag", "X-Linked-Size", "Content-Range", "Content-Length", "Accept-Ranges"]) {
      assert.ok(exposed.includes(h), `exposes ${h}`);
    }
    assert.equal(r.headers.get("cache-control"), "no-store");
    const stats = hub.control.stats();
    assert.equal(stats.files["test/m/model.safetensors"].bytes, SIZE);
    assert.equal(stats.files["test/m/model.safetensors"].gets, 1);
    assert.deepEqual(stats.files["test/m/model.safetensors"].ranges, [null]);
    assert.equal(stats.requests[0].completed, true);
    assert.equal(stats.requests[0].status, 200);
  });

  test("small files: ETag but no X-Linked-*", async () => {
    const r = await fetch(`${base}/config.json`);
    assert.equal(r.status, 200);
    assert.deepEqual(await bytes(r), config);
    assert.equal(r.headers.get("etag"), `"${sha(config)}"`);
    assert.equal(r.headers.get("x-linked-etag"), null);
    assert.equal(r.headers.get("content-type"), "application/json");
  });

  test("HEAD: headers only, counted as a HEAD", async () => {
    const r = await fetch(`${base}/model.safetensors`, { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-length"), String(SIZE));
    assert.equal(r.headers.get("x-linked-size"), String(SIZE));
    assert.equal((await bytes(r)).length, 0);
    const f = hub.control.stats().files["test/m/model.safetensors"];
    assert.deepEqual([f.heads, f.gets, f.bytes], [1, 0, 0]);
  });

  test("Range: a-b, a-, -n, clamped end", async () => {
    for (const [header, start, end] of [
      ["bytes=0-9", 0, 9],
      ["bytes=65530-65545", 65530, 65545],
      ["bytes=200000-", 200000, SIZE - 1],
      ["bytes=-1000", SIZE - 1000, SIZE - 1],
      ["bytes=299990-400000", 299990, SIZE - 1],
    ]) {
      const r = await fetch(`${base}/model.safetensors`, { headers: { Range: header } });
      assert.equal(r.status, 206, header);
      assert.equal(r.headers.get("content-range"), `bytes ${start}-${end}/${SIZE}`, header);
      assert.equal(r.headers.get("content-length"), String(end - start + 1), header);
      assert.deepEqual(await bytes(r), weights.subarray(start, end + 1), header);
    }
    const f = hub.control.stats().files["test/m/model.safetensors"];
    assert.equal(f.gets, 5);
    assert.equal(f.ranges[1], "bytes=65530-65545");
    assert.equal(f.bytes, 10 + 16 + 100000 + 1000 + 10);
  });

  test("Range: 416 when unsatisfiable, 200 when malformed or multiple", async () => {
    for (const header of [`bytes=${SIZE}-`, "bytes=-0", `bytes=${SIZE + 5}-${SIZE + 9}`]) {
      const r = await fetch(`${base}/model.safetensors`, { headers: { Range: header } });
      assert.equal(r.status, 416, header);
      assert.equal(r.headers.get("content-range"), `bytes */${SIZE}`, header);
      await r.arrayBuffer();
    }
    const e = await fetch(`${base}/empty.bin`, { headers: { Range: "bytes=0-" } });
    assert.equal(e.status, 416);
    await e.arrayBuffer();
    for (const header of ["bytes=0-1,5-6", "bytes=9-3", "pages=1-2"]) {
      const r = await fetch(`${base}/model.safetensors`, { headers: { Range: header } });
      assert.equal(r.status, 200, header);
      assert.equal((await bytes(r)).length, SIZE, header);
    }
  });

  test("If-Range and If-None-Match", async () => {
    const etag = `"${sha(weights)}"`;
    let r = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=10-19", "If-Range": etag } });
    assert.equal(r.status, 206);
    await r.arrayBuffer();
    r = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=10-19", "If-Range": '"stale"' } });
    assert.equal(r.status, 200);
    assert.equal((await bytes(r)).length, SIZE);
    r = await fetch(`${base}/model.safetensors`, { headers: { "If-None-Match": etag } });
    assert.equal(r.status, 304);
    await r.arrayBuffer();
  });

  test("empty file: 200 with no body", async () => {
    const r = await fetch(`${base}/empty.bin`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-length"), "0");
    assert.equal((await bytes(r)).length, 0);
  });

  test("revisions: any segment, percent-encoded refs/pr/N; single-segment model names", async () => {
    const r = await fetch(`${hub.url}/test/m/resolve/refs%2Fpr%2F15/config.json`);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
    const stats = hub.control.stats();
    assert.equal(stats.requests[0].revision, "refs/pr/15");
    assert.equal(stats.requests[0].key, "test/m/config.json");
    const single = await fetch(`${hub.url}/single/resolve/abc123/config.json`);
    assert.equal(single.status, 200);
    assert.deepEqual(await bytes(single), config);
  });

  test("404s carry the hub's X-Error-Code", async () => {
    for (const [url, code] of [
      [`${hub.url}/test/nope/resolve/main/config.json`, "RepoNotFound"],
      [`${base}/pytorch_model.bin`, "EntryNotFound"],
      [`${base}/..%2F..%2Fsecret.txt`, "EntryNotFound"],
      [`${base}/../secret.txt`, null],
    ]) {
      const r = await fetch(url);
      assert.equal(r.status, 404, url);
      if (code) assert.equal(r.headers.get("x-error-code"), code, url);
      assert.equal(r.headers.get("access-control-allow-origin"), "*");
      assert.doesNotMatch(await r.text(), /outside the model folder/);
    }
  });

  test("OPTIONS preflight allows Range", async () => {
    const r = await fetch(`${base}/model.safetensors`, {
      method: "OPTIONS",
      headers: { Origin: "http://127.0.0.1:1", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "range" },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    assert.match(r.headers.get("access-control-allow-methods"), /GET/);
    assert.match(r.headers.get("access-control-allow-headers"), /range/i);
    const plain = await fetch(`${base}/model.safetensors`, { method: "OPTIONS" });
    assert.match(plain.headers.get("access-control-allow-headers"), /Range/);
  });

  test("other methods: 405", async () => {
    const r = await fetch(`${base}/config.json`, { method: "POST", body: "x" });
    assert.equal(r.status, 405);
    await r.arrayBuffer();
  });
});

describe("faults", () => {
  test("cut afterBytes: the next GET breaks after exactly N body bytes, the one after is whole", async () => {
    hub.control.setFault({ type: "cut", file: "model.safetensors", afterBytes: 100_000 });
    const first = await rawGet(`${base}/model.safetensors`);
    assert.equal(first.status, 200);
    assert.ok(first.error, "the body ends with an error");
    assert.equal(first.body.length, 100_000);
    assert.deepEqual(first.body, weights.subarray(0, 100_000));
    // Resume with a Range request: whole and right.
    const rest = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=100000-" } });
    assert.equal(rest.status, 206);
    assert.deepEqual(await bytes(rest), weights.subarray(100_000));
    const again = await fetch(`${base}/model.safetensors`);
    assert.deepEqual(await bytes(again), weights);
    const stats = hub.control.stats();
    const f = stats.files["test/m/model.safetensors"];
    assert.equal(f.gets, 3);
    assert.equal(f.bytes, 100_000 + (SIZE - 100_000) + SIZE);
    assert.equal(stats.requests[0].cut, true);
    assert.equal(stats.requests[0].completed, false);
    assert.equal(stats.requests[1].completed, true);
    assert.deepEqual(hub.control.faults(), [], "used faults are removed");
  });

  test("fetch sees a cut as a network error", async () => {
    hub.control.setFault({ type: "cut", file: "test/m/model.safetensors", afterBytes: 70_000 });
    const r = await fetch(`${base}/model.safetensors`);
    await assert.rejects(r.arrayBuffer());
  });

  test("cut at a file offset: only a GET whose range contains it is cut", async () => {
    hub.control.setFault({ type: "cut", file: "model.safetensors", at: 150_000 });
    const before = await rawGet(`${base}/model.safetensors`, { Range: "bytes=0-99999" });
    assert.equal(before.error, null);
    assert.equal(before.body.length, 100_000);
    const cut = await rawGet(`${base}/model.safetensors`, { Range: "bytes=100000-199999" });
    assert.ok(cut.error);
    assert.equal(cut.body.length, 50_000);
    assert.deepEqual(cut.body, weights.subarray(100_000, 150_000));
    const again = await rawGet(`${base}/model.safetensors`, { Range: "bytes=100000-199999" });
    assert.equal(again.error, null);
    assert.equal(again.body.length, 100_000);
  });

  test("cut at 0 bytes and cut of a different file", async () => {
    hub.control.setFault({ type: "cut", file: "config.json", afterBytes: 0 });
    const w = await fetch(`${base}/model.safetensors`);
    assert.deepEqual(await bytes(w), weights, "another file is not cut");
    const c = await rawGet(`${base}/config.json`);
    assert.ok(c.error);
    assert.equal(c.body.length, 0);
  });

  test("corrupt: bytes in [start, end) flipped for the next K overlapping GETs, ETag unchanged", async () => {
    hub.control.setFault({ type: "corrupt", file: "model.safetensors", start: 70_000, end: 70_100, count: 2 });
    // A GET that does not overlap does not use the fault up.
    const clean = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=0-999" } });
    assert.deepEqual(await bytes(clean), weights.subarray(0, 1000));
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${base}/model.safetensors`);
      assert.equal(r.headers.get("etag"), `"${sha(weights)}"`);
      const got = await bytes(r);
      assert.equal(got.length, SIZE);
      assert.deepEqual(got.subarray(0, 70_000), weights.subarray(0, 70_000));
      assert.deepEqual(got.subarray(70_100), weights.subarray(70_100));
      for (let j = 70_000; j < 70_100; j++) assert.equal(got[j], weights[j] ^ 0xff);
    }
    const partial = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=70050-70149" } });
    assert.deepEqual(await bytes(partial), weights.subarray(70_050, 70_150), "count used up");
    const reqs = hub.control.stats().requests;
    assert.deepEqual(reqs.map((r) => r.corrupted), [null, [70_000, 70_100], [70_000, 70_100], null]);
  });

  test("corrupt a range inside a Range request, across a chunk boundary", async () => {
    hub.control.setFault({ type: "corrupt", file: "model.safetensors", start: 131_000, end: 131_200 });
    const r = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=131100-" } });
    const got = await bytes(r);
    const want = Buffer.from(weights.subarray(131_100));
    for (let j = 0; j < 100; j++) want[j] ^= 0xff;
    assert.deepEqual(got, want);
  });

  test("offline (reset): fetch fails; control still answers; clear brings it back", async () => {
    hub.control.setFault({ type: "offline" });
    await assert.rejects(fetch(`${base}/config.json`));
    const s = await fetch(`${hub.url}/__control/stats`);
    assert.equal(s.status, 200);
    const stats = await s.json();
    assert.equal(stats.requests.at(-1).offline, true);
    hub.control.clearFaults();
    const r = await fetch(`${base}/config.json`);
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });

  test("offline (503)", async () => {
    hub.control.setFault({ type: "offline", mode: "503" });
    const r = await fetch(`${base}/config.json`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get("access-control-allow-origin"), "*");
    await r.arrayBuffer();
  });

  test("delay: ms per 64 KiB slows the body down", async () => {
    hub.control.setFault({ type: "delay", msPer64KiB: 40, file: "model.safetensors" });
    const started = Date.now();
    const r = await fetch(`${base}/model.safetensors`);
    assert.deepEqual(await bytes(r), weights);
    const ms = Date.now() - started;
    // 300000 bytes = 4.58 chunks of 64 KiB -> ~183 ms of sleeping
    assert.ok(ms >= 170, `took ${ms} ms`);
    const fast = Date.now();
    await (await fetch(`${base}/config.json`)).arrayBuffer();
    assert.ok(Date.now() - fast < 150, "other files are not delayed");
  });

  test("stall: the body stops after N bytes, the connection stays open until the client closes it", async () => {
    hub.control.setFault({ type: "stall", file: "model.safetensors", afterBytes: 70_000 });
    const controller = new AbortController();
    const r = await fetch(`${base}/model.safetensors`, { signal: controller.signal });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    let got = 0;
    while (got < 70_000) {
      const { value, done } = await reader.read();
      assert.equal(done, false, "the stalled answer must not end");
      got += value.length;
    }
    assert.equal(got, 70_000);
    // Nothing more arrives for a while, and the connection is not closed either.
    const next = reader.read().then(() => "more", () => "error");
    const silent = await Promise.race([next, new Promise((ok) => setTimeout(() => ok("silent"), 400))]);
    assert.equal(silent, "silent");
    let stats = hub.control.stats();
    assert.equal(stats.requests[0].stalled, true);
    assert.equal(stats.requests[0].endedAt, null, "still open");
    controller.abort();
    assert.equal(await next, "error");
    await new Promise((ok) => setTimeout(ok, 100));
    stats = hub.control.stats();
    assert.ok(stats.requests[0].endedAt !== null, "closed once the client let go");
    // The next GET is whole.
    assert.deepEqual(await bytes(await fetch(`${base}/model.safetensors`)), weights);
  });

  test("status: the next K GETs of the file answer that status, then the file again", async () => {
    hub.control.setFault({ type: "status", file: "model.safetensors", status: 503, count: 2 });
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=10-" } });
      assert.equal(r.status, 503);
      assert.equal(r.headers.get("access-control-allow-origin"), "*");
      await r.arrayBuffer();
    }
    const config = await fetch(`${base}/config.json`);
    assert.equal(config.status, 200, "other files are not affected");
    await config.arrayBuffer();
    const r = await fetch(`${base}/model.safetensors`, { headers: { Range: "bytes=10-" } });
    assert.equal(r.status, 206);
    assert.deepEqual(await bytes(r), weights.subarray(10));
    assert.deepEqual(hub.control.faults(), []);
  });

  test("status with retryAfter: the answer carries Retry-After, exposed to pages", async () => {
    hub.control.setFault({ type: "status", file: "model.safetensors", status: 429, retryAfter: 7 });
    const r = await fetch(`${base}/model.safetensors`);
    assert.equal(r.status, 429);
    assert.equal(r.headers.get("retry-after"), "7");
    assert.match(r.headers.get("access-control-expose-headers"), /Retry-After/);
    await r.arrayBuffer();
    const next = await fetch(`${base}/model.safetensors`);
    assert.equal(next.status, 200, "one answer only");
    await next.arrayBuffer();
  });

  test("bad fault specs are refused", () => {
    assert.throws(() => hub.control.setFault({ type: "stall", file: "x" }), /afterBytes/);
    assert.throws(() => hub.control.setFault({ type: "status", file: "x", status: 200 }), /status/);
    assert.throws(() => hub.control.setFault({ type: "melt" }), /unknown fault/);
    assert.throws(() => hub.control.setFault({ type: "cut", file: "x" }), /afterBytes/);
    assert.throws(() => hub.control.setFault({ type: "corrupt", file: "x", start: 5, end: 5 }), /start < end/);
    assert.throws(() => hub.control.setFault({ type: "offline", mode: "slow" }), /mode/);
  });
});

describe("control over HTTP", () => {
  const post = (path, body) =>
    fetch(`${hub.url}/__control/${path}`, { method: "POST", body: JSON.stringify(body ?? {}) }).then(async (r) => ({
      status: r.status,
      json: await r.json(),
    }));

  test("fault, faults, stats, reset, clear, files", async () => {
    let r = await post("fault", { type: "cut", file: "model.safetensors", afterBytes: 10 });
    assert.equal(r.status, 200);
    assert.equal(r.json.fault.type, "cut");
    r = await post("fault", { type: "delay", msPer64KiB: 1 });
    const faults = await (await fetch(`${hub.url}/__control/faults`)).json();
    assert.deepEqual(faults.map((f) => f.type), ["cut", "delay"]);
    assert.equal((await post("fault", { type: "nope" })).status, 400);
    assert.equal((await post("clear")).status, 200);
    assert.deepEqual(await (await fetch(`${hub.url}/__control/faults`)).json(), []);

    await (await fetch(`${base}/config.json`, { headers: { Range: "bytes=0-3" } })).arrayBuffer();
    const stats = await (await fetch(`${hub.url}/__control/stats`)).json();
    assert.deepEqual(stats.files["test/m/config.json"].ranges, ["bytes=0-3"]);
    assert.equal(stats.files["test/m/config.json"].bytes, 4);
    assert.equal(stats.requests.length, 1, "control requests are not counted");
    await post("reset", { counters: true, faults: false });
    assert.deepEqual((await (await fetch(`${hub.url}/__control/stats`)).json()).requests, []);

    const files = await (await fetch(`${hub.url}/__control/files`)).json();
    assert.equal(files["test/m"].files["model.safetensors"].size, SIZE);
    assert.equal(files["test/m"].files["model.safetensors"].sha256, sha(weights));
    const unknown = await fetch(`${hub.url}/__control/nothing`);
    assert.equal(unknown.status, 404);
    await unknown.arrayBuffer();
  });
});

describe("options", () => {
  test("--redirect: LFS files 302 to /cdn/ with X-Linked-*; Range works there; counted under the file", async () => {
    const r = await startHub({ models: { "test/m": join(dir, "model") }, redirect: true });
    try {
      const head = await fetch(`${r.url}/test/m/resolve/refs%2Fpr%2F15/model.safetensors`, { redirect: "manual" });
      assert.equal(head.status, 302);
      assert.equal(head.headers.get("x-linked-etag"), `"${sha(weights)}"`);
      assert.equal(head.headers.get("x-linked-size"), String(SIZE));
      const location = head.headers.get("location");
      assert.equal(location, `${r.url}/cdn/test/m/refs%2Fpr%2F15/model.safetensors`);
      await head.arrayBuffer();
      const followed = await fetch(`${r.url}/test/m/resolve/main/model.safetensors`, { headers: { Range: "bytes=-10" } });
      assert.equal(followed.status, 206);
      assert.ok(followed.redirected);
      assert.deepEqual(await bytes(followed), weights.subarray(SIZE - 10));
      const cfg = await fetch(`${r.url}/test/m/resolve/main/config.json`, { redirect: "manual" });
      assert.equal(cfg.status, 200, "small files are not redirected");
      await cfg.arrayBuffer();
      const stats = r.control.stats();
      assert.deepEqual(
        stats.requests.map((q) => [q.via, q.status, q.revision]),
        [
          ["resolve", 302, "refs/pr/15"],
          ["resolve", 302, "main"],
          ["cdn", 206, "main"],
          ["resolve", 200, "main"],
        ],
      );
      assert.equal(stats.files["test/m/model.safetensors"].bytes, 10);
    } finally {
      await r.close();
    }
  });

  test("--redirect with --cdn-host: Location names the other host", async () => {
    const r = await startHub({ models: { "test/m": join(dir, "model") }, redirect: true, cdnHost: "localhost" });
    try {
      const head = await fetch(`${r.url}/test/m/resolve/main/model.safetensors`, { redirect: "manual" });
      assert.equal(head.headers.get("location"), `http://localhost:${r.port}/cdn/test/m/main/model.safetensors`);
      await head.arrayBuffer();
    } finally {
      await r.close();
    }
  });

  test("--opaque-cdn-etag: behind the redirect the CDN's ETag is not the SHA-256; the API gives it", async () => {
    const r = await startHub({ models: { "test/m": join(dir, "model") }, redirect: true, opaqueCdnEtag: true, onlyRevision: "refs/pr/15" });
    try {
      const followed = await fetch(`${r.url}/test/m/resolve/refs%2Fpr%2F15/model.safetensors`, { headers: { Range: "bytes=0-9" } });
      assert.equal(followed.status, 206);
      const etag = followed.headers.get("etag");
      assert.ok(etag && !etag.includes(sha(weights)), `the CDN's ETag ${etag} must not be the SHA-256`);
      assert.ok(!(followed.headers.get("x-linked-etag") ?? "").includes(sha(weights)));
      await followed.arrayBuffer();
      const info = await fetch(`${r.url}/api/models/test/m/revision/refs%2Fpr%2F15?blobs=true`);
      assert.equal(info.status, 200);
      assert.equal(info.headers.get("access-control-allow-origin"), "*");
      const json = await info.json();
      assert.equal(json.id, "test/m");
      const byName = Object.fromEntries(json.siblings.map((f) => [f.rfilename, f]));
      assert.deepEqual(byName["model.safetensors"].lfs, { size: SIZE, sha256: sha(weights), pointerSize: 134 });
      assert.equal(byName["config.json"].size, config.length);
      assert.equal(byName["config.json"].lfs, undefined, "small files are not in LFS");
      const wrongRev = await fetch(`${r.url}/api/models/test/m/revision/main?blobs=true`);
      assert.equal(wrongRev.status, 404);
      assert.equal(wrongRev.headers.get("x-error-code"), "RevisionNotFound");
      await wrongRev.arrayBuffer();
      const noRepo = await fetch(`${r.url}/api/models/test/nope/revision/refs%2Fpr%2F15`);
      assert.equal(noRepo.status, 404);
      assert.equal(noRepo.headers.get("x-error-code"), "RepoNotFound");
      await noRepo.arrayBuffer();
      assert.deepEqual(
        r.control.stats().requests.filter((q) => q.via === "api").map((q) => [q.status, q.model, q.revision]),
        [
          [200, "test/m", "refs/pr/15"],
          [404, "test/m", "main"],
          [404, "test/nope", "refs/pr/15"],
        ],
      );
    } finally {
      await r.close();
    }
  });

  test("--only-revision: other revisions are RevisionNotFound", async () => {
    const r = await startHub({ models: { "test/m": join(dir, "model") }, onlyRevision: "refs/pr/15" });
    try {
      const ok = await fetch(`${r.url}/test/m/resolve/refs%2Fpr%2F15/config.json`);
      assert.equal(ok.status, 200);
      await ok.arrayBuffer();
      const no = await fetch(`${r.url}/test/m/resolve/main/config.json`);
      assert.equal(no.status, 404);
      assert.equal(no.headers.get("x-error-code"), "RevisionNotFound");
      await no.arrayBuffer();
    } finally {
      await r.close();
    }
  });

  test("--site: other paths are static files from the folder", async () => {
    await writeFile(join(dir, "index.html"), "<p>hi</p>");
    const r = await startHub({ models: { "test/m": join(dir, "model") }, site: dir });
    try {
      const page = await fetch(`${r.url}/index.html?x=1`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      assert.equal(await page.text(), "<p>hi</p>");
      const root = await fetch(`${r.url}/`);
      assert.equal(await root.text(), "<p>hi</p>");
      const missing = await fetch(`${r.url}/nope.js`);
      assert.equal(missing.status, 404);
      await missing.arrayBuffer();
      const hubFile = await fetch(`${r.url}/test/m/resolve/main/config.json`);
      assert.deepEqual(await bytes(hubFile), config);
    } finally {
      await r.close();
    }
  });

  test("setSite serves another folder from then on; a hang fault leaves that path unanswered", async () => {
    const one = join(dir, "site-1");
    const two = join(dir, "site-2");
    await mkdir(one, { recursive: true });
    await mkdir(two, { recursive: true });
    await writeFile(join(one, "index.html"), "v1");
    await writeFile(join(two, "index.html"), "v2");
    const r = await startHub({ models: { "test/m": join(dir, "model") }, site: one });
    try {
      assert.equal(await (await fetch(`${r.url}/index.html`)).text(), "v1");
      r.control.setSite(two);
      assert.equal(await (await fetch(`${r.url}/index.html`)).text(), "v2");
      r.control.setFault({ type: "hang", path: "/index.html" });
      const hung = await fetch(`${r.url}/index.html`, { signal: AbortSignal.timeout(300) }).then(
        () => "answered",
        (e) => e.name,
      );
      assert.equal(hung, "TimeoutError");
      assert.equal((await fetch(`${r.url}/test/m/resolve/main/config.json`)).status, 200, "other paths still answer");
      assert.ok(r.control.stats().requests.some((q) => q.hung && q.path === "/index.html"));
      assert.throws(() => r.control.setFault({ type: "hang" }), /path/);
      r.control.clearFaults();
      assert.equal(await (await fetch(`${r.url}/index.html`)).text(), "v2");
    } finally {
      await r.close();
    }
    assert.throws(() => hub.control.setSite(two), /without a site/);
  });

  test("a model folder that does not exist is an error", async () => {
    await assert.rejects(startHub({ models: { "a/b": join(dir, "missing") } }), /not a folder/);
  });

  test("a real fixture: the ETag is the sha256 of the file", async () => {
    const fixture = join(ROOT, "tests/fixtures/tiny-clip");
    const r = await startHub({ models: { "test/tiny-clip": fixture } });
    try {
      const file = await readFile(join(fixture, "model.safetensors"));
      const head = await fetch(`${r.url}/test/tiny-clip/resolve/main/model.safetensors`, { method: "HEAD" });
      assert.equal(head.headers.get("etag"), `"${sha(file)}"`);
      assert.equal(head.headers.get("x-linked-size"), String(file.length));
    } finally {
      await r.close();
    }
  });
});

describe("command line", () => {
  test("prints its URL as a JSON line, serves, stops on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [join(ROOT, "scripts/hub-server.mjs"), "--model", `test/m=${join(dir, "model")}`, "--port", "0"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const line = await new Promise((ok, fail) => {
        let out = "";
        const timer = setTimeout(() => fail(new Error(`no JSON line within 10 s: ${out}`)), 10_000);
        child.stdout.on("data", (d) => {
          out += d;
          if (out.includes("\n")) {
            clearTimeout(timer);
            ok(out.split("\n")[0]);
          }
        });
        child.on("exit", (code) => fail(new Error(`exited ${code}`)));
      });
      const info = JSON.parse(line);
      assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.ok(info.port > 0);
      const r = await fetch(`${info.url}/test/m/resolve/main/config.json`);
      assert.deepEqual(await bytes(r), config);
      const code = await new Promise((ok) => {
        child.on("exit", (c) => ok(c));
        child.kill("SIGTERM");
      });
      assert.equal(code, 0);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });

  test("bad arguments exit 2 with a message", async () => {
    for (const args of [[], ["--model", "nonsense"], ["--bogus"]]) {
      const child = spawn(process.execPath, [join(ROOT, "scripts/hub-server.mjs"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let err = "";
      child.stderr.on("data", (d) => (err += d));
      const code = await new Promise((ok) => child.on("exit", ok));
      assert.equal(code, 2, args.join(" "));
      assert.match(err, /hub-server:/);
    }
  });
});

// Keep the raw request helper reachable for debugging (unused otherwise).
void httpRequest;
