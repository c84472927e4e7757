// A failed save (issue 8, "Nothing lost, ever"): while the browser refuses to store photo
// records (QuotaExceededError, as from a full disk), the page shows the error with
// #retry-save-button, claims no photo it has not stored (data-indexed stays 0), and once
// storage works again Retry saves the same photos without a reload; a second drop then
// works, and a reload finds everything. The refusal is a page init script that makes
// IDBObjectStore.put throw on the "photos" store while window.__e2eFailPhotoPuts is set.

import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, dropPaths, expect, expectNoProblems, listFiles, load, ms, openBrowser, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const FIRST = 6;
const SECOND = 3;

const REFUSE_PHOTO_PUTS = String.raw`(() => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (this.name === "photos" && self.__e2eFailPhotoPuts) {
      throw new DOMException("e2e: the disk is full", "QuotaExceededError");
    }
    return put.apply(this, args);
  };
})();`;

async function folder(dir, files) {
  await mkdir(dir, { recursive: true });
  for (const f of files) await copyFile(join(IMAGES, f), join(dir, f.split("/").pop()));
  return dir;
}

export const tests = [
  {
    name: "n3. a full storage: the failed save is shown with Retry, nothing unsaved is claimed, Retry saves without a reload, the next drop works",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-saves-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const jpegs = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/") && f.endsWith(".jpg"));
      expect(jpegs.length >= FIRST + SECOND, `fixture check: ${jpegs.length} JPEG fixtures`);
      const first = await folder(join(work, "first"), jpegs.slice(0, FIRST));
      const second = await folder(join(work, "second"), jpegs.slice(FIRST, FIRST + SECOND));

      const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-profile-saves-"));
      t.defer(() => rm(profile, { recursive: true, force: true }));
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t, { userDataDir: profile });
      await b.context.addInitScript(REFUSE_PHOTO_PUTS);
      await load(b, appUrl(site, hub, { model: MODEL, workers: 1 }));
      await waitModelReady(b, hub);

      await b.page.evaluate(() => {
        window.__e2eFailPhotoPuts = true;
      });
      await dropPaths(b.page, "#drop-zone", [first]);
      const retry = b.page.locator("#retry-save-button");
      await retry.waitFor({ state: "visible", timeout: ms(120_000) });
      const failed = await waitUntil(b, (now) => now.state === "error", { timeout: ms(10_000), what: "data-state=error after the refused save", hub });
      expect(/storage is full/.test(failed.text) && /Retry/.test(failed.text), `the error says "${failed.text}", expected the storage-full sentence with Retry`);
      expect(Number(failed.indexed) === 0, `while the save failed data-indexed=${failed.indexed}: the page claims photos it did not store`, await describe(b, hub));

      await b.page.evaluate(() => {
        window.__e2eFailPhotoPuts = false;
      });
      await retry.click();
      await waitIndexed(b, { indexed: FIRST, skipped: 0, hub });
      expect(!(await retry.isVisible()), "#retry-save-button is still shown after the save worked");

      await dropPaths(b.page, "#drop-zone", [second]);
      await waitIndexed(b, { indexed: FIRST + SECOND, skipped: 0, hub });

      await b.page.reload({ waitUntil: "load" });
      const s = await waitUntil(b, (now) => now.state === "ready" || now.state === "error", { timeout: ms(60_000), what: "the page to be ready after the reload", hub });
      expect(s.state === "ready" && Number(s.indexed) === FIRST + SECOND, `after the reload: data-state=${s.state} data-indexed=${s.indexed}, expected ready with ${FIRST + SECOND}`, await describe(b, hub));
      await expectNoProblems(b);
    },
  },
];
