// clipseek's service worker: keeps the app shell (index.html, the hashed app script and
// wasm, the stylesheet, boot.js and the encoder worker's files) so that after one visit the
// page opens with no network at all. The model and the photo index live in IndexedDB, not
// here, and nothing else is ever cached: requests to other origins (the model hub) pass
// straight through.
//
// Strategy: network first, falling back to the cache (and refreshing it on every
// successful answer). A new deployment is therefore picked up at the next online visit,
// and the hashed file names keep index.html and its script and wasm consistent.

const CACHE = "clipseek-shell-v1";
// Files without hashed names; the hashed ones are read from index.html.
const FIXED = [
  "./",
  "boot.js",
  "encoder-worker.js",
  "clipseek-worker.js",
  "clipseek-worker_bg.wasm",
  "clipseek-worker-relaxed.js",
  "clipseek-worker-relaxed_bg.wasm",
];

async function shellUrls() {
  const response = await fetch("./", { cache: "no-cache" });
  const html = await response.text();
  // Absolute URLs, so that no file is listed twice (addAll refuses duplicates).
  const urls = new Set(FIXED.map((path) => new URL(path, self.registration.scope).href));
  for (const match of html.matchAll(/(?:src|href|data-clipseek-js|data-clipseek-wasm)="([^"#]+)"/g)) {
    const url = new URL(match[1], self.registration.scope);
    if (url.origin === self.location.origin) urls.add(url.href);
  }
  return [...urls];
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(await shellUrls());
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name !== CACHE) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) return;
  // Only files inside the app's own folder.
  if (!url.href.startsWith(self.registration.scope)) return;
  event.respondWith(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        const response = await fetch(request);
        if (response.ok && response.type === "basic") {
          // Stored without the query (?v=, ?hub=…) so any variant finds it offline.
          const key = new URL(url.href);
          key.search = "";
          await cache.put(request.mode === "navigate" ? "./" : key.href, response.clone());
        }
        return response;
      } catch (error) {
        const cached =
          (await cache.match(request, { ignoreSearch: true })) ??
          (request.mode === "navigate" ? await cache.match("./") : undefined);
        if (cached) return cached;
        throw error;
      }
    })(),
  );
});
