// Crash budget per photo (issue 8, "Nothing lost, ever"): a photo that kills its encoder
// worker twice is listed as skipped with a plain reason, the run goes on on a fresh worker
// in the dead one's slot, and no number of such photos ends the run. The crashes are made
// by a worker prelude (distWithWorkerPrelude) that throws, uncaught, whenever an `encode`
// message carries a file whose name starts with "crash-": the page sees the worker's error
// event exactly as for a trap or an out-of-memory.

import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGES, appUrl, describe, distWithWorkerPrelude, dropPaths, expect, expectNoProblems, listFiles, load, openBrowser, startServers, waitIndexed, waitModelReady } from "./helpers.mjs";

const MODEL = "test/tiny-clip";
const GOOD = 6;
const CRASHERS = ["crash-a.jpg", "crash-b.jpg", "crash-c.jpg"];

// A worker handles one message at a time, in order, so a real crash happens while the job
// it dies on runs, after the jobs before it were answered. The prelude keeps that order: a
// job with a "crash-" file is held until every job before it was answered ("encoded"),
// then the worker throws (from a timer: an uncaught error, the worker's error event);
// whatever arrives after it is never handled, as in a dead worker.
const CRASH_ON_NAME = String.raw`(() => {
  let owner = self;
  while (owner && !Object.getOwnPropertyDescriptor(owner, "onmessage")) owner = Object.getPrototypeOf(owner);
  const slot = Object.getOwnPropertyDescriptor(owner, "onmessage");
  let pending = 0;
  let doomed = false;
  const die = () => setTimeout(() => { throw new Error("e2e: a photo that kills the encoder"); }, 0);
  const post = self.postMessage.bind(self);
  self.postMessage = (message, ...rest) => {
    post(message, ...rest);
    if (message && message.kind === "encoded") {
      pending -= 1;
      if (doomed && pending === 0) die();
    }
  };
  Object.defineProperty(self, "onmessage", {
    configurable: true,
    get() { return slot.get.call(self); },
    set(handler) {
      slot.set.call(self, (event) => {
        if (doomed) return undefined;
        const d = event.data;
        const encode = d && d.kind === "encode";
        const files = encode ? Array.from(d.files || []) : [];
        if (files.some((f) => typeof f.name === "string" && f.name.startsWith("crash-"))) {
          doomed = true;
          if (pending === 0) die();
          return undefined;
        }
        if (encode) pending += 1;
        return handler(event);
      });
    },
  });
})();`;

export const tests = [
  {
    name: "n2. three photos that each kill the encoder: each skipped after two crashes, the rest indexed, the run goes on",
    timeoutMs: 240_000,
    realAppOnly: true,
    async run(t) {
      const work = await mkdtemp(join(tmpdir(), "clipseek-e2e-crashes-"));
      t.defer(() => rm(work, { recursive: true, force: true }));
      const folder = join(work, "crashy");
      await mkdir(folder, { recursive: true });
      const jpegs = (await listFiles(IMAGES)).filter((f) => !f.startsWith("bad/") && f.endsWith(".jpg"));
      for (const f of jpegs.slice(0, GOOD)) await copyFile(join(IMAGES, f), join(folder, f));
      for (const [i, name] of CRASHERS.entries()) await copyFile(join(IMAGES, jpegs[GOOD + i]), join(folder, name));

      const dist = await distWithWorkerPrelude(t, CRASH_ON_NAME);
      const { hub, site } = await startServers(t, { dist });
      const b = await openBrowser(t);
      await load(b, appUrl(site, hub, { model: MODEL, workers: 1 }));
      await waitModelReady(b, hub);
      await dropPaths(b.page, "#drop-zone", [folder]);
      await waitIndexed(b, { indexed: GOOD, skipped: CRASHERS.length, hub });
      const listed = await b.page.evaluate(() =>
        [...document.querySelectorAll("#skipped li[data-path]")].map((li) => ({ path: li.dataset.path, why: li.querySelector(".why")?.textContent ?? "" })),
      );
      const names = listed.map((l) => l.path.split("/").pop()).sort();
      expect(names.join() === CRASHERS.join(), `#skipped lists ${JSON.stringify(names)}, expected ${JSON.stringify(CRASHERS)}`, await describe(b, hub));
      for (const l of listed) expect(/stopped twice/.test(l.why), `the reason given for ${l.path} is "${l.why}", expected the plain "stopped twice" sentence`);
      const state = await b.page.evaluate(() => document.getElementById("status").dataset.state);
      expect(state === "ready", `after the run data-state is ${state}`);
      await expectNoProblems(b, { allow: ["console.error", /kills the encoder/] });
    },
  },
];
