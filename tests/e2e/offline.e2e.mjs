// Offline (issue 3, e2e d): after a first visit that downloaded the model and indexed a
// folder, the browser is closed; then the static server is stopped, the hub goes offline
// and every request of the reopened browser is aborted. The page must still open (service
// worker), be ready from IndexedDB, and answer a query exactly as before, from the restored
// index, without any folder dropped again. Also measures reload-to-first-result.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  IMAGES,
  MODELS,
  QUERIES,
  appUrl,
  cliReference,
  compareRanking,
  describe,
  dropPaths,
  expect,
  expectSameRanking,
  expectThumbnails,
  load,
  metric,
  ms,
  openBrowser,
  rankingTable,
  search,
  startServers,
  waitIndexed,
  waitModelReady,
  waitUntil,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";

export const tests = [
  {
    name: "d. offline reload: the page opens from its service worker and searches the restored index",
    timeoutMs: 300_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], IMAGES, QUERIES[MODEL]);
      const query = QUERIES[MODEL][0];
      const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-persistent-"));
      t.defer(() => rm(profile, { recursive: true, force: true }));
      if (t.options.sameOrigin) throw new Error("this test needs the page and the hub on two servers (run without --same-origin)");
      const { hub, site } = await startServers(t);
      const url = appUrl(site, hub, { model: MODEL });

      // First visit, online.
      const first = await openBrowser(t, { userDataDir: profile });
      await load(first, url);
      await waitModelReady(first, hub);
      await dropPaths(first.page, "#drop-zone", [IMAGES]);
      await waitIndexed(first, { indexed: 28, skipped: 4, hub });
      const before = await expectSameRanking(first, query, ref, { rootName: "images", hub });
      const worker = await first.page.evaluate(async () => {
        if (!("serviceWorker" in navigator)) return "navigator.serviceWorker is missing";
        const registration = await Promise.race([navigator.serviceWorker.ready, new Promise((ok) => setTimeout(() => ok(null), 30_000))]);
        if (registration?.active) return "active";
        const all = await navigator.serviceWorker.getRegistrations();
        if (all.length === 0) return "no service worker became active within 30 s: the page never registered one (navigator.serviceWorker.getRegistrations() is empty)";
        const states = all.map((r) => `${r.scope}: installing=${r.installing?.state ?? "-"} waiting=${r.waiting?.state ?? "-"} active=${r.active?.state ?? "-"}`);
        return `no service worker became active within 30 s (${states.join("; ")}); did its install fail?`;
      });
      expect(worker === "active", `after the first visit: ${worker}`);
      await first.close();

      // Everything offline: no static server, the hub refusing connections, and every
      // request of the browser aborted.
      await site.close();
      hub.control.setFault({ type: "offline", mode: "reset" });
      const requestsBefore = hub.control.stats().requests.length;
      const second = await openBrowser(t, { userDataDir: profile });
      const aborted = [];
      await second.context.route("**/*", (route) => {
        aborted.push(route.request().url());
        return route.abort("internetdisconnected");
      });
      const started = Date.now();
      try {
        await load(second, url);
      } catch (error) {
        throw new Error(`offline, the page did not open from its service worker: ${error.message}\naborted requests: ${aborted.slice(0, 5).join(", ")}`);
      }
      const s = await waitUntil(second, (now) => now.state === "ready" || now.state === "error", {
        timeout: ms(60_000),
        what: "the page to be ready offline",
        hub,
      });
      expect(s.state === "ready", `offline, the page ended in data-state=${s.state}: "${s.text}"`, await describe(second, hub));
      const readyMs = Date.now() - started;
      expect(Number(s.indexed) === 28, `offline, the restored index holds data-indexed=${s.indexed}, expected 28`, await describe(second, hub));
      const queryAt = Date.now();
      const after = await search(second, query, { hub });
      const firstResultMs = Date.now() - started;
      const queryMs = Date.now() - queryAt;
      const problems = compareRanking(after.items, ref.queries[query], { rootName: "images", minCount: 8 });
      expect(problems.length === 0, `offline: query "${query}" differs from the CLI:`, `${problems.slice(0, 10).join("\n")}\n${rankingTable(after.items, ref.queries[query], "images")}`);
      const same = JSON.stringify(after.items.map((r) => [r.path, r.score])) === JSON.stringify(before.items.map((r) => [r.path, r.score]));
      expect(same, `offline: query "${query}" shows other results than before the restart`, rankingTable(after.items, before.items.map((r) => ({ path: r.path, score: Number(r.score) })), "images"));
      expectThumbnails(after, "offline, restored thumbnails");
      const reached = hub.control.stats().requests.length - requestsBefore;
      t.log(`offline: ${aborted.length} requests aborted by the test (${[...new Set(aborted.map((u) => new URL(u).pathname))].slice(0, 5).join(", ")}), ${reached} reached the (offline) hub`);
      expect(second.problems.every((p) => p.kind !== "pageerror" && p.kind !== "crash"), "offline: the page threw", second.problems.map((p) => `${p.kind}: ${p.text}`).join("\n"));
      await metric("reload_to_ready_offline", readyMs, "ms", { model: MODEL, indexed: 28 });
      await metric("reload_to_first_result_offline", firstResultMs, "ms", { model: MODEL, indexed: 28, query_ms: queryMs, note: "includes typing the query (15 ms per key)" });
    },
  },
];
