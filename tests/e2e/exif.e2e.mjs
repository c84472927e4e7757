// The date a photo was taken (issue 11, "sort by date taken"): JPEGs whose EXIF
// DateTimeOriginal disagrees with their file's time sort and filter by the EXIF date in the
// page, still after a reload (the date is kept on the stored record), and the page's export
// and the CLI's `index` + `export` both put it in manifest.json as `taken`.
//
// The photos are the shapes JPEGs with an EXIF block spliced in after their JFIF header,
// built here byte by byte (little-endian TIFF; both byte orders are native tests).

import { copyFile, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFile } from "node:child_process";
import { CLI, MODELS, SHAPES, appUrl, expect, expectNoProblems, load, openBrowser, pickFolder, readResults, search, sleep, startServers, waitIndexed, waitModelReady } from "./helpers.mjs";

const MODEL = "test/shapes-clip";
const DAY = 86_400_000;
const FILE_DAY_0 = Date.UTC(2022, 5, 1, 12);

// name, source, EXIF wall clock (null: none), its offset, and the instant that means.
const PHOTOS = [
  { name: "a.jpg", source: "warm/red-circle-1.jpg", wall: "2021:03:10 08:00:00", offset: "+09:00", taken: Date.UTC(2021, 2, 9, 23, 0) },
  { name: "b.jpg", source: "warm/red-circle-3.jpg", wall: "2021:03:09 23:30:00", offset: null, taken: Date.UTC(2021, 2, 9, 23, 30) },
  { name: "c.jpg", source: "warm/red-square-2.jpg", wall: "2019:07:01 10:00:00", offset: null, taken: Date.UTC(2019, 6, 1, 10) },
  { name: "d.jpg", source: "warm/red-square-4.jpg", wall: null, offset: null, taken: null },
  { name: "e.jpg", source: "warm/red-star-2.jpg", wall: "2023:01:15 06:00:00", offset: "-05:00", taken: Date.UTC(2023, 0, 15, 11) },
  { name: "f.jpg", source: "cool/green-circle-2.jpg", wall: "garbage date here!!", offset: null, taken: null },
];

/** A little-endian TIFF block: IFD0 -> Exif IFD with DateTimeOriginal (+ OffsetTimeOriginal). */
function exifBlock(wall, offset) {
  const values = [Buffer.from(`${wall}\0`, "latin1")];
  if (offset) values.push(Buffer.from(`${offset}\0`, "latin1"));
  const tags = [0x9003, 0x9011].slice(0, values.length);
  const exifAt = 8 + 2 + 12 + 4;
  const exifLen = 2 + 12 * tags.length + 4;
  const head = Buffer.alloc(exifAt + exifLen);
  head.write("II", 0, "latin1");
  head.writeUInt16LE(42, 2);
  head.writeUInt32LE(8, 4);
  head.writeUInt16LE(1, 8);
  head.writeUInt16LE(0x8769, 10);
  head.writeUInt16LE(4, 12);
  head.writeUInt32LE(1, 14);
  head.writeUInt32LE(exifAt, 18);
  head.writeUInt32LE(0, 22);
  head.writeUInt16LE(tags.length, exifAt);
  let dataAt = exifAt + exifLen;
  tags.forEach((tag, i) => {
    const e = exifAt + 2 + 12 * i;
    head.writeUInt16LE(tag, e);
    head.writeUInt16LE(2, e + 2);
    head.writeUInt32LE(values[i].length, e + 4);
    head.writeUInt32LE(dataAt, e + 8);
    dataAt += values[i].length;
  });
  return Buffer.concat([head, ...values]);
}

/** `jpeg` with an APP1 Exif segment after its APP0 (JFIF) header. */
function withExif(jpeg, tiff) {
  expect(jpeg[0] === 0xff && jpeg[1] === 0xd8 && jpeg[2] === 0xff && jpeg[3] === 0xe0, "fixture check: a JFIF JPEG");
  const app0End = 4 + jpeg.readUInt16BE(4);
  const body = Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff]);
  const app1 = Buffer.alloc(4);
  app1.writeUInt16BE(0xffe1, 0);
  app1.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, app0End), app1, body, jpeg.subarray(app0End)]);
}

/** TMP/trip holding PHOTOS, photo i's file modified on day i (the order EXIF contradicts). */
async function tripFolder(t) {
  const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-exif-"));
  t.defer(() => rm(work, { recursive: true, force: true }));
  const dir = join(work, "trip");
  await mkdir(dir, { recursive: true });
  for (const [i, p] of PHOTOS.entries()) {
    const to = join(dir, p.name);
    if (p.wall) await writeFile(to, withExif(await readFile(join(SHAPES, p.source)), exifBlock(p.wall, p.offset)));
    else await copyFile(join(SHAPES, p.source), to);
    p.modified = FILE_DAY_0 + i * DAY;
    await utimes(to, new Date(p.modified), new Date(p.modified));
  }
  return { work, dir };
}

