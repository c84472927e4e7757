// Two tabs on one store (issue 8, "Two tabs"): two pages of one persistent context.
// n4: tab B shows the photos tab A indexed, without a reload; "Clear index" in A is not
// undone by B's next save, even when B never heard of the clear: B's BroadcastChannel is
// made deaf (an init script of B's page drops its messages while window.__e2eDeaf is set),
// so B saves with the generation from before the clear, the store refuses it, B reads the
// index again and gives its run up; A, reloaded, still holds nothing. B's next drop, at the
// new generation, is saved, and A shows it without a reload.

import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, dropPaths, expect, expectNoProblems, listFiles, load, ms, openBrowser, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const FIRST = 4;
const SECOND = 3;

const DEAF_CHANNEL = String.raw`(() => {
  const d = Object.getOwnPropertyDescriptor(BroadcastChannel.prototype, "onmessage");
  Object.defineProperty(BroadcastChannel.prototype, "onmessage", {
    configurable: true,
    get() { return d.get.call(this); },
    set(f) { d.set.call(this, f && ((e) => { if (!self.__e2eDeaf) f(e); })); },
  });
})();`;

async function folder(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const f of files) await copyFile(join(IMAGES, f), join(dir, f.split("/").pop()));
  return dir;
}

const count = (session, n, what, hub) =>
  waitUntil(session, (s) => s.state === "ready" && Number(s.indexed) === n, { timeout: ms(60_000), what, hub });

export const tests = [
  {
    name: "n4. two tabs: B shows what A indexed without a reload; A's clear is not undone by B's next save",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-tabs-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const jpegs = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/") && f.endsWith(".jpg"));
      expect(jpegs.length >= FIRST + SECOND, `fixture check: ${jpegs.length} JPEG fixtures`);
      const first = await folder(join(work, "first"), jpegs.slice(0, FIRST));
      const second = await folder(join(work, "second"), jpegs.slice(FIRST, FIRST + SECOND));

      const { hub, site } = await startServers(t);
      const a = await openBrowser(t);
      const url = appUrl(site, hub, { model: MODEL, workers: 1 });
      await load(a, url);
      await waitModelReady(a, hub);
      const pageB = await a.context.newPage();
      await pageB.addInitScript(DEAF_CHANNEL);
      const b = { ...a, page: pageB };
      await load(b, url);
      await waitModelReady(b, hub, { expectDownload: false });

      await dropPaths(a.page, "#drop-zone", [first]);
      await waitIndexed(a, { indexed: FIRST, skipped: 0, hub });
      await count(b, FIRST, `tab B to show the ${FIRST} photos tab A indexed (no reload)`, hub);

      await pageB.evaluate(() => {
        window.__e2eDeaf = true;
      });
      await a.page.locator("#clear-button").click();
      await a.page.locator("#clear-button").click();
      await count(a, 0, "tab A to be cleared", hub);
      const stale = await waitUntil(b, (s) => s.state === "ready", { timeout: ms(10_000), what: "tab B ready", hub });
      expect(Number(stale.indexed) === FIRST, `tab B heard of the clear although deaf (data-indexed=${stale.indexed})`);

      await dropPaths(pageB, "#drop-zone", [second]);
      await count(b, 0, "tab B to read the cleared index again after its refused save", hub);
      await a.page.reload({ waitUntil: "load" });
      await waitModelReady(a, hub, { expectDownload: false });
      const afterA = await waitUntil(a, (s) => s.state === "ready", { timeout: ms(30_000), what: "tab A ready after a reload", hub });
      expect(Number(afterA.indexed) === 0, `tab B's save undid the clear: tab A holds ${afterA.indexed} photos after a reload`, await describe(a, hub));

      await pageB.evaluate(() => {
        window.__e2eDeaf = false;
      });
      await dropPaths(pageB, "#drop-zone", [second]);
      await waitIndexed(b, { indexed: SECOND, skipped: 0, hub });
      await count(a, SECOND, `tab A to show the ${SECOND} photos tab B indexed after the clear`, hub);
      await expectNoProblems(a);
    },
  },
];
