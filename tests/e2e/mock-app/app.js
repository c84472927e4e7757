// The mock page (see index.html): the page contract in plain JavaScript, to check that the
// e2e tests pass against a page that behaves. Scores come from refs.json (the native CLI's).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const hub = (params.get("hub") ?? "https://huggingface.co").replace(/\/+$/, "");
const model = params.get("model") ?? "openai/clip-vit-base-patch32";
const revision = params.get("revision") ?? "refs/pr/15";
const FILES = ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"];
const status = $("status");
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

let verifyFailures = 0;
let skipped = [];
let refs = null;
// run.mjs --mock-bug NAME: misbehave on purpose, to check that the tests notice.
let bug = "";

function setState(state, text) {
  status.dataset.state = state;
  status.dataset.backend = "cpu";
  status.dataset.verifyFailures = String(verifyFailures);
  if (text !== undefined) status.textContent = text;
}

// --- IndexedDB ---------------------------------------------------------------------------------
const dbPromise = new Promise((ok, fail) => {
  const req = indexedDB.open("clipseek-mock", 1);
  req.onupgradeneeded = () => {
    const db = req.result;
    db.createObjectStore("meta");
    db.createObjectStore("chunks");
    db.createObjectStore("photos", { keyPath: "path" });
  };
  req.onsuccess = () => ok(req.result);
  req.onerror = () => fail(req.error);
});
async function tx(store, mode, fn) {
  const db = await dbPromise;
  return new Promise((ok, fail) => {
    const t = db.transaction(store, mode);
    const result = fn(t.objectStore(store));
    t.oncomplete = () => ok(result?.result ?? result);
    t.onerror = () => fail(t.error);
    t.onabort = () => fail(t.error);
  });
}
const idbGet = (store, key) => tx(store, "readonly", (s) => s.get(key));
const idbPut = (store, value, key) => tx(store, "readwrite", (s) => (key === undefined ? s.put(value) : s.put(value, key)));
const idbAll = (store) => tx(store, "readonly", (s) => s.getAll());
const idbDeleteRange = (store, range) => tx(store, "readwrite", (s) => s.delete(range));

// --- model download ------------------------------------------------------------------------------
const CHUNK = 256 * 1024;
const fileKey = (file) => `${model}@${revision}/${file}`;
const fileUrl = (file) => `${hub}/${model}/resolve/${encodeURIComponent(revision)}/${file}`;

async function storedChunks(key) {
  const all = await tx("chunks", "readonly", (s) => s.getAll(IDBKeyRange.bound([key, 0], [key, Infinity])));
  return all;
}

