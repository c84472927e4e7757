// A local stand-in for the Hugging Face hub, for the browser tests: serves model folders in
// the hub layout, `/<org>/<model>/resolve/<revision>/<file>`, with what the app's download
// code relies on (HEAD, Range, ETag, X-Linked-*, CORS, an optional redirect to a "CDN"
// path) and switches that make the network misbehave on purpose (cut a connection, corrupt
// bytes, stall a connection, answer an error status, go offline, slow down). Node only, no
// packages.
//
//   node scripts/hub-server.mjs --model test/tiny-clip=tests/fixtures/tiny-clip \
//        [--model ORG/NAME=DIR ...] [--port N=0] [--host H=127.0.0.1] [--redirect]
//        [--cdn-host HOST] [--opaque-cdn-etag] [--only-revision REV] [--site DIR] [--log]
//
// Port 0 (the default, or $HUB_PORT) lets the system choose; once listening, the server
// prints one JSON line on stdout: {"url": "http://127.0.0.1:PORT", "port": PORT, ...}.
//
// From another script: `const hub = await startHub({ models: { "test/tiny-clip": dir } })`,
// then `hub.url`, `hub.control` (the same operations as the HTTP control API, callable
// directly) and `await hub.close()`.
//
// Responses (as the real hub gives them, as far as the app can see):
// - `resolve`: 200 with the file, or 206 for a satisfiable `Range: bytes=a-b | a- | -n`
//   (`Content-Range: bytes a-b/size`), 416 with `Content-Range: bytes */size` when not
//   satisfiable; a malformed or multi-range header is ignored (200, the whole file).
//   `If-Range` (a matching ETag keeps the range) and `If-None-Match` (304) are honoured.
//   Headers: `Accept-Ranges: bytes`, `ETag: "<sha256 hex>"`, `Content-Length`,
//   `Cache-Control: no-store` (so that the browser's HTTP cache never hides a request from
//   the counters), and for LFS-like files (*.safetensors, *.bin, *.onnx, *.msgpack, *.h5,
//   *.pt, *.gguf) `X-Linked-Etag: "<sha256 hex>"` and `X-Linked-Size: <bytes>`.
// - `--redirect`: `resolve` of an LFS-like file answers 302 with those same X-Linked-*
//   headers and `Location: http://<cdn-host>:<port>/cdn/<org>/<model>/<revision>/<file>`,
//   which serves the bytes like `resolve` does.
// - 404 with `X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`; revisions are
//   one path segment, percent-decoded (`refs%2Fpr%2F15` is `refs/pr/15`); with
//   `--only-revision REV` every other revision is RevisionNotFound.
// - CORS on every response: `Access-Control-Allow-Origin: *`, exposed headers ETag,
//   X-Linked-Etag, X-Linked-Size, Content-Range, Content-Length, Accept-Ranges; OPTIONS
//   preflight answers 204 allowing GET, HEAD and the Range / If-Range / If-None-Match headers.
// - `--opaque-cdn-etag`: the CDN answers with an ETag that is not the file's SHA-256 (as
//   the real hub's CDN does for LFS files), so behind `--redirect` the only published hash
//   is the API's.
// - `api/models/<org>/<model>/revision/<revision>` (`?blobs=true`): the repository's files
//   as the hub's API lists them, `{"id", "sha", "siblings": [{"rfilename", "size",
//   "blobId", "lfs": {"size", "sha256", "pointerSize"}}]}` (`lfs` for LFS-like files only);
//   404 RepoNotFound / RevisionNotFound as for `resolve`.
// - `--site DIR`: any other path is a static file from DIR (so the page and the hub can share
//   one origin when a Content-Security-Policy allows only 'self').
//
// Control API (JSON; never affected by faults), under /__control:
//   GET  /__control/stats               counters: per file and every request (see stats())
//   POST /__control/reset               {"counters": true, "faults": true} (both by default)
//   GET  /__control/faults              the faults now set
//   POST /__control/fault               set one fault (see setFault()), answers the fault list
//   POST /__control/clear               remove every fault
//   GET  /__control/files               every served model file with its size and sha256

