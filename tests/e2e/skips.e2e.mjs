// What a drop sets apart (issue 8, "Nothing lost, ever"):
// n5: a file the app cannot read (a TIFF, a camera RAW that is TIFF inside) is refused by its
//     first 16 bytes, listed with its reason and remembered in IndexedDB; dropped again
//     (after a reload, so from storage) it is listed without the page touching it: an init
//     script counts every slice/read of a File and every File posted to a worker. Once
//     edited (another date) it is looked at again.
// n6: one unreadable entry does not spoil a tree: a picked folder whose file is deleted on
//     disk before the page reads it is indexed whole but for that file, which is listed with
//     a plain reason; a dropped tree holding a dangling link is indexed whole (Chromium's
//     directory reader does not list the link, so the walk never meets it: the walk's own
//     "could not open" path is tested natively, page::run refused tests).

import { copyFile, mkdir, mkdtemp, rm, symlink, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, dropPaths, expect, expectNoProblems, listFiles, load, ms, openBrowser, pickFolder, readSkipped, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const WHEN = new Date(Date.UTC(2024, 4, 1, 12, 0, 0));

/** Counts, per file name, the page's reads of a File (slice, arrayBuffer, …) and the Files it posts to workers. */
const COUNT_READS = String.raw`(() => {
  const reads = (self.__e2eReads = {});
  const posted = (self.__e2ePosted = {});
  const count = (table, name) => { table[name] = (table[name] ?? 0) + 1; };
  for (const m of ["slice", "arrayBuffer", "text", "stream", "bytes"]) {
    const original = Blob.prototype[m];
    if (!original) continue;
    Blob.prototype[m] = function (...args) {
      if (this instanceof File) count(reads, this.name);
      return original.apply(this, args);
    };
  }
  const visit = (v, depth) => {
    if (v == null || depth > 5 || typeof v !== "object" || v instanceof ArrayBuffer) return;
    if (v instanceof File) return count(posted, v.name);
    for (const k of Object.keys(v)) visit(v[k], depth + 1);
  };
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message, ...rest) {
    visit(message, 0);
    return post.call(this, message, ...rest);
  };
})();`;

/** A file the `image` crate names TIFF by its head ("II*\0" little-endian, "MM\0*" big-endian, as camera RAWs). */
async function tiffLike(path, bigEndian, size = 4096) {
  const bytes = Buffer.alloc(size);
  Buffer.from(bigEndian ? [0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8] : [0x49, 0x49, 0x2a, 0x00, 8, 0, 0, 0]).copy(bytes);
  await writeFile(path, bytes);
  await utimes(path, WHEN, WHEN);
}

async function jpegFolder(dir, count, offset = 0) {
  const jpegs = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/") && f.endsWith(".jpg"));
  expect(jpegs.length >= offset + count, `fixture check: ${jpegs.length} JPEG fixtures`);
  await mkdir(dir, { recursive: true });
  for (const f of jpegs.slice(offset, offset + count)) {
    const to = join(dir, f.split("/").pop());
    await copyFile(join(IMAGES, f), to);
    await utimes(to, WHEN, WHEN);
  }
  return dir;
}

const counts = (page) => page.evaluate(() => ({ reads: { ...self.__e2eReads }, posted: { ...self.__e2ePosted } }));
const reasonOf = (page, path) => page.evaluate((p) => document.querySelector(`#skipped li[data-path="${CSS.escape(p)}"]`)?.textContent ?? null, path);

export const tests = [
  {
    name: "n5. a TIFF and a camera RAW are refused by their first bytes, listed, remembered; dropped again (after a reload) they are not read; edited, looked at again",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-refused-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const cam = await jpegFolder(join(work, "CAM"), 3);
      await tiffLike(join(cam, "scan.tif"), false);
      await tiffLike(join(cam, "shot.nef"), true);

      const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-profile-refused-"));
      t.defer(() => rm(profile, { recursive: true, force: true }));
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t, { userDataDir: profile });
      await b.context.addInitScript(COUNT_READS);
      const url = appUrl(site, hub, { model: MODEL });
      await load(b, url);
      await waitModelReady(b, hub);

      await dropPaths(b.page, "#drop-zone", [cam]);
      await waitIndexed(b, { indexed: 3, skipped: 2, hub });
      const skipped = await readSkipped(b.page);
      expect(skipped.join() === "CAM/scan.tif,CAM/shot.nef", `#skipped lists ${JSON.stringify(skipped)}, expected CAM/scan.tif and CAM/shot.nef`);
      for (const p of ["CAM/scan.tif", "CAM/shot.nef"]) {
        const why = await reasonOf(b.page, p);
        expect(/cannot read TIFF images/.test(why ?? ""), `${p} is listed with "${why}", expected the TIFF sentence`);
      }
      const first = await counts(b.page);
      t.log(`first drop: reads ${JSON.stringify(first.reads)}, posted ${JSON.stringify(first.posted)}`);
      for (const n of ["scan.tif", "shot.nef"]) {
        expect(first.reads[n] === 1, `first drop: ${n} was read ${first.reads[n] ?? 0} times, expected once (its first 16 bytes)`);
        expect(!first.posted[n], `first drop: ${n} was posted to an encoder worker ${first.posted[n]} times: it was read whole`);
      }
      expect(Object.values(first.posted).length > 0, "first drop: no File was seen posted to a worker: the counting hook does not see the page's posts", JSON.stringify(first));

      // A reload: what was refused comes back from IndexedDB; the counters start afresh.
      await b.page.reload({ waitUntil: "load" });
      const s = await waitUntil(b, (now) => now.state === "ready" || now.state === "error", { timeout: ms(60_000), what: "the page to be ready after the reload", hub });
      expect(s.state === "ready" && Number(s.indexed) === 3, `after the reload: data-state=${s.state} data-indexed=${s.indexed}`, await describe(b, hub));
      await dropPaths(b.page, "#drop-zone", [cam]);
      await waitIndexed(b, { indexed: 3, skipped: 2, hub });
      const again = await counts(b.page);
      t.log(`second drop: reads ${JSON.stringify(again.reads)}, posted ${JSON.stringify(again.posted)}`);
      for (const n of ["scan.tif", "shot.nef"]) {
        expect(!again.reads[n] && !again.posted[n], `second drop: ${n} was read ${again.reads[n] ?? 0} times and posted ${again.posted[n] ?? 0} times, expected neither`);
      }
      const why = await reasonOf(b.page, "CAM/scan.tif");
      expect(/cannot read TIFF images/.test(why ?? ""), `second drop: CAM/scan.tif is listed with "${why}"`);

      // Edited (a new date): another file to the page, looked at again; the RAW is not.
      const later = new Date(WHEN.getTime() + 60_000);
      await utimes(join(cam, "scan.tif"), later, later);
      await dropPaths(b.page, "#drop-zone", [cam]);
      await waitUntil(b, async () => ((await counts(b.page)).reads["scan.tif"] ?? 0) >= 1, { timeout: ms(30_000), what: "the edited scan.tif to be looked at", hub });
      await waitIndexed(b, { indexed: 3, skipped: 2, hub });
      const third = await counts(b.page);
      expect(third.reads["scan.tif"] === 1 && !third.posted["scan.tif"], `third drop: the edited scan.tif was read ${third.reads["scan.tif"]} times, posted ${third.posted["scan.tif"] ?? 0}`);
      expect(!third.reads["shot.nef"], `third drop: the unchanged shot.nef was read ${third.reads["shot.nef"]} times`);
      await expectNoProblems(b);
    },
  },
  {
    name: "n6. one unreadable entry (a picked file deleted before it is read) is listed, the rest indexed; a dropped tree with a dangling link is indexed whole",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-unreadable-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const tree = await jpegFolder(join(work, "TREE"), 3);
      await jpegFolder(join(tree, "sub"), 2, 3);
      await symlink(join(work, "nowhere.jpg"), join(tree, "sub", "gone.jpg"));
      const picked = await jpegFolder(join(work, "PICKED"), 4, 5);

      const { hub, site } = await startServers(t);
      // A slow model download: the picked folder waits for it, and its file is deleted meanwhile.
      hub.control.setFault({ type: "delay", file: "model.safetensors", msPer64KiB: 40 });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await pickFolder(b.page, picked);
      const victim = (await listFiles(picked)).sort().at(-1);
      await unlink(join(picked, victim));
      await waitModelReady(b, hub, { timeout: ms(180_000) });
      await waitIndexed(b, { indexed: 3, skipped: 1, hub });
      const gone = await reasonOf(b.page, `PICKED/${victim}`);
      expect(/moved or deleted/.test(gone ?? ""), `PICKED/${victim} (deleted before it was read) is listed with "${gone}", expected "…moved or deleted…"`, await describe(b, hub));

      await dropPaths(b.page, "#drop-zone", [tree]);
      await waitIndexed(b, { indexed: 3 + 5, skipped: 1, hub });
      const skipped = await readSkipped(b.page);
      expect(skipped.join() === `PICKED/${victim}`, `#skipped lists ${JSON.stringify(skipped)}, expected only PICKED/${victim}`);
      t.log(`deleted file: "${gone}"`);
      await expectNoProblems(b);
    },
  },
];
