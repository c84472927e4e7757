// Picking a folder (issue 3, e2e b): the shapes pictures (nested folders) through
// #folder-input (webkitdirectory) with the shapes-clip model, trained so that rankings mean
// something: "red circle" must put the four red circles on top, and every query ranks as
// the native CLI does.

import { MODELS, QUERIES, SHAPES, appUrl, cliReference, expect, expectNoProblems, expectSameRanking, expectThumbnails, load, normalisePagePath, openBrowser, pickFolder, readSkipped, startServers, waitIndexed, waitModelReady } from "./helpers.mjs";

const MODEL = "test/shapes-clip";

export const tests = [
  {
    name: "b. pick a folder (setInputFiles): shapes, 'red circle' tops with the 4 red circles, results equal the CLI",
    timeoutMs: 240_000,
    async run(t) {
      const ref = await cliReference(MODELS[MODEL], SHAPES, QUERIES[MODEL]);
      expect(ref.indexed === 64 && ref.skipped.length === 0, `fixture check: the CLI indexed ${ref.indexed} shapes and skipped ${ref.skipped.length}`);
      const top4 = ref.queries["red circle"].slice(0, 4).map((m) => m.path.split("/").pop());
      expect(top4.every((f) => f.startsWith("red-circle-")), `fixture check: the CLI's top 4 for "red circle" are ${top4}`);

      const { hub, site } = await startServers(t);
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL }));
      await waitModelReady(b, hub);
      await pickFolder(b.page, SHAPES);
      await waitIndexed(b, { indexed: 64, skipped: 0, hub });
      const skipped = await readSkipped(b.page, "shapes");
      expect(skipped.length === 0, `#skipped lists ${skipped.length} files, but every shape picture is good: ${skipped.slice(0, 5)}`);

      const shown = await expectSameRanking(b, "red circle", ref, { rootName: "shapes", minCount: 8, hub });
      const names = shown.items.slice(0, 4).map((r) => normalisePagePath(r.path, "shapes").split("/").pop());
      expect(names.every((n) => n.startsWith("red-circle-")), `"red circle": the top 4 results are ${names.join(", ")}, expected the four red-circle-* pictures`);
      expectThumbnails(shown, `query "red circle"`);
      for (const q of QUERIES[MODEL].filter((q) => q !== "red circle")) {
        await expectSameRanking(b, q, ref, { rootName: "shapes", hub });
      }
      await expectNoProblems(b);
    },
  },
];
