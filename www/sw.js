// clipseek's service worker (a module worker): keeps the app shell — index.html, the
// hashed app script and wasm, the stylesheet, boot.js and the encoder worker's files — so
// that after one visit the page opens with no network at all. The model and the photo
// index live in IndexedDB, not here. Every decision is in sw-core.mjs (tested in node);
// this file only carries them out:
// - install: the page's version (index.html and every file it names) is stored whole;
// - a navigation: the network first (for at most NETWORK_TIMEOUT_MS when a stored version
//   can answer), and a new version the network gave is stored whole in the background;
//   only then are the older versions' caches deleted; offline, the newest complete version;
// - a shell file: from the cache of the version that asks for it, else the network;
// - anything else (the model hub, on any origin, ranged requests): not touched.

import {
  COMPLETE_KEY,
  NETWORK_TIMEOUT_MS,
  cacheName,
  handles,
  keyOf,
  newestLast,
  pageKey,
  shellOf,
  staleCaches,
  storable,
  versionFor,
  versionOfCache,
  withTimeout,
} from "./sw-core.mjs";

const scope = () => self.registration.scope;
const completeKey = () => new URL(COMPLETE_KEY, scope()).href;
/** The version each page (client id) was served, while this worker runs. */
const clientVersions = new Map();

/**
 * The answer stored for `key` in the cache `name`, if both exist. Reads never use
 * `caches.open`, which would create the cache again when a failed version's is being
 * deleted (an empty cache left behind).
 */
async function stored(name, key) {
  return caches.match(key, { cacheName: name });
}

/** The complete versions, oldest first. */
async function completeVersions() {
  const markers = [];
  for (const name of await caches.keys()) {
    const version = versionOfCache(name);
    if (version === null) continue;
    const marker = await stored(name, completeKey());
    if (marker) markers.push({ version, at: Number(await marker.text()) || 0 });
  }
  return newestLast(markers);
}

/**
 * Stores the version of `html` (already fetched as `page`) whole: every file it names, then
 * the page, then the marker; the older versions go once it is complete. A file that cannot
 * be fetched leaves the version out (its cache deleted): the versions before it stay.
 */
async function adopt(html, page) {
  const { version, urls } = shellOf(html, scope());
  const name = cacheName(version);
  const cache = await caches.open(name);
  if (!(await cache.match(completeKey()))) {
    try {
      for (const url of urls) {
        const response = await fetch(url, { cache: "no-cache" });
        if (!storable({ method: "GET", range: null }, response)) throw new Error(`${url} answered HTTP ${response.status}`);
        await cache.put(url, response);
      }
      await cache.put(pageKey(scope()), page);
      await cache.put(completeKey(), new Response(String(Date.now())));
    } catch (error) {
      await caches.delete(name);
      console.warn(`clipseek: version ${version} was not kept for offline use (${error.message ?? error})`);
      return null;
    }
  }
  for (const stale of staleCaches(await caches.keys(), version)) await caches.delete(stale);
  return version;
}

/** Fetches a page; a whole answer's version is stored in the background (`adopted`). */
async function fetchAndAdopt(request) {
  const response = await fetch(request);
  if (!storable({ method: "GET", range: null }, response)) return { response, version: null, adopted: Promise.resolve(null) };
  const html = await response.clone().text();
  return { response, version: shellOf(html, scope()).version, adopted: adopt(html, response.clone()) };
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const { adopted } = await fetchAndAdopt(new Request(scope(), { cache: "no-cache" }));
      await adopted;
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      // Caches of the worker before this one (other names, or versions never completed).
      const complete = await completeVersions();
      const keep = complete.at(-1);
      for (const name of await caches.keys()) {
        const version = versionOfCache(name);
        if (version === null || version !== keep) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

async function navigate(event) {
  const complete = await completeVersions();
  const newest = complete.at(-1);
  const cached = async () => {
    if (!newest) return undefined;
    const response = await stored(cacheName(newest), pageKey(scope()));
    if (response && event.resultingClientId) clientVersions.set(event.resultingClientId, newest);
    return response;
  };
  try {
    const network = fetchAndAdopt(event.request);
    const { response, version, adopted } = newest ? await withTimeout(network, NETWORK_TIMEOUT_MS) : await network;
    event.waitUntil(adopted);
    if (!response.ok) return (await cached()) ?? response;
    if (version && event.resultingClientId) clientVersions.set(event.resultingClientId, version);
    return response;
  } catch (error) {
    const response = await cached();
    if (response) return response;
    throw error;
  }
}

async function shellFile(event) {
  const request = event.request;
  const version = versionFor(request.url, clientVersions.get(event.clientId), await completeVersions());
  if (version) {
    const hit = await stored(cacheName(version), keyOf(request.url));
    if (hit) return hit;
  }
  return fetch(request);
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const asked = { method: request.method, url: request.url, range: request.headers.get("range") };
  if (!handles(asked, scope())) return;
  event.respondWith(request.mode === "navigate" ? navigate(event) : shellFile(event));
});
