// Folders that stay connected (issue 12 item 4, e2e r2). Headless Chromium has no picker
// UI, so the test hands the page a directory of the Origin Private File System through the
// documented seam (globalThis.__clipseekPickDirectory, called instead of
// showDirectoryPicker; src/web/connected.rs): the same code path then remembers the handle
// in IndexedDB and walks it. After a reload, files are added, changed and deleted in OPFS
// and "Reconnect Photos" picks them up: the new one indexed and found, the changed one
// replaced in place (no "Photos (2)"), the deleted one offered to forget (kept until the
// press).

import { readFile } from "node:fs/promises";
import { join } from "node:path";

import { SHAPES, appUrl, expect, load, openBrowser, search, startServers, waitIndexed, waitModelReady, waitUntil, ms } from "./helpers.mjs";

const MODEL = "test/shapes-clip";
const FILES = {
  "red.png": "warm/red-circle-2.png",
  "green.png": "cool/green-star-2.png",
  "blue.png": "cool/green-square-2.png",
};
// After the reload one photo is unchanged (green) and one changed (red): as a drop, the
// change would outvote the match and make a second folder "Photos (2)"; a reconnect is
// known to be the same folder (page::library::Known::place_reconnected).

/** Writes `files` ({name: bytes as number[] | null}) into OPFS folder Photos; null deletes. */
async function writeOpfs(page, files) {
  await page.evaluate(async (files) => {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle("Photos", { create: true });
    for (const [name, bytes] of Object.entries(files)) {
      if (bytes === null) {
        await dir.removeEntry(name);
        continue;
      }
      const w = await (await dir.getFileHandle(name, { create: true })).createWritable();
      await w.write(new Uint8Array(bytes));
      await w.close();
    }
  }, files);
}

const bytesOf = async (rel) => [...(await readFile(join(SHAPES, rel)))];
const seam = (page) => page.evaluate(() => {
  globalThis.__clipseekPickDirectory = async () => (await navigator.storage.getDirectory()).getDirectoryHandle("Photos");
});

export const tests = [
  {
    name: "r2. a folder that stays connected (OPFS through the picker's seam): remembered across a reload, Reconnect indexes the new and changed photos and offers to forget the deleted one",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      const url = appUrl(site, hub, { model: MODEL });
      await load(b, url);
      await waitModelReady(b, hub);
      const first = {};
      for (const [name, rel] of Object.entries(FILES)) first[name] = await bytesOf(rel);
      await writeOpfs(b.page, first);
      await seam(b.page);
      await b.page.locator("#connect-button").click();
      await waitIndexed(b, { indexed: 3, skipped: 0, hub });

      await load(b, url);
      await waitModelReady(b, hub, { expectDownload: false });
      const label = await b.page.locator("#reconnect-button").textContent();
      expect(label === "Reconnect Photos" && (await b.page.locator("#reconnect-button").isVisible()), `after a reload the page offers "${label}"`);
      await writeOpfs(b.page, {
        "yellow.png": await bytesOf("warm/yellow/yellow-circle-1.png"),
        "red.png": await bytesOf("warm/red-square-1.png"),
        "blue.png": null,
      });
      await b.page.locator("#reconnect-button").click();
      await waitUntil(b, async () => b.page.locator("#forget-button").isVisible(), { timeout: ms(120_000), what: "#forget-button after the reconnect", hub });
      const forget = await b.page.locator("#forget-button").textContent();
      expect(/Forget 1 photo/.test(forget ?? ""), `the forget offer: ${forget}`);
      const said = await b.page.locator("#connect-text").textContent();
      expect(said === "Photos is reconnected: 1 new photo, 1 changed, 1 no longer there (kept until you forget them).", `#connect-text: ${said}`);
      await waitIndexed(b, { indexed: 4, skipped: 0, hub });
      const square = await search(b, "red square", { hub });
      expect(square.items[0]?.path === "Photos/red.png", `"red square" finds the changed red.png first: ${JSON.stringify(square.items.slice(0, 3))}`);
      const paths = (await search(b, "green star", { hub })).items.map((i) => i.path).sort();
      expect(JSON.stringify(paths) === JSON.stringify(["Photos/blue.png", "Photos/green.png", "Photos/red.png", "Photos/yellow.png"]), `every photo stays under Photos: ${JSON.stringify(paths)}`);
      await b.page.locator("#forget-button").click();
      await waitUntil(b, async (now) => Number(now.indexed) === 3, { timeout: ms(30_000), what: "3 photos after Forget", hub });
    },
  },
];
