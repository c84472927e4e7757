// Privacy (issue 10, item 7). p1: every request the page, its workers and its service
// worker make in a whole session (download from the local hub, index a folder, search,
// reload, search again) is recorded at the browser context (Playwright's context-level
// request events, which see dedicated-worker and service-worker requests too: checked by
// finding every request the two servers answered among them, and requests of both kinds
// among the recorded) and must be an app file from the page's own server or a model file
// from the hub; none carries a body, and no URL or header names a photo. p2: the built
// page's Content-Security-Policy allows no loopback port, so the production page refuses a
// hub on another local port and says why (the test build, which every other test uses,
// adds exactly the test hub's origin: scripts/static-server.mjs). p3: a `model=` link to a
// model of tens of MB shows its size and waits for the press before fetching any of it.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FIXTURES,
  IMAGES,
  MODELS,
  MODEL_FILES,
  QUERIES,
  appUrl,
  describe,
  dropPaths,
  expect,
  expectNoProblems,
  listFiles,
  load,
  ms,
  openBrowser,
  search,
  sleep,
  snapshot,
  startServers,
  waitIndexed,
  waitModelReady,
  waitUntil,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";

/**
 * Records every request of the context: URL, method, body, headers, and who made it
 * ("service worker"; "worker" when it has no frame, as a dedicated worker's; else "page").
 */
function recordRequests(session) {
  const seen = [];
  session.context.on("request", (request) => {
    const url = request.url();
    if (!/^https?:/.test(url)) return; // data: and blob: URLs never leave the browser
    let who = "page";
    if (request.serviceWorker()) who = "service worker";
    else {
      try {
        request.frame();
      } catch {
        who = "worker";
      }
    }
    seen.push({ url, method: request.method(), body: request.postDataBuffer(), headers: request.headers(), who });
  });
  return seen;
}

/** The photos' names and relative paths, as they could appear in a URL or a header. */
async function photoNames(folder) {
  const files = await listFiles(folder);
  const names = new Set();
  for (const f of files) {
    names.add(f);
    names.add(f.split("/").pop());
  }
  return [...names].filter((n) => n.length >= 5);
}