async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function downloadAll() {
  const metas = [];
  for (const file of FILES) {
    const meta = await idbGet("meta", fileKey(file));
    metas.push(meta);
  }
  if (metas.every((m) => m?.verified)) return; // everything here: no network at all
  setState("downloading", "Downloading the model…");
  const heads = [];
  for (const file of FILES) {
    const r = await fetch(fileUrl(file), { method: "HEAD", cache: "no-store" });
    if (bug === "no-resume" && !(await idbGet("meta", fileKey(file)))?.verified) {
      await idbDeleteRange("chunks", IDBKeyRange.bound([fileKey(file), 0], [fileKey(file), Infinity]));
    }
    if (!r.ok) throw new Error(`${file}: HTTP ${r.status}`);
    const size = Number(r.headers.get("x-linked-size") ?? r.headers.get("content-length"));
    const etag = (r.headers.get("x-linked-etag") ?? r.headers.get("etag") ?? "").replace(/^W\//, "").replace(/"/g, "");
    heads.push({ file, size, etag });
  }
  const total = heads.reduce((a, h) => a + h.size, 0);
  const have = new Map();
  const progress = $("model-progress");
  progress.max = total;
  if (bug === "indeterminate") progress.removeAttribute("value");
  const update = () => {
    if (bug === "indeterminate") return;
    progress.value = [...have.values()].reduce((a, b) => a + b, 0);
  };
  for (const { file, size, etag } of heads) {
    const key = fileKey(file);
    let meta = await idbGet("meta", key);
    if (!meta || meta.etag !== etag || meta.size !== size) {
      await idbDeleteRange("chunks", IDBKeyRange.bound([key, 0], [key, Infinity]));
      meta = { etag, size, verified: false };
      await idbPut("meta", meta, key);
    }
    let chunks = await storedChunks(key);
    have.set(file, chunks.reduce((a, c) => a + c.size, 0));
    update();
    let failures = 0;
    while (!meta.verified) {
      let offset = have.get(file);
      if (offset < size) {
        try {
          const r = await fetch(fileUrl(file), { headers: { Range: `bytes=${offset}-` }, cache: "no-store" });
          if (r.status !== 206 && r.status !== 200) throw new Error(`HTTP ${r.status}`);
          if (r.status === 200 && offset > 0) throw new Error("the hub ignored Range");
          const reader = r.body.getReader();
          let buffered = [];
          let bufferedBytes = 0;
          const flush = async () => {
            if (bufferedBytes === 0) return;
            const blob = new Blob(buffered);
            const index = chunks.length;
            await idbPut("chunks", blob, [key, index]);
            chunks.push(blob);
            offset += bufferedBytes;
            buffered = [];
            bufferedBytes = 0;
          };
          try {
            for (;;) {
              const { done, value } = await reader.read();
              if (done) break;
              buffered.push(value);
              bufferedBytes += value.length;
              have.set(file, offset + bufferedBytes);
              update();
              if (bufferedBytes >= CHUNK) await flush();
            }
          } finally {
            await flush(); // keep what arrived, even when the connection broke
            have.set(file, offset);
            update();
          }
        } catch (error) {
          failures++;
          if (bug === "no-resume") {
            await idbDeleteRange("chunks", IDBKeyRange.bound([key, 0], [key, Infinity]));
            chunks = [];
            have.set(file, 0);
          }
          if (failures > 20) throw error;
          status.textContent = `Connection lost (${error.message}); resuming…`;
          await sleep(300);
          continue;
        }
      }
      const blob = new Blob(chunks);
      const digest = /^[0-9a-f]{64}$/.test(etag) ? await sha256Hex(blob) : null;
      if (bug !== "no-verify" && (blob.size !== size || (digest !== null && digest !== etag))) {
        verifyFailures++;
        setState("downloading", `Verification failed for ${file} (sha256 mismatch): downloading it again.`);
        await idbDeleteRange("chunks", IDBKeyRange.bound([key, 0], [key, Infinity]));
        chunks = [];
        have.set(file, 0);
        update();
        continue;
      }
      meta = { ...meta, verified: true };
      await idbPut("meta", meta, key);
    }
  }
}

// --- indexing ------------------------------------------------------------------------------------
const MAGIC = [[0xff, 0xd8, 0xff], [0x89, 0x50, 0x4e, 0x47], [0x47, 0x49, 0x46], [0x52, 0x49, 0x46, 0x46], [0x42, 0x4d]];

function lookup(table, path) {
  if (!table) return undefined;
  if (path in table) return table[path];
  for (const key of Object.keys(table)) if (path.endsWith("/" + key)) return table[key];
  return undefined;
}

async function classify(file, path) {
  const m = refs?.models?.[model];
  if (m) {
    if (m.skipped.some((s) => s === path || path.endsWith("/" + s))) return "skipped by the reference";
    if (lookup(m.indexed, path) !== undefined) return null;
  }
  const head = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  if (head.length === 0) return "The file is empty.";
  return MAGIC.some((sig) => sig.every((b, i) => head[i] === b)) ? null : "Not an image.";
}

async function indexFiles(entries) {
  setState("indexing", `Indexing ${entries.length} files…`);
  const progress = $("index-progress");
  progress.max = entries.length;
  progress.value = 0;
  let done = 0;
  for (const { file, path } of entries) {
    const problem = await classify(file, path);
    if (problem) {
      skipped.push({ path, problem });
      const li = document.createElement("li");
      if (bug !== "no-skipped-list") li.dataset.path = path;
      li.textContent = `${path}: ${problem}`;
      $("skipped").append(li);
    } else {
      await idbPut("photos", { path, blob: file.slice(0, file.size, file.type) });
    }
    done++;
    progress.value = done;
    await sleep(15);
    await showCounts();
  }
  await showCounts();
  setState("ready", `Indexed. Type to search.`);
}

async function showCounts() {
  const photos = await tx("photos", "readonly", (s) => s.count());
  status.dataset.indexed = String(photos);
  status.dataset.skipped = String(skipped.length);
}

async function walk(entry, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, fail) => entry.file(ok, fail));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, "") });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (batch.length === 0) break;
      for (const e of batch) await walk(e, out);
    }
  }
}