/** The names, in order, that a sort by date taken (EXIF, else file time) gives. */
function expectedOrder(newestFirst) {
  const date = (p) => p.taken ?? p.modified;
  const sorted = [...PHOTOS].sort((x, y) => date(x) - date(y));
  return (newestFirst ? sorted.reverse() : sorted).map((p) => p.name);
}

async function shownNames(b) {
  await sleep(400);
  return (await readResults(b.page)).items.map((r) => r.path.split("/").pop());
}

/** The `photos` of manifest.json in a stored (uncompressed) zip, by file name. */
async function manifestPhotos(zipFile) {
  const zip = await readFile(zipFile);
  for (let at = 0; at + 30 < zip.length; ) {
    expect(zip.readUInt32LE(at) === 0x04034b50, `${zipFile}: no local header at ${at}`);
    const size = zip.readUInt32LE(at + 18);
    const nameLen = zip.readUInt16LE(at + 26);
    const extraLen = zip.readUInt16LE(at + 28);
    const name = zip.subarray(at + 30, at + 30 + nameLen).toString();
    const start = at + 30 + nameLen + extraLen;
    if (name === "manifest.json") {
      const manifest = JSON.parse(zip.subarray(start, start + size).toString());
      return new Map(manifest.photos.map((p) => [p.path.split("/").pop(), p]));
    }
    at = start + size;
  }
  throw new Error(`${zipFile} has no manifest.json`);
}

function expectTaken(photos, what) {
  for (const p of PHOTOS) {
    const got = photos.get(p.name);
    expect(got, `${what}: ${p.name} is not in manifest.json`);
    expect((got.taken ?? null) === p.taken, `${what}: ${p.name} has taken ${got.taken}, expected ${p.taken}`);
    expect(got.modified === p.modified, `${what}: ${p.name} has modified ${got.modified}, expected ${p.modified}`);
  }
}

function cli(args) {
  return new Promise((ok, fail) => {
    execFile(CLI, args, { timeout: 120_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      if (error) fail(new Error(`clipseek ${args.join(" ")} failed: ${error.message}\n${stderr}`));
      else ok(stdout);
    });
  });
}

export const tests = [
  {
    name: "x1. photos whose file times and EXIF dates disagree sort and filter by the EXIF date taken (offset honoured, file time when none), after a reload too; the page's export and the CLI's carry it",
    realAppOnly: true,
    timeoutMs: 240_000,
    async run(t) {
      const { work, dir } = await tripFolder(t);
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      await pickFolder(b.page, dir);
      await waitIndexed(b, { indexed: PHOTOS.length, skipped: 0, hub });
      const page = b.page;

      const check = async (when) => {
        await search(b, "red circle", { hub });
        for (const [sort, newest] of [["oldest", false], ["newest", true]]) {
          await page.locator("#sort-by").selectOption(sort);
          const got = await shownNames(b);
          const want = expectedOrder(newest);
          expect(JSON.stringify(got) === JSON.stringify(want), `${when}, ${sort} first: ${got.join(" ")}, expected ${want.join(" ")} (file times say a..f)`);
        }
        // 2021-03-09 holds a (08:00 at +09:00 is 23:00 UTC the day before) and b (no offset).
        await page.locator("#date-from").fill("2021-03-09");
        await page.locator("#date-to").fill("2021-03-09");
        const day = await shownNames(b);
        expect(JSON.stringify(day) === JSON.stringify(["b.jpg", "a.jpg"]), `${when}, 2021-03-09 newest first: ${day.join(" ")}`);
        await page.locator("#date-from").fill("");
        await page.locator("#date-to").fill("");
        await page.locator("#sort-by").selectOption("score");
      };
      await check("after indexing");
      await page.reload();
      await waitModelReady(b, hub, { expectDownload: false });
      await check("after a reload");

      // The page's archive names each date taken; so do the CLI's index and export.
      const pageZip = join(work, "page.zip");
      const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#export-button").click()]);
      await download.saveAs(pageZip);
      expectTaken(await manifestPhotos(pageZip), "the page's export");
      const indexFile = join(work, "cli.index");
      const cliZip = join(work, "cli.zip");
      await cli(["index", "--model", MODELS[MODEL], "--json", "--out", indexFile, dir]);
      await cli(["export", "--index", indexFile, "--out", cliZip, "--json"]);
      expectTaken(await manifestPhotos(cliZip), "the CLI's export");
      await expectNoProblems(b);
    },
  },
];