import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const CHUNK_BYTES = 64 * 1024;
const LFS_EXTENSIONS = new Set([".safetensors", ".bin", ".onnx", ".msgpack", ".h5", ".pt", ".gguf"]);
const EXPOSED_HEADERS = "ETag, X-Linked-Etag, X-Linked-Size, Content-Range, Content-Length, Accept-Ranges, X-Error-Code, Retry-After";
const MIME_TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".webmanifest": "application/manifest+json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
};

/** Is `file` stored in LFS on the real hub (so it gets X-Linked-* and the CDN redirect)? */
export function isLfsFile(file) {
  return LFS_EXTENSIONS.has(extname(file).toLowerCase());
}

/**
 * Parses a Range header against a file of `size` bytes.
 * @returns {{start: number, end: number} | "unsatisfiable" | null} end inclusive; null when
 *   there is no usable range (absent, malformed, several ranges): serve the whole file.
 */
export function parseRange(header, size) {
  if (typeof header !== "string") return null;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match) return null; // malformed or multi-range: ignored, as RFC 9110 allows
  const [, first, last] = match;
  if (first === "" && last === "") return null;
  if (first === "") {
    // suffix: the last N bytes
    const n = Number(last);
    if (n === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return null; // invalid: ignored
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  return { start, end };
}

async function sha256File(path) {
  const hash = createHash("sha256");
  await new Promise((ok, fail) => {
    createReadStream(path).on("data", (d) => hash.update(d)).on("end", ok).on("error", fail);
  });
  return hash.digest("hex");
}

function resolveInside(root, relative) {
  if (relative.includes("\0")) return null;
  const path = resolve(root, relative);
  return path.startsWith(root + sep) ? path : null;
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/**
 * Starts the hub.
 * @param {object} options
 * @param {Record<string, string>} options.models model name ("org/name") -> folder
 * @param {number} [options.port=0]
 * @param {string} [options.host="127.0.0.1"]
 * @param {boolean} [options.redirect=false] resolve of LFS files answers 302 to /cdn/...
 * @param {string} [options.cdnHost] host name in the redirect's Location (default: the
 *   request's Host name, i.e. the same origin)
 * @param {string} [options.onlyRevision] 404 for every other revision
 * @param {string} [options.site] a folder served for paths that are not hub paths
 * @param {boolean} [options.log=false] one line per request on stderr
 */
export async function startHub(options) {
  const { port = 0, host = "127.0.0.1", redirect = false, cdnHost, onlyRevision, site, log = false, opaqueCdnEtag = false } = options;
  const models = new Map();
  for (const [name, dir] of Object.entries(options.models ?? {})) {
    const root = resolve(dir);
    const info = await stat(root).catch(() => null);
    if (!info?.isDirectory()) throw new Error(`hub: model ${name}: ${root} is not a folder`);
    models.set(name.replace(/^\/+|\/+$/g, ""), root);
  }
  let siteRoot = site ? resolve(site) : null;

  // sha256 per path, recomputed when size or mtime change.
  const digests = new Map();
  async function fileInfo(path) {
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) return null;
    const key = `${info.size}:${info.mtimeMs}`;
    let cached = digests.get(path);
    if (!cached || cached.key !== key) {
      cached = { key, sha256: await sha256File(path) };
      digests.set(path, cached);
    }
    return { path, size: info.size, sha256: cached.sha256 };
  }

  // --- counters and faults ---------------------------------------------------------
  let requests = [];
  let nextId = 1;
  let faults = [];
  let nextFaultId = 1;

  /** Does a fault's target ("model.safetensors" or "test/tiny-clip/model.safetensors") match? */
  const targets = (fault, key, file) => !fault.file || fault.file === file || fault.file === key;

  /**
   * Sets a fault. Shapes:
   * - {type:"cut", file, afterBytes?: N, at?: OFFSET, count?: 1}: the next `count` GETs of
   *   the file lose their connection (socket destroyed) after N body bytes, or, with `at`,
   *   when the body reaches file offset OFFSET (only GETs whose range contains OFFSET count).
   * - {type:"corrupt", file, start, end, count?: 1, xor?: 0xff}: the next `count` GETs whose
   *   served range overlaps file bytes [start, end) have those bytes XORed (headers, sizes
   *   and ETags stay those of the true file).
   * - {type:"stall", file, afterBytes?: N, at?: OFFSET, count?: 1}: like "cut", but the
   *   connection stays open and silent after those bytes (headers sent, no more body, no
   *   end) until the client gives up and closes it.
   * - {type:"status", file, status: 500..599 | 4xx, count?: 1, retryAfter?}: the next
   *   `count` GETs of the file are answered with that status and an empty body (headers as
   *   for the file's errors: CORS, no ETag; `Retry-After: retryAfter` when given).
   * - {type:"offline", mode?: "reset" | "503"}: every non-control request is refused: the
   *   connection is reset, or answered 503. Removed by clearing faults.
   * - {type:"delay", msPer64KiB, file?}: sleep that long after each 64 KiB of body sent
   *   (for every file, or the given one). Stays until cleared.
   * - {type:"hang", path}: every request for exactly this raw path (a site page such as
   *   "/index.html", or a hub path) gets no answer at all, the connection left open until
   *   the client gives up (a network that stopped answering). Stays until cleared.
   * `file` is a file name (any model) or "org/name/file". Returns the stored fault.
   */
  function setFault(spec) {
    if (!spec || typeof spec !== "object") throw new Error("fault: expected a JSON object");
    const fault = { id: nextFaultId++, ...spec };
    switch (spec.type) {
      case "cut":
        if (!spec.file) throw new Error("cut: 'file' is required");
        if (!Number.isInteger(spec.afterBytes ?? spec.at) || (spec.afterBytes ?? spec.at) < 0) {
          throw new Error("cut: needs a non-negative integer 'afterBytes' or 'at'");
        }
        fault.remaining = spec.count ?? 1;
        fault.applied = 0;
        break;
      case "stall":
        if (!spec.file) throw new Error("stall: 'file' is required");
        if (!Number.isInteger(spec.afterBytes ?? spec.at) || (spec.afterBytes ?? spec.at) < 0) {
          throw new Error("stall: needs a non-negative integer 'afterBytes' or 'at'");
        }
        fault.remaining = spec.count ?? 1;
        fault.applied = 0;
        break;
      case "status":
        if (!spec.file) throw new Error("status: 'file' is required");
        if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
          throw new Error("status: needs an integer 'status' between 400 and 599");
        }
        fault.remaining = spec.count ?? 1;
        fault.applied = 0;
        break;
      case "corrupt":
        if (!spec.file) throw new Error("corrupt: 'file' is required");
        if (!Number.isInteger(spec.start) || !Number.isInteger(spec.end) || spec.end <= spec.start || spec.start < 0) {
          throw new Error("corrupt: needs integers 0 <= start < end");
        }
        fault.remaining = spec.count ?? 1;
        fault.xor = spec.xor ?? 0xff;
        fault.applied = 0;
        break;
      case "offline":
        fault.mode = spec.mode ?? "reset";
        if (!["reset", "503"].includes(fault.mode)) throw new Error("offline: mode is 'reset' or '503'");
        break;
      case "delay":
        if (!(Number(spec.msPer64KiB) >= 0)) throw new Error("delay: needs 'msPer64KiB' >= 0");
        fault.msPer64KiB = Number(spec.msPer64KiB);
        break;
      case "hang":
        if (typeof spec.path !== "string" || !spec.path.startsWith("/")) throw new Error("hang: needs a 'path' starting with /");
        break;
      default:
        throw new Error(`unknown fault type '${spec.type}' (cut, stall, status, corrupt, offline, delay, hang)`);
    }
    faults.push(fault);
    return fault;
  }

  function clearFaults() {
    faults = [];
  }

  function resetCounters() {
    requests = [];
  }

  /**
   * Counters: `files` maps "org/name/file" to {gets, heads, bytes (body bytes written to the
   * socket), ranges (the Range header of every GET, null when none), statuses}; `requests`
   * lists every hub request: {id, method, via ("resolve"|"cdn"), model, revision, file,
   * key, range, ifRange, status, bytes, start, end (file offsets served, end inclusive),
   * startedAt, endedAt (ms since epoch), completed, cut, stalled, corrupted, error, userAgent}.
   * Control requests are not counted.
   */
  function stats() {
    const files = {};
    for (const r of requests) {
      if (!r.key) continue;
      const f = (files[r.key] ??= { gets: 0, heads: 0, bytes: 0, ranges: [], statuses: [] });
      if (r.method === "GET") {
        f.gets++;
        f.ranges.push(r.range);
      } else if (r.method === "HEAD") f.heads++;
      f.bytes += r.bytes;
      f.statuses.push(r.status);
    }
    return { files, requests: requests.map((r) => ({ ...r })), faults: faults.map((f) => ({ ...f })) };
  }

  async function listFiles() {
    const out = {};
    for (const [name, root] of models) {
      const entries = await readdir(root, { withFileTypes: true });
      out[name] = { dir: root, files: {} };
      for (const entry of entries.filter((e) => e.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
        const info = await fileInfo(resolve(root, entry.name));
        out[name].files[entry.name] = { size: info.size, sha256: info.sha256 };
      }
    }
    return out;
  }

  const control = {
    stats,
    reset: ({ counters = true, faults: alsoFaults = true } = {}) => {
      if (counters) resetCounters();
      if (alsoFaults) clearFaults();
    },
    faults: () => faults.map((f) => ({ ...f })),
    setFault,
    clearFaults,
    files: listFiles,
    /** Serves another folder as the site from now on (a new version of the page deployed). */
    setSite: (dir) => {
      if (!siteRoot) throw new Error("setSite: the hub was started without a site");
      siteRoot = resolve(dir);
    },
  };

  // --- HTTP ----------------------------------------------------------------------------
  function cors(res) {
    res.setHeader("Access-Control-Allow-Origin", "*");
    res.setHeader("Access-Control-Expose-Headers", EXPOSED_HEADERS);
    res.setHeader("Timing-Allow-Origin", "*");
  }

  function sendText(req, res, status, body, headers = {}) {
    res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", ...headers });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  function sendJson(res, status, value) {
    const body = JSON.stringify(value);
    res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store" });
    res.end(body);
  }

  async function readBody(req) {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const text = Buffer.concat(chunks).toString("utf8").trim();
    return text ? JSON.parse(text) : {};
  }

  async function handleControl(req, res, path) {
    try {
      const route = `${req.method} ${path}`;
      if (route === "GET /__control/stats") return sendJson(res, 200, stats());
      if (route === "GET /__control/faults") return sendJson(res, 200, control.faults());
      if (route === "GET /__control/files") return sendJson(res, 200, await listFiles());
      if (route === "POST /__control/reset") {
        control.reset(await readBody(req));
        return sendJson(res, 200, { ok: true });
      }
      if (route === "POST /__control/fault") {
        const fault = setFault(await readBody(req));
        return sendJson(res, 200, { ok: true, fault, faults: control.faults() });
      }
      if (route === "POST /__control/clear") {
        clearFaults();
        return sendJson(res, 200, { ok: true });
      }
      return sendJson(res, 404, { error: `no control endpoint ${route}` });
    } catch (error) {
      return sendJson(res, 400, { error: error.message });
    }
  }

  /** Splits a hub path: /<model...>/resolve/<revision>/<file...> or /cdn/<model...>/<revision>/<file...>. */
  function parseHubPath(rawPath) {
    const segments = rawPath.split("/").slice(1);
    let decoded;
    try {
      decoded = segments.map((s) => decodeURIComponent(s));
    } catch {
      return null;
    }
    if (decoded[0] === "cdn") {
      // The model name has as many segments as the longest configured name that matches.
      for (const name of [...models.keys()].sort((a, b) => b.length - a.length)) {
        const parts = name.split("/");
        if (parts.every((p, i) => decoded[1 + i] === p) && decoded.length >= parts.length + 3) {
          return {
            via: "cdn",
            model: name,
            revision: decoded[1 + parts.length],
            file: decoded.slice(2 + parts.length).join("/"),
          };
        }
      }
      return { via: "cdn", model: null };
    }
    if (decoded[0] === "api" && decoded[1] === "models") {
      const rev = decoded.indexOf("revision", 2);
      if (rev < 3 || decoded.length !== rev + 2) return { via: "api", model: null };
      return { via: "api", model: decoded.slice(2, rev).join("/"), revision: decoded[rev + 1], file: null };
    }
    const at = decoded.indexOf("resolve");
    if (at < 1 || decoded.length < at + 3) return null;
    return {
      via: "resolve",
      model: decoded.slice(0, at).join("/"),
      revision: decoded[at + 1],
      file: decoded.slice(at + 2).join("/"),
    };
  }

  /** The hub API's model info: every file of the model folder, LFS-like ones with their SHA-256. */
  async function handleApi(req, res, hubPath, record) {
    const { model, revision } = hubPath;
    Object.assign(record, { via: "api", model, revision, file: null });
    const root = model && models.get(model);
    if (!root) return sendText(req, res, 404, `Repository not found: ${model}\n`, { "X-Error-Code": "RepoNotFound" });
    if (onlyRevision !== undefined && revision !== onlyRevision) {
      return sendText(req, res, 404, `Invalid rev id: ${revision}\n`, { "X-Error-Code": "RevisionNotFound" });
    }
    const siblings = [];
    for (const name of (await readdir(root)).sort()) {
      const info = await fileInfo(resolve(root, name));
      if (!info) continue;
      siblings.push({
        rfilename: name,
        size: info.size,
        blobId: info.sha256.slice(0, 40),
        ...(isLfsFile(name) ? { lfs: { size: info.size, sha256: info.sha256, pointerSize: 134 } } : {}),
      });
    }
    const body = Buffer.from(JSON.stringify({ id: model, sha: "0".repeat(40), siblings }));
    record.status = 200;
    record.bytes = body.length;
    record.completed = true;
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length, "Cache-Control": "no-store" });
    return res.end(req.method === "HEAD" ? undefined : body);
  }

  async function handleHub(req, res, hubPath, record) {
    const { model, revision, file, via } = hubPath;
    if (via === "api") return handleApi(req, res, hubPath, record);
    Object.assign(record, { via, model, revision, file });
    const root = model && models.get(model);
    if (!root) return sendText(req, res, 404, `Repository not found: ${model}\n`, { "X-Error-Code": "RepoNotFound" });
    if (onlyRevision !== undefined && revision !== onlyRevision) {
      return sendText(req, res, 404, `Invalid rev id: ${revision}\n`, { "X-Error-Code": "RevisionNotFound" });
    }
    const path = file && resolveInside(root, file);
    const info = path && (await fileInfo(path));
    if (!info) return sendText(req, res, 404, `Entry not found: ${file}\n`, { "X-Error-Code": "EntryNotFound" });
    record.key = `${model}/${file}`;
    // The real CDN's ETag for an LFS file is not its SHA-256 (--opaque-cdn-etag).
    const etag = opaqueCdnEtag && via === "cdn" ? `"${info.sha256.slice(0, 32)}-1"` : `"${info.sha256}"`;
    const lfs = isLfsFile(file);
    const common = {
      ETag: etag,
      "Accept-Ranges": "bytes",
      "Cache-Control": "no-store",
      ...(lfs ? { "X-Linked-Etag": etag, "X-Linked-Size": String(info.size) } : {}),
    };

    if (redirect && via === "resolve" && lfs) {
      const hostHeader = req.headers.host ?? `${host}:${server.address().port}`;
      const origin = cdnHost ? `http://${cdnHost}:${server.address().port}` : `http://${hostHeader}`;
      const location = `${origin}/cdn/${model}/${encodeURIComponent(revision)}/${file
        .split("/")
        .map(encodeURIComponent)
        .join("/")}`;
      record.status = 302;
      res.writeHead(302, { ...common, Location: location, "Content-Length": 0 });
      return res.end();
    }

    // An error status instead of the file (GETs only, taken in order).
    const failing = req.method === "GET" && faults.find((f) => f.type === "status" && f.remaining > 0 && targets(f, record.key, file));
    if (failing) {
      failing.remaining--;
      failing.applied++;
      record.status = failing.status;
      record.error = `status ${failing.status} (fault ${failing.id})`;
      faults = faults.filter((f) => !(f.type === "status" && f.remaining <= 0));
      const retry = failing.retryAfter === undefined ? {} : { "Retry-After": String(failing.retryAfter) };
      return sendText(req, res, failing.status, `test fault: HTTP ${failing.status}\n`, retry);
    }

    // Conditional requests.
    const ifNoneMatch = req.headers["if-none-match"];
    if (ifNoneMatch && ifNoneMatch.split(",").map((s) => s.trim().replace(/^W\//, "")).includes(etag)) {
      record.status = 304;
      res.writeHead(304, common);
      return res.end();
    }
    let range = parseRange(req.headers.range, info.size);
    const ifRange = req.headers["if-range"];
    record.ifRange = ifRange ?? null;
    if (range && ifRange !== undefined && ifRange.trim() !== etag) range = null; // changed: whole file
    if (range === "unsatisfiable") {
      record.status = 416;
      return sendText(req, res, 416, "Requested range not satisfiable\n", {
        ...common,
        "Content-Range": `bytes */${info.size}`,
      });
    }
    const start = range ? range.start : 0;
    const end = range ? range.end : info.size - 1; // inclusive; -1 for an empty file
    const length = end - start + 1;
    record.status = range ? 206 : 200;
    record.start = start;
    record.end = end;
    const headers = {
      ...common,
      "Content-Type": MIME_TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
      "Content-Length": String(length),
      ...(range ? { "Content-Range": `bytes ${start}-${end}/${info.size}` } : {}),
    };
    res.writeHead(record.status, headers);
    if (req.method === "HEAD" || length === 0) {
      record.completed = true;
      return res.end();
    }
    res.flushHeaders();

    // Faults that apply to this GET are taken now, so that concurrent GETs do not share one.
    const delay = faults.filter((f) => f.type === "delay" && targets(f, record.key, file)).at(-1);
    let cutAfter = Infinity; // body bytes
    const cut = faults.find((f) => {
      if ((f.type !== "cut" && f.type !== "stall") || f.remaining <= 0 || !targets(f, record.key, file)) return false;
      if (f.at !== undefined) return f.at >= start && f.at <= end;
      return true;
    });
    if (cut) {
      cut.remaining--;
      cut.applied++;
      cutAfter = cut.at !== undefined ? cut.at - start : cut.afterBytes;
      record.cutAfter = cutAfter;
    }
    const corrupt = faults.find(
      (f) => f.type === "corrupt" && f.remaining > 0 && targets(f, record.key, file) && f.start <= end && f.end > start,
    );
    if (corrupt) {
      corrupt.remaining--;
      corrupt.applied++;
      record.corrupted = [Math.max(corrupt.start, start), Math.min(corrupt.end, end + 1)];
    }
    faults = faults.filter((f) => !((f.type === "cut" || f.type === "stall" || f.type === "corrupt") && f.remaining <= 0));

    const handle = await open(info.path, "r");
    try {
      let offset = start;
      let sent = 0;
      while (offset <= end) {
        if (res.destroyed || req.socket.destroyed) {
          record.error = "client closed the connection";
          return;
        }
        let want = Math.min(CHUNK_BYTES, end + 1 - offset);
        const cutNow = sent + want >= cutAfter;
        if (cutNow) want = cutAfter - sent;
        // The delay comes before the bytes, so that a client sees all of it.
        if (delay?.msPer64KiB > 0 && want > 0) await sleep((delay.msPer64KiB * want) / CHUNK_BYTES);
        const chunk = Buffer.alloc(want);
        if (want > 0) await handle.read(chunk, 0, want, offset);
        if (corrupt) {
          const from = Math.max(corrupt.start, offset);
          const to = Math.min(corrupt.end, offset + want);
          for (let i = from; i < to; i++) chunk[i - offset] ^= corrupt.xor;
        }
        if (want > 0) {
          const flushed = new Promise((ok) => res.write(chunk, () => ok()));
          // Count what was handed to the socket (all of it reaches the client unless the
          // client goes away first).
          sent += want;
          record.bytes = sent;
          offset += want;
          if (cutNow) await flushed;
          else if (res.writableNeedDrain) {
            await new Promise((ok) => {
              const done = () => {
                res.off("drain", done);
                res.off("close", done);
                ok();
              };
              res.on("drain", done);
              res.on("close", done);
            });
          }
        }
        if (cutNow && cut.type === "stall") {
          // Silent from here on, the connection kept open until the client lets go.
          record.stalled = true;
          record.error = `stalled after ${sent} body bytes (fault ${cut.id})`;
          if (!res.destroyed) await new Promise((ok) => res.once("close", ok));
          return;
        }
        if (cutNow) {
          record.cut = true;
          record.error = `cut after ${sent} body bytes (fault ${cut.id})`;
          // Give the kernel a moment to send what was written, then drop the connection.
          await sleep(20);
          req.socket.destroy();
          return;
        }
      }
      record.completed = true;
      res.end();
    } finally {
      await handle.close();
    }
  }

  async function handleSite(req, res, rawPath) {
    let decoded;
    try {
      decoded = decodeURIComponent(rawPath);
    } catch {
      return sendText(req, res, 400, "bad path\n");
    }
    let path = resolve(siteRoot, "." + decoded);
    if (path !== siteRoot && !path.startsWith(siteRoot + sep)) return sendText(req, res, 404, "not found\n");
    let info = await stat(path).catch(() => null);
    if (info?.isDirectory()) {
      path = resolve(path, "index.html");
      info = await stat(path).catch(() => null);
    }
    if (!info?.isFile()) return sendText(req, res, 404, "not found\n");
    const body = await readFile(path);
    res.writeHead(200, {
      "Content-Type": MIME_TYPES[extname(path).toLowerCase()] ?? "application/octet-stream",
      "Content-Length": body.length,
      "Cache-Control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : body);
  }

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const rawPath = (req.url ?? "/").split("?")[0];
    cors(res);
    if (url.pathname.startsWith("/__control/")) return handleControl(req, res, url.pathname);
    if (faults.some((f) => f.type === "hang" && f.path === rawPath)) {
      requests.push({ id: nextId++, method: req.method, path: rawPath, status: "hung", bytes: 0, startedAt: Date.now(), endedAt: null, hung: true });
      return; // no answer: the socket stays open until the client closes it
    }

    const offline = faults.filter((f) => f.type === "offline").at(-1);
    if (offline) {
      requests.push({ id: nextId++, method: req.method, path: rawPath, status: "refused", bytes: 0, startedAt: Date.now(), endedAt: Date.now(), offline: true });
      if (offline.mode === "503") return sendText(req, res, 503, "offline (test fault)\n");
      return req.socket.resetAndDestroy ? req.socket.resetAndDestroy() : req.socket.destroy();
    }

    if (req.method === "OPTIONS") {
      res.writeHead(204, {
        "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
        "Access-Control-Allow-Headers":
          req.headers["access-control-request-headers"] ?? "Range, If-Range, If-None-Match, Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Content-Length": "0",
      });
      return res.end();
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendText(req, res, 405, "method not allowed\n", { Allow: "GET, HEAD, OPTIONS" });
    }

    const hubPath = parseHubPath(rawPath);
    if (!hubPath) {
      if (siteRoot) return handleSite(req, res, rawPath);
      return sendText(req, res, 404, "not a hub path (/<org>/<model>/resolve/<revision>/<file>)\n");
    }
    const record = {
      id: nextId++,
      method: req.method,
      path: rawPath,
      via: hubPath.via,
      model: null,
      revision: null,
      file: null,
      key: null,
      range: req.headers.range ?? null,
      ifRange: null,
      status: null,
      bytes: 0,
      start: null,
      end: null,
      startedAt: Date.now(),
      endedAt: null,
      completed: false,
      cut: false,
      stalled: false,
      corrupted: null,
      error: null,
      userAgent: req.headers["user-agent"] ?? null,
    };
    requests.push(record);
    res.on("close", () => {
      record.endedAt = Date.now();
      if (!record.completed && !record.error) record.error = "connection closed before the end";
      if (log) {
        const range = record.range ? ` [${record.range}]` : "";
        process.stderr.write(`hub: ${record.method} ${rawPath}${range} -> ${record.status} ${record.bytes} B${record.error ? ` (${record.error})` : ""}\n`);
      }
    });
    try {
      await handleHub(req, res, hubPath, record);
      if (record.status === null) record.status = res.statusCode;
    } catch (error) {
      record.error = `server error: ${error.message}`;
      if (!res.headersSent) sendText(req, res, 500, `${error.message}\n`);
      else res.destroy();
    }
  });
  server.keepAliveTimeout = 5_000;

  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      ok();
    });
  });
  const actualPort = server.address().port;
  return {
    url: `http://${host}:${actualPort}`,
    port: actualPort,
    host,
    control,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// --- command line -------------------------------------------------------------------------
function usage() {
  return [
    "usage: node scripts/hub-server.mjs --model ORG/NAME=DIR [--model ...] [--port N=0|$HUB_PORT]",
    "       [--host H=127.0.0.1] [--redirect] [--cdn-host HOST] [--opaque-cdn-etag] [--only-revision REV] [--site DIR] [--log]",
  ].join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const options = { models: {}, port: Number(process.env.HUB_PORT ?? 0) };
  const value = (i) => {
    if (i >= args.length) {
      console.error(`hub-server: ${args[i - 1]} needs a value\n${usage()}`);
      process.exit(2);
    }
    return args[i];
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=") && !arg.startsWith("--model=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const take = () => inline ?? value(++i);
    if (flag === "--model" || arg.startsWith("--model=")) {
      const spec = arg.startsWith("--model=") ? arg.slice("--model=".length) : value(++i);
      const eq = spec.indexOf("=");
      if (eq < 1) {
        console.error(`hub-server: --model wants NAME=DIR, got '${spec}'`);
        process.exit(2);
      }
      options.models[spec.slice(0, eq)] = spec.slice(eq + 1);
    } else if (flag === "--port") options.port = Number(take());
    else if (flag === "--host") options.host = take();
    else if (flag === "--redirect") options.redirect = true;
    else if (flag === "--cdn-host") options.cdnHost = take();
    else if (flag === "--opaque-cdn-etag") options.opaqueCdnEtag = true;
    else if (flag === "--only-revision") options.onlyRevision = take();
    else if (flag === "--site") options.site = take();
    else if (flag === "--log") options.log = true;
    else if (flag === "--help" || flag === "-h") {
      console.log(usage());
      process.exit(0);
    } else {
      console.error(`hub-server: unknown argument '${arg}'\n${usage()}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    console.error(`hub-server: bad port ${options.port}`);
    process.exit(2);
  }
  if (Object.keys(options.models).length === 0) {
    console.error(`hub-server: no --model given\n${usage()}`);
    process.exit(2);
  }
  try {
    const hub = await startHub(options);
    console.log(JSON.stringify({ url: hub.url, port: hub.port, models: options.models, redirect: !!options.redirect }));
    const stop = async () => {
      await hub.close();
      process.exit(0);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  } catch (error) {
    console.error(`hub-server: ${error.message}`);
    process.exit(1);
  }
}