// --- search --------------------------------------------------------------------------------------
async function runQuery(query) {
  const results = $("results");
  for (const img of results.querySelectorAll("img")) URL.revokeObjectURL(img.src);
  results.replaceChildren();
  results.dataset.query = query;
  if (!query.trim()) return;
  const scores = refs?.models?.[model]?.scores?.[query] ?? {};
  const photos = await idbAll("photos");
  const ranked = photos
    .map((p, i) => ({ ...p, i, score: lookup(scores, p.path) ?? 0 }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, 40);
  if (bug === "wrong-order") [ranked[2], ranked[3]] = [ranked[3], ranked[2]];
  if (bug === "score-off") for (const r of ranked) r.score += 0.002;
  if (bug === "root-stripped") for (const r of ranked) r.path = r.path.split("/").slice(1).join("/");
  for (const p of ranked) {
    const li = document.createElement("li");
    li.dataset.path = p.path;
    li.dataset.score = p.score.toFixed(4);
    const img = document.createElement("img");
    img.src = URL.createObjectURL(p.blob);
    img.alt = p.path;
    img.width = 96;
    li.append(img, document.createTextNode(` ${p.score.toFixed(4)}`));
    results.append(li);
  }
}

let debounce;
$("query").addEventListener("input", () => {
  clearTimeout(debounce);
  debounce = setTimeout(() => runQuery($("query").value), 250);
});
$("query").addEventListener("keydown", (e) => {
  if (e.key === "Enter") {
    clearTimeout(debounce);
    runQuery($("query").value);
  }
});

// --- start ---------------------------------------------------------------------------------------
const zone = $("drop-zone");
zone.addEventListener("dragover", (e) => e.preventDefault());
zone.addEventListener("dragenter", (e) => e.preventDefault());
zone.addEventListener("drop", async (e) => {
  e.preventDefault();
  const entries = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
  const out = [];
  for (const entry of entries) await walk(entry, out);
  await indexFiles(out);
});
for (const id of ["folder-input", "files-input"]) {
  $(id).addEventListener("change", (e) => {
    const files = [...e.target.files].map((file) => ({ file, path: file.webkitRelativePath || file.name }));
    indexFiles(files);
  });
}

try {
  refs = await fetch("./refs.json").then((r) => r.json());
  bug = refs.bug ?? "";
  if (bug === "no-restore") await tx("photos", "readwrite", (s) => s.clear());
  if ("serviceWorker" in navigator && bug !== "no-sw") navigator.serviceWorker.register("./sw.js").catch((e) => console.warn(e));
  setState("loading", "Loading…");
  await showCounts();
  if (bug === "ready-early") setState("ready", "Ready (too early).");
  await downloadAll();
  setState("loading", "Loading the model…");
  await sleep(200);
  setState("ready", "Ready. Drop a folder of photos.");
} catch (error) {
  setState("error", `Could not get the model: ${error.message}`);
}
