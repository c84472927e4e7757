// Photos only the browser decodes (issue 12 item 3, e2e r1): an AVIF, which our decoders
// refuse by format, is decoded in the vision worker by Chromium (createImageBitmap ->
// OffscreenCanvas), then resized and normalised as ours are. It is indexed, found by a
// query, marked "decoded by the browser" on its tile and in the exported manifest, and its
// embedding agrees with the CLI's embedding of the same picture as PNG within a stated
// tolerance (the browser's AV1 decode is not PIL-exact: cos >= 0.999, scores within 0.01).
// A corrupt AVIF is still listed as refused, with our sentence and the browser's.

import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { CLI, FIXTURES, MODELS, SHAPES, appUrl, expect, expectThumbnails, load, openBrowser, pickFolder, search, startServers, waitIndexed, waitModelReady } from "./helpers.mjs";

const MODEL = "test/shapes-clip";
const FOLDER = join(FIXTURES, "browser-decode");
const PNG = join(SHAPES, "warm/red-circle-2.png");
const MIN_COS = 0.999;
const SCORE_TOL = 0.01;

/** The CLI's embedding of files or texts. */
async function cliEmbed(kind, values) {
  const { stdout } = await promisify(execFile)(CLI, ["embed", "--model", MODELS[MODEL], "--json", kind, ...values], { maxBuffer: 1 << 26 });
  const out = JSON.parse(stdout);
  return (kind === "--image" ? out.images : out.texts).map((x) => x.embedding);
}

/** The manifest and the embedding rows of a stored (uncompressed) export archive. */
function readArchive(bytes) {
  const npyAt = bytes.indexOf(Buffer.from("\x93NUMPY", "latin1"));
  const headerLen = bytes.readUInt16LE(npyAt + 8);
  const header = bytes.subarray(npyAt + 10, npyAt + 10 + headerLen).toString("latin1");
  const [rows, cols] = header.match(/'shape': \((\d+), (\d+)\)/).slice(1).map(Number);
  const data = npyAt + 10 + headerLen;
  const row = (r) => Array.from({ length: cols }, (_, c) => bytes.readFloatLE(data + 4 * (r * cols + c)));
  const start = bytes.indexOf(Buffer.from('{\n  "format"'));
  const end = bytes.indexOf(Buffer.from("PK\x01\x02", "latin1"), start);
  const manifest = JSON.parse(bytes.subarray(start, end).toString("utf8"));
  return { manifest, rows: Array.from({ length: rows }, (_, r) => row(r)) };
}

const dot = (a, b) => a.reduce((s, v, i) => s + v * b[i], 0);

async function tileMark(page, name) {
  return page.evaluate((name) => {
    const li = [...document.querySelectorAll("#results > li[data-path]")].find((el) => el.dataset.path.endsWith(name));
    const mark = li?.querySelector(".decoder-mark");
    return li ? { decoder: li.dataset.decoder ?? null, text: mark?.textContent ?? null, title: mark?.title ?? null } : null;
  }, name);
}

export const tests = [
  {
    name: "r1. an AVIF decoded by the browser: indexed, found, marked on its tile and in the export, its embedding near the CLI's of the PNG; a corrupt AVIF refused",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const [png] = await cliEmbed("--image", [PNG]);
      const [text] = await cliEmbed("--text", ["red circle"]);
      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      await pickFolder(b.page, FOLDER);
      await waitIndexed(b, { indexed: 1, skipped: 1, hub });

      const skipped = await b.page.evaluate(() => [...document.querySelectorAll("#skipped li[data-path]")].map((li) => [li.dataset.path, li.textContent]));
      expect(skipped.length === 1 && skipped[0][0].endsWith("broken.avif"), `#skipped should list broken.avif alone: ${JSON.stringify(skipped)}`);
      expect(/AVIF/.test(skipped[0][1]) && /this browser cannot decode it either/.test(skipped[0][1]), `broken.avif's reason names AVIF and the browser's refusal: ${skipped[0][1]}`);

      const shown = await search(b, "red circle", { hub });
      expect(shown.items.length === 1 && shown.items[0].path.endsWith("red-circle.avif"), `"red circle" finds the AVIF: ${JSON.stringify(shown.items)}`);
      expectThumbnails(shown, "the AVIF's tile");
      const score = Number(shown.items[0].score);
      const cliScore = dot(png, text);
      expect(Math.abs(score - cliScore) <= SCORE_TOL, `"red circle" scores the AVIF ${score}, the CLI the PNG ${cliScore.toFixed(4)} (tolerance ${SCORE_TOL})`);
      const mark = await tileMark(b.page, "red-circle.avif");
      expect(mark?.decoder === "browser" && mark.text === "decoded by the browser" && /not by clipseek's PIL-exact decoders/.test(mark.title ?? ""), `the tile is marked: ${JSON.stringify(mark)}`);

      const dir = await mkdtemp(join(tmpdir(), "clipseek-r1-"));
      try {
        const file = join(dir, "export.zip");
        const [download] = await Promise.all([b.page.waitForEvent("download"), b.page.locator("#export-button").click()]);
        await download.saveAs(file);
        const { manifest, rows } = readArchive(await readFile(file));
        expect(manifest.photos.length === 1 && manifest.photos[0].decoder === "browser", `the manifest marks the photo: ${JSON.stringify(manifest.photos)}`);
        const cos = dot(rows[0], png);
        console.log(JSON.stringify({ metric: "r1.avif_vs_png_cos", value: cos, score, cliScore }));
        expect(cos >= MIN_COS, `the AVIF's embedding has cos ${cos} with the CLI's of the PNG (bar ${MIN_COS})`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }

      // Kept by a reload: the mark is in the stored record.
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub, { expectDownload: false });
      await search(b, "red circle", { hub });
      const again = await tileMark(b.page, "red-circle.avif");
      expect(again?.decoder === "browser", `after a reload the tile is still marked: ${JSON.stringify(again)}`);
    },
  },
];
