// Folder identity (issue 8, "Nothing lost, ever"): two different folders both called DCIM,
// with the same file names and other photos (two phones), are two folders. Dropping the
// second must add its photos beside the first's (data-indexed = the sum), both sets must be
// found with the CLI's scores, a reload must keep both, and a re-drop of the first folder
// lacking a photo must keep that photo until "Forget 1 photo no longer in DCIM" is pressed.

import { copyFile, mkdir, mkdtemp, rm, stat, utimes } from "node:fs/promises";
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
  expectNoProblems,
  listFiles,
  load,
  ms,
  openBrowser,
  rankingTable,
  search,
  startServers,
  waitIndexed,
  waitUntil,
  waitModelReady,
} from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const PER_PHONE = 8;
/** A whole second, so that copies made later carry exactly the same date. */
const WHEN = new Date(Date.UTC(2024, 4, 1, 12, 0, 0));

const name = (i) => `IMG_${String(i + 1).padStart(4, "0")}.jpg`;

/** `dir/DCIM/IMG_000k.jpg` from `sources`, dated WHEN. */
async function phone(dir, sources) {
  const dcim = join(dir, "DCIM");
  await mkdir(dcim, { recursive: true });
  for (const [i, src] of sources.entries()) {
    const to = join(dcim, name(i));
    await copyFile(src, to);
    await utimes(to, WHEN, WHEN);
  }
  return dcim;
}

/** The page's results for `query` split by folder, each compared with that folder's CLI ranking. */
async function expectBothFolders(b, hub, query, refA, refB, when) {
  const shown = await search(b, query, { hub });
  expect(shown.items.length === 2 * PER_PHONE, `${when}: "${query}" shows ${shown.items.length} results, expected all ${2 * PER_PHONE} photos of both folders`);
  const a = shown.items.filter((r) => r.path.startsWith("DCIM/"));
  const second = shown.items.filter((r) => !r.path.startsWith("DCIM/"));
  expect(a.length === PER_PHONE, `${when}: ${a.length} results are in DCIM/, expected ${PER_PHONE}`, shown.items.map((r) => r.path).join("\n"));
  const otherRoots = [...new Set(second.map((r) => r.path.split("/")[0]))];
  expect(otherRoots.length === 1 && otherRoots[0] !== "DCIM", `${when}: the second DCIM's photos should sit under one other folder name, found ${JSON.stringify(otherRoots)}`);
  for (const [items, ref, root] of [[a, refA, "DCIM"], [second, refB, otherRoots[0]]]) {
    const problems = compareRanking(items, ref.queries[query], { rootName: root, minCount: PER_PHONE });
    expect(problems.length === 0, `${when}: the photos of ${root} differ from the CLI's ranking of that folder:`, `${problems.slice(0, 10).join("\n")}\n${rankingTable(items, ref.queries[query], root)}`);
  }
  return otherRoots[0];
}

export const tests = [
  {
    name: "n1. two different folders named DCIM with the same file names: both kept, both found, a reload keeps both; a re-drop lacking a photo offers to forget it",
    timeoutMs: 300_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-folders-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const jpegs = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/") && f.endsWith(".jpg")).map((f) => join(IMAGES, f));
      expect(jpegs.length >= 2 * PER_PHONE, `fixture check: ${jpegs.length} JPEG fixtures, need ${2 * PER_PHONE}`);
      const dirA = await phone(join(work, "phone-a"), jpegs.slice(0, PER_PHONE));
      const dirB = await phone(join(work, "phone-b"), jpegs.slice(PER_PHONE, 2 * PER_PHONE));
      for (let i = 0; i < PER_PHONE; i++) {
        const [sa, sb] = [await stat(join(dirA, name(i))), await stat(join(dirB, name(i)))];
        expect(sa.size !== sb.size, `fixture check: ${name(i)} has the same size in both phones (${sa.size})`);
      }
      const queries = QUERIES[MODEL];
      const refA = await cliReference(MODELS[MODEL], dirA, queries);
      const refB = await cliReference(MODELS[MODEL], dirB, queries);
      expect(refA.indexed === PER_PHONE && refB.indexed === PER_PHONE, `fixture check: the CLI indexed ${refA.indexed} and ${refB.indexed}`);

      const profile = await mkdtemp(join(tmpdir(), "clipseek-e2e-profile-folders-"));
      t.defer(() => rm(profile, { recursive: true, force: true }));
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t, { userDataDir: profile });
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      await dropPaths(b.page, "#drop-zone", [dirA]);
      await waitIndexed(b, { indexed: PER_PHONE, skipped: 0, hub });
      await dropPaths(b.page, "#drop-zone", [dirB]);
      await waitIndexed(b, { indexed: 2 * PER_PHONE, skipped: 0, hub });
      const root = await expectBothFolders(b, hub, queries[0], refA, refB, "after the second drop");
      t.log(`the second DCIM is stored as "${root}"`);
      const forgetShown = await b.page.evaluate(() => !document.getElementById("forget-button")?.hidden);
      expect(!forgetShown, "after dropping a different folder, the page offers to forget photos: nothing is missing from any folder");

      await b.page.reload({ waitUntil: "load" });
      const s = await waitUntil(b, (now) => now.state === "ready" || now.state === "error", { timeout: ms(60_000), what: "the page to be ready after the reload", hub });
      expect(s.state === "ready" && Number(s.indexed) === 2 * PER_PHONE, `after the reload: data-state=${s.state} data-indexed=${s.indexed}, expected ready with ${2 * PER_PHONE}`, await describe(b, hub));
      await expectBothFolders(b, hub, queries[1] ?? queries[0], refA, refB, "after the reload");

      // The first phone again, without its last photo: nothing is removed unasked.
      const dirA2 = join(work, "phone-a-again", "DCIM");
      await mkdir(dirA2, { recursive: true });
      for (let i = 0; i < PER_PHONE - 1; i++) {
        await copyFile(join(dirA, name(i)), join(dirA2, name(i)));
        await utimes(join(dirA2, name(i)), WHEN, WHEN);
      }
      await dropPaths(b.page, "#drop-zone", [dirA2]);
      const forget = b.page.locator("#forget-button");
      await forget.waitFor({ state: "visible", timeout: ms(30_000) });
      const label = (await forget.textContent())?.trim();
      expect(label === "Forget 1 photo no longer in DCIM", `#forget-button says "${label}", expected "Forget 1 photo no longer in DCIM"`);
      const kept = await b.page.evaluate(() => Number(document.getElementById("status").dataset.indexed));
      expect(kept === 2 * PER_PHONE, `a re-drop lacking a photo left data-indexed=${kept}, expected ${2 * PER_PHONE} (the default keeps it)`, await describe(b, hub));
      await forget.click();
      await waitUntil(b, (now) => Number(now.indexed) === 2 * PER_PHONE - 1, { timeout: ms(10_000), what: `data-indexed=${2 * PER_PHONE - 1} after "Forget"`, hub });
      const after = await search(b, queries[0], { hub });
      const gone = after.items.filter((r) => r.path === `DCIM/${name(PER_PHONE - 1)}`);
      expect(gone.length === 0 && after.items.length === 2 * PER_PHONE - 1, `after "Forget": ${after.items.length} results, DCIM/${name(PER_PHONE - 1)} ${gone.length ? "still shown" : "gone"}`);
      await expectNoProblems(b);
    },
  },
];
