// The service worker's decisions, without the service worker: which requests it answers,
// what a version of the page is and which files belong to it, what may be stored, which
// version answers a request, which caches are old, and the network's time limit. www/sw.js
// imports this module and only carries the decisions out (fetch, Cache Storage); the node
// unit tests (tests/e2e/sw-core.test.mjs) check each rule.
//
// The rules, and why:
// - Only the app shell is handled: GET requests of the page's own origin for a file at the
//   top of its folder (dist/ is flat), and navigations to it, without a Range header.
//   Everything else passes straight through untouched: the model hub (also when it is
//   mirrored on the page's own origin, where its paths are `org/name/resolve/...`), its
//   ranged 206 answers, the API. Nothing but a whole 200 answer is ever stored.
// - A version is the page's build: the hash Trunk put in the app script's name. A version
//   is stored in a cache of its own, and is usable only once every file of it is stored
//   (a marker entry is written last), so that offline the HTML and the bundle always come
//   from one version; the newest complete version then makes every other cache go.
// - A shell file is the same bytes for the life of a version: it is served from its
//   version's cache when there, else from the network. A navigation goes to the network
//   first, for at most NETWORK_TIMEOUT_MS when a stored version can answer instead.

export const CACHE_PREFIX = "clipseek-shell-";
/** How long a navigation waits for the network when a stored version could answer. */
export const NETWORK_TIMEOUT_MS = 4000;
/** The entry written last into a version's cache: the version is complete. */
export const COMPLETE_KEY = "__clipseek-complete__";
/** Files of every version whose names Trunk does not hash (the hashed ones are read from index.html). */
export const FIXED = [
  "boot.js",
  "encoder-worker.js",
  "clipseek-worker.js",
  "clipseek-worker_bg.wasm",
  "clipseek-worker-relaxed.js",
  "clipseek-worker-relaxed_bg.wasm",
];

/** The cache of `version`. */
export function cacheName(version) {
  return CACHE_PREFIX + version;
}

/** The version a cache holds, or null for a cache that is not one of ours. */
export function versionOfCache(name) {
  return name.startsWith(CACHE_PREFIX) ? name.slice(CACHE_PREFIX.length) : null;
}

/** A URL without its query and fragment: the key a shell file is stored under. */
export function keyOf(url) {
  const u = new URL(url);
  u.search = "";
  u.hash = "";
  return u.href;
}

/** The key the page itself is stored under: its folder, `scope`. */
export function pageKey(scope) {
  return keyOf(scope);
}

/**
 * Whether the service worker answers `request` ({method, url, mode, range}: `range` the
 * Range header or null) for a page whose folder is `scope`.
 */
export function handles(request, scope) {
  if (request.method !== "GET" || request.range) return false;
  const url = new URL(request.url);
  const base = new URL(scope);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return false;
  const rest = url.pathname.slice(base.pathname.length);
  return !rest.includes("/");
}

/** Whether the service worker may store `response` for `request`: a whole same-origin answer. */
export function storable(request, response) {
  return request.method === "GET" && !request.range && response.status === 200 && response.type === "basic";
}

/**
 * The version of the page `html`: the hash in its app script's name (Trunk's filehash), else
 * a hash of the whole text (a build without hashed names still gets one name per content).
 */
export function versionOf(html) {
  const named = /data-clipseek-js="[^"]*?-([0-9a-f]{8,})\.js"/.exec(html);
  if (named) return named[1];
  let h = 0x811c9dc5;
  for (let i = 0; i < html.length; i++) {
    h ^= html.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `page-${h.toString(16).padStart(8, "0")}`;
}

/**
 * The files the page `html` at `scope` needs: the fixed ones and every same-origin file its
 * tags name (src, href, the app's data-clipseek-js and data-clipseek-wasm), as keys, sorted,
 * without the page itself.
 */
export function shellOf(html, scope) {
  const base = new URL(scope);
  const urls = new Set(FIXED.map((f) => keyOf(new URL(f, base))));
  for (const match of html.matchAll(/(?:src|href|data-clipseek-js|data-clipseek-wasm)="([^"#]+)"/g)) {
    let url;
    try {
      url = new URL(match[1], base);
    } catch {
      continue;
    }
    if (url.protocol !== base.protocol || url.origin !== base.origin) continue;
    if (!handles({ method: "GET", url: url.href, range: null }, scope)) continue;
    const key = keyOf(url);
    if (key !== pageKey(scope)) urls.add(key);
  }
  return { version: versionOf(html), urls: [...urls].sort() };
}

/**
 * The version that answers a request for `url`: the one its `?v=` names (the encoder
 * worker's files carry the app's hash), else the version of the page that asked
 * (`clientVersion`), else the newest complete one; null when none is stored.
 * `complete`: the complete versions, newest last.
 */
export function versionFor(url, clientVersion, complete) {
  // The page (or worker) of a version that is not stored gets its files from the network,
  // never from another version.
  const asked = new URL(url).searchParams.get("v") || clientVersion;
  if (asked) return complete.includes(asked) ? asked : null;
  return complete.at(-1) ?? null;
}

/** The caches to delete once `keep` is the version in use: every other one of ours. */
export function staleCaches(names, keep) {
  return names.filter((n) => versionOfCache(n) !== null && versionOfCache(n) !== keep);
}

/**
 * Complete versions from their markers: [{version, at}] → versions oldest first (the
 * marker's `at` is when the version was completed).
 */
export function newestLast(markers) {
  return [...markers].sort((a, b) => a.at - b.at || a.version.localeCompare(b.version)).map((m) => m.version);
}

/** `promise`, or a rejection (name "TimeoutError") after `ms`; the timer is cleared either way. */
export function withTimeout(promise, ms, timers = globalThis) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = timers.setTimeout(() => {
      const error = new Error(`no answer within ${ms} ms`);
      error.name = "TimeoutError";
      fail(error);
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => timers.clearTimeout(timer));
}
