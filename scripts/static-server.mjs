// A tiny static file server for tests and local previews of dist/: GET and HEAD, correct
// MIME types (application/wasm matters: browsers only stream-compile wasm served as such),
// index.html for folders, no caching, and nothing outside the served folder.
//
//   node scripts/static-server.mjs [DIR=dist] [--port N=8000] [--host H=127.0.0.1]
//        [--connect-src ORIGIN ...]
//
// Or from another script: `const server = await serveStatic(dir, { port: 0 })`, then
// `server.url` (the port is chosen by the system when 0), `server.requests` (every request
// served: method, path, query, status) and `await server.close()`.
//
// `connectSrc` (`--connect-src`): the test build. The page's Content-Security-Policy is a
// <meta> tag in index.html whose connect-src names the Hugging Face hub only (and 'self');
// a local hub on another port is refused there, as any other site is. Given origins, every
// .html file is served with them added to that connect-src, so the browser tests (and a
// person trying a local mirror) can reach exactly those origins, with the production
// files otherwise unchanged. The production build never allows loopback ports.

import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

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
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".map": "application/json",
};

/**
 * `html` with `origins` added to the connect-src of its Content-Security-Policy <meta> tag
 * (the test build, see the top of this file). Throws when there is no such directive:
 * a page whose policy cannot be found must not be served as if it were patched.
 */
export function allowConnect(html, origins) {
  for (const o of origins) {
    if (!/^https?:\/\/[A-Za-z0-9.\-]+(:\d+)?$/.test(o)) throw new Error(`static-server: --connect-src ${o} is not an http(s) origin`);
  }
  let found = 0;
  const out = html.replace(/(<meta\s+http-equiv="Content-Security-Policy"\s+content="[^"]*?connect-src)( )/i, (_, head, space) => {
    found += 1;
    return `${head} ${origins.join(" ")}${space}`;
  });
  if (found !== 1) throw new Error("static-server: index.html has no Content-Security-Policy connect-src to add the test origins to");
  return out;
}

/** Resolves a request path inside `root`, or returns null if it would leave it. */
function resolveInside(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const path = resolve(root, "." + decoded);
  return path === root || path.startsWith(root + sep) ? path : null;
}

async function findFile(path) {
  try {
    const info = await stat(path);
    if (info.isFile()) return { path, size: info.size };
    if (info.isDirectory()) return await findFile(join(path, "index.html"));
  } catch {
    // fall through: not found
  }
  return null;
}

/**
 * Serves `dir` on `host:port` (port 0: any free port). Resolves once listening.
 * @returns {Promise<{url: string, port: number, close: () => Promise<void>}>}
 */
export async function serveStatic(dir, { port = 0, host = "127.0.0.1", log = false, connectSrc = [] } = {}) {
  const root = resolve(dir);
  const requests = [];
  const server = createServer(async (req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8" });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(405, "method not allowed\n");
    }
    const parsed = new URL(req.url ?? "/", "http://localhost");
    const urlPath = parsed.pathname;
    const path = resolveInside(root, urlPath);
    const file = path && (await findFile(path));
    requests.push({ t: Date.now(), method: req.method, path: urlPath, search: parsed.search, status: file ? 200 : 404 });
    if (log) console.log(`${req.method} ${urlPath} ${file ? 200 : 404}`);
    if (!file) return send(404, "not found\n");
    if (connectSrc.length > 0 && extname(file.path).toLowerCase() === ".html") {
      const body = Buffer.from(allowConnect(await readFile(file.path, "utf8"), connectSrc));
      res.writeHead(200, { "content-type": MIME_TYPES[".html"], "content-length": body.length, "cache-control": "no-store" });
      return res.end(req.method === "HEAD" ? undefined : body);
    }
    res.writeHead(200, {
      "content-type": MIME_TYPES[extname(file.path).toLowerCase()] ?? "application/octet-stream",
      "content-length": file.size,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    if (req.method === "HEAD") return res.end();
    createReadStream(file.path)
      .on("error", () => res.destroy())
      .pipe(res);
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, ok);
  });
  const actualPort = server.address().port;
  return {
    url: `http://${host}:${actualPort}/`,
    port: actualPort,
    requests,
    close: () =>
      new Promise((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

// Command-line use.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  let dir = "dist";
  let port = 8000;
  let host = "127.0.0.1";
  const connectSrc = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--port") port = Number(args[++i]);
    else if (args[i] === "--connect-src") connectSrc.push(args[++i]);
    else if (args[i] === "--host") host = args[++i];
    else if (args[i] === "--help" || args[i] === "-h") {
      console.log("usage: node scripts/static-server.mjs [DIR=dist] [--port N=8000] [--host H=127.0.0.1] [--connect-src ORIGIN ...]");
      process.exit(0);
    } else dir = args[i];
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`static-server: bad --port ${port}`);
    process.exit(2);
  }
  const server = await serveStatic(dir, { port, host, log: true, connectSrc });
  console.log(`serving ${resolve(dir)} at ${server.url}`);
}
