// Crash safety (issue 10, item 2): the tab is closed in the middle of an indexing run. The
// next visit holds exactly the photos the page had reported saved (data-indexed when the
// tab went), each whole (its record with an embedding of the model's width, and its
// thumbnail), and dropping the same folder again encodes only the others.
//
// To close the tab at a moment that is both mid-run and exact, the first visit's page
// holds back the encoder's answers after its first three batches (an init script around
// Worker.prototype.onmessage): the run waits for them, three batches are saved and
// reported, and the tab is closed then. The second visit counts every photo the page
// sends to an encoder (around Worker.prototype.postMessage).

import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, dropPaths, expect, expectNoProblems, listFiles, load, ms, openBrowser, sleep, snapshot, startServers, waitIndexed, waitModelReady, waitUntil } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const HOLD_AFTER_BATCHES = 3;
const BATCH = 4;

// First visit: answers of the photo encoders beyond the first HOLD_AFTER_BATCHES are never
// handed to the page (window.__e2eHeld counts them).
const HOLD_ANSWERS = String.raw`(() => {
  const slot = Object.getOwnPropertyDescriptor(Worker.prototype, "onmessage");
  let answered = 0;
  window.__e2eHeld = 0;
  Object.defineProperty(Worker.prototype, "onmessage", {
    configurable: true,
    get() { return slot.get.call(this); },
    set(handler) {
      slot.set.call(this, handler && ((event) => {
        const d = event.data;
        if (d && d.kind === "encoded") {
          if (answered >= ${HOLD_AFTER_BATCHES}) { window.__e2eHeld += 1; return undefined; }
          answered += 1;
        }
        return handler(event);
      }));
    },
  });
})();`;

// Second visit: the name of every file the page sends to an encoder.
const COUNT_SENT = String.raw`(() => {
  const post = Worker.prototype.postMessage;
  window.__e2eSent = [];
  Worker.prototype.postMessage = function (message, ...rest) {
    if (message && message.kind === "encode") for (const f of Array.from(message.files || [])) window.__e2eSent.push(f.name);
    return post.call(this, message, ...rest);
  };
})();`;

/** What the store holds: every photo's key, whether its record is whole, and its thumbnail. */
async function storedPhotos(page) {
  return page.evaluate(
    () =>
      new Promise((ok, fail) => {
        const open = indexedDB.open("clipseek");
        open.onerror = () => fail(open.error);
        open.onsuccess = () => {
          const db = open.result;
          const tx = db.transaction(["photos", "thumbs"], "readonly");
          const photos = tx.objectStore("photos").getAll();
          const thumbs = tx.objectStore("thumbs").getAllKeys();
          tx.oncomplete = () => {
            const withThumb = new Set(thumbs.result.map(String));
            ok(
              photos.result.map((r) => ({
                path: r.path,
                dim: r.embedding?.length ?? r.embedding?.byteLength / 4 ?? 0,
                thumb: withThumb.has(r.path),
              })),
            );
            db.close();
          };
          tx.onerror = () => fail(tx.error);
        };
      }),
  );
}

export const tests = [
  {
    name: "n7. the tab closed mid-run: the next visit holds exactly the photos reported saved, whole; a re-drop encodes only the rest",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-crash-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const folder = join(work, "album");
      await mkdir(folder, { recursive: true });
      const good = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/"));
      const names = good.map((f, i) => `p${String(i).padStart(2, "0")}-${f.split("/").pop()}`);
      for (const [i, f] of good.entries()) await copyFile(join(IMAGES, f), join(folder, names[i]));
      const total = names.length;

      const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-profile-crash-"));
      t.defer(() => rm(profile, { recursive: true, force: true }));
      const { hub, site } = await startServers(t);
      const url = appUrl(site, hub, { model: MODEL, workers: 1 });

      const first = await openBrowser(t, { userDataDir: profile });
      await first.context.addInitScript(HOLD_ANSWERS);
      await load(first, url);
      await waitModelReady(first, hub);
      await dropPaths(first.page, "#drop-zone", [folder]);
      const saved = HOLD_AFTER_BATCHES * BATCH;
      await waitUntil(first, async (s) => Number(s.indexed) >= saved && (await first.page.evaluate(() => window.__e2eHeld)) > 0, {
        timeout: ms(120_000),
        what: `${saved} photos saved and the next answer held back`,
        hub,
      });
      await sleep(1_500); // nothing more may arrive: the run waits for the held answers
      const cut = await snapshot(first.page);
      expect(cut.state === "indexing", `the run should still be going when the tab is closed, data-state=${cut.state}`);
      expect(Number(cut.indexed) === saved, `when the tab was closed the page reported data-indexed=${cut.indexed}, expected ${saved}`, await describe(first, hub));
      await first.page.close({ runBeforeUnload: false });
      await first.close();

      const second = await openBrowser(t, { userDataDir: profile });
      await second.context.addInitScript(COUNT_SENT);
      await load(second, url);
      const opened = await waitUntil(second, (s) => s.state === "ready" || s.state === "error", { timeout: ms(60_000), what: "the second visit to be ready", hub });
      expect(opened.state === "ready" && Number(opened.indexed) === saved, `the second visit holds data-indexed=${opened.indexed} (${opened.state}), expected the ${saved} reported saved`, await describe(second, hub));
      const stored = await storedPhotos(second.page);
      const broken = stored.filter((p) => p.dim <= 0 || !p.thumb);
      expect(stored.length === saved, `the store holds ${stored.length} photo records, expected ${saved}`, stored.map((p) => p.path).join("\n"));
      expect(broken.length === 0, `${broken.length} stored photos are half-written (no embedding or no thumbnail):`, broken.map((p) => JSON.stringify(p)).join("\n"));

      await dropPaths(second.page, "#drop-zone", [folder]);
      await waitIndexed(second, { indexed: total, skipped: 0, hub });
      const line = await second.page.locator("#index-text").textContent();
      const rest = total - saved;
      expect(new RegExp(`^Indexed ${rest} new photos, ${saved} unchanged`).test(line.trim()), `#index-text says "${line.trim()}", expected "Indexed ${rest} new photos, ${saved} unchanged …"`);
      const sent = (await second.page.evaluate(() => window.__e2eSent)).sort();
      const storedNames = new Set(stored.map((p) => p.path.split("/").pop()));
      const expected = names.filter((n) => !storedNames.has(n)).sort();
      expect(JSON.stringify(sent) === JSON.stringify(expected), `the re-drop sent ${sent.length} photos to the encoder, expected exactly the ${expected.length} not saved before`, `sent again: ${sent.filter((n) => storedNames.has(n)).join(", ") || "none"}\nmissing: ${expected.filter((n) => !sent.includes(n)).join(", ") || "none"}`);
      await expectNoProblems(second);
    },
  },
];