export const tests = [
  {
    name: "p1. privacy: a whole session's requests (page, workers, service worker) are app files and model files only; no body, no photo name",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      if (t.options.sameOrigin) throw new Error("this test tells the page's server and the hub apart (run without --same-origin)");
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      const seen = recordRequests(b);
      const url = appUrl(site, hub, { model: MODEL });
      await load(b, url);
      await waitModelReady(b, hub);
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await waitIndexed(b, { indexed: 28, skipped: 4, hub });
      await search(b, QUERIES[MODEL][0], { hub });
      // Let the service worker install (it fetches the app shell) before the reload.
      await b.page.evaluate(() => Promise.race([navigator.serviceWorker.ready, new Promise((ok) => setTimeout(ok, 30_000))]));
      await b.page.reload({ waitUntil: "load" });
      await waitUntil(b, (s) => s.state === "ready" && Number(s.indexed) === 28, { timeout: ms(60_000), what: "the reloaded page ready with 28 photos", hub });
      await search(b, QUERIES[MODEL][1], { hub });
      await sleep(500);

      const siteOrigin = new URL(site.url).origin;
      const hubOrigin = new URL(hub.url).origin;
      const dist = new Set(await listFiles(t.options.dist));
      const names = await photoNames(IMAGES);
      const bad = [];
      for (const r of seen) {
        const u = new URL(r.url);
        const where = `${r.who}: ${r.method} ${r.url}`;
        if (r.method !== "GET" && r.method !== "HEAD") bad.push(`${where}: method ${r.method}`);
        if (r.body && r.body.length > 0) bad.push(`${where}: carries a body of ${r.body.length} bytes`);
        const text = decodeURIComponent(r.url) + " " + JSON.stringify(r.headers);
        for (const n of names) if (text.includes(n)) bad.push(`${where}: names the photo ${n}`);
        if (u.origin === siteOrigin) {
          const file = u.pathname.replace(/^\//, "") || "index.html";
          if (!dist.has(file)) bad.push(`${where}: not a file of the app`);
        } else if (u.origin === hubOrigin) {
          const model = MODEL_FILES.some((f) => u.pathname === `/${MODEL}/resolve/main/${f}`);
          if (!model && !u.pathname.startsWith(`/api/models/${MODEL}/`)) bad.push(`${where}: not a model file`);
        } else bad.push(`${where}: neither the page's server nor the hub`);
      }
      expect(bad.length === 0, `${bad.length} requests break the privacy rule:`, bad.slice(0, 15).join("\n"));

      // The record is complete: every request either server answered was seen by it.
      const key = (method, u) => `${method} ${u.origin}${u.pathname}${u.search}`;
      const recorded = new Set(seen.map((r) => key(r.method, new URL(r.url))));
      const answered = [
        ...site.requests.map((q) => ({ method: q.method, url: new URL(q.path + q.search, site.url) })),
        ...hub.control.stats().requests.filter((q) => q.method !== "OPTIONS").map((q) => ({ method: q.method, url: new URL(q.path, hub.url) })),
      ];
      const missing = answered.filter((q) => !recorded.has(key(q.method, q.url)));
      expect(missing.length === 0, `${missing.length} of ${answered.length} requests the servers answered were not seen by the browser's recorder:`, missing.slice(0, 10).map((q) => `${q.method} ${q.url}`).join("\n"));
      // The encoder workers load their wasm themselves, the service worker fetches the shell.
      const workerWasm = seen.filter((r) => /clipseek-worker(-relaxed)?_bg\.wasm/.test(r.url));
      const kinds = new Set(seen.map((r) => r.who));
      expect(workerWasm.length > 0, "the recorder saw no encoder worker fetch its wasm");
      expect(kinds.has("service worker"), `the recorder saw no request of the service worker (kinds seen: ${[...kinds].join(", ")})`);
      const models = seen.filter((r) => r.url.startsWith(hubOrigin)).length;
      t.log(`${seen.length} requests: ${seen.length - models} app files (${[...kinds].join(", ")}), ${models} to the hub; the servers answered ${answered.length}`);
      await expectNoProblems(b);
    },
  },
  {
    name: "p2. the production policy allows no loopback port: the built page refuses a hub on another local port and says why",
    timeoutMs: 120_000,
    realAppOnly: true,
    async run(t) {
      if (t.options.sameOrigin) throw new Error("this test needs the hub on another origin (run without --same-origin)");
      const html = await readFile(join(t.options.dist, "index.html"), "utf8");
      const csp = /<meta\s+http-equiv="Content-Security-Policy"\s+content="([^"]*)"/i.exec(html)?.[1];
      expect(csp, "dist/index.html has no Content-Security-Policy <meta>");
      const connect = csp.split(";").map((d) => d.trim().split(/\s+/)).find((d) => d[0] === "connect-src")?.slice(1) ?? [];
      const loose = connect.filter((s) => s !== "'self'" && !/^https:\/\/(\*\.)?[a-z0-9.-]+$/i.test(s));
      expect(connect.length > 0 && loose.length === 0, `the built page's connect-src allows more than 'self' and https hosts without ports: ${loose.join(" ") || "(no connect-src)"}`, csp);

      const { hub, site } = await startServers(t, { connect: false });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      let clicked = false;
      const s = await waitUntil(
        b,
        async (now) => {
          if (now.state === "error") return true;
          const button = b.page.locator("#download-model");
          if (!clicked && now.state === "idle" && (await button.isVisible())) {
            clicked = true;
            await button.click();
          }
          return false;
        },
        { timeout: ms(60_000), what: "the page to refuse the hub", hub },
      );
      expect(/security policy does not allow connecting to/.test(s.text), `the page's words for a refused hub: "${s.text}"`, await describe(b, hub));
      const reached = hub.control.stats().requests.length;
      expect(reached === 0, `${reached} requests reached the hub the policy refuses`, await describe(b, hub));
      const refused = (await b.page.evaluate(() => window.__e2e.csp)).map((c) => c.blocked);
      expect(refused.some((u) => u.startsWith(hub.url)), `the browser reported no refusal of ${hub.url} (refused: ${refused.join(", ") || "none"})`);
    },
  },
  {
    name: "p3. a model= link to a large model shows its size and asks; nothing of it is fetched before the press, not even on a drop",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-big-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const dir = join(work, "big-clip");
      const size = await paddedModel(join(FIXTURES, "tiny-clip"), dir, 40 << 20);
      const big = "test/big-clip";
      const { hub, site } = await startServers(t, { hubOptions: { models: { ...MODELS, [big]: dir } } });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: big }));
      const label = `Download the model (${(size / 1e6).toFixed(1)} MB)`;
      const asked = await waitUntil(b, async (s) => s.state === "idle" && /This link asks for the model .*(to download once|could not be learned)/.test(s.text), {
        timeout: ms(30_000),
        what: "the question with the size",
        hub,
      });
      expect(asked.text.includes(`${big} (revision main) from ${hub.url}: ${(size / 1e6).toFixed(1)} MB to download once`), `the question does not name the model and its size: "${asked.text}"`);
      const button = b.page.locator("#download-model");
      expect((await button.isVisible()) && (await button.textContent()).trim() === label, `#download-model should read "${label}", reads "${(await button.textContent())?.trim()}"`);
      await dropPaths(b.page, "#drop-zone", [IMAGES]);
      await sleep(3_000);
      const now = await snapshot(b.page);
      expect(now.state === "idle" && /indexed once it is downloaded/.test(now.text), `after a drop the page should still ask and say the photos wait: ${now.state}: "${now.text}"`);
      const early = hub.control.stats().requests.filter((q) => q.key?.startsWith(`${big}/`));
      const fetched = early.filter((q) => q.method !== "HEAD" || !q.key.endsWith("/model.safetensors"));
      expect(early.length === 1 && fetched.length === 0, `before the press the hub should have seen one HEAD of model.safetensors, saw:`, early.map((q) => `${q.method} ${q.path} -> ${q.status} ${q.bytes} B`).join("\n") || "(nothing)");
      await button.click();
      await waitModelReady(b, hub, { timeout: ms(120_000) });
      await waitIndexed(b, { indexed: 28, skipped: 4, hub });
      await expectNoProblems(b);
    },
  },
];

/**
 * A copy of the model in `from` whose model.safetensors carries an extra, unused F32 tensor
 * so that the file is `bytes` long (at least): a model above the page's question threshold
 * that still loads. Returns the weights' size.
 */
async function paddedModel(from, to, bytes) {
  await mkdir(to, { recursive: true });
  for (const f of MODEL_FILES.filter((f) => f !== "model.safetensors")) await copyFile(join(from, f), join(to, f));
  const weights = await readFile(join(from, "model.safetensors"));
  const headerLen = Number(weights.readBigUInt64LE(0));
  const header = JSON.parse(weights.subarray(8, 8 + headerLen).toString("utf8"));
  const data = weights.subarray(8 + headerLen);
  const floats = Math.ceil(Math.max(0, bytes - weights.length) / 4);
  header["e2e.padding"] = { dtype: "F32", shape: [floats], data_offsets: [data.length, data.length + floats * 4] };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const out = Buffer.concat([len, Buffer.from(json), data, Buffer.alloc(floats * 4)]);
  await writeFile(join(to, "model.safetensors"), out);
  return out.length;
}
