// Starts the wasm app. Trunk writes the hashed names of the wasm-bindgen module and its
// .wasm into this script tag's data attributes (see pattern_script in Trunk.toml); the
// loader lives in this file rather than inline because the page's CSP allows only
// scripts from 'self'. It then registers the service worker (www/sw.js, a module worker
// importing www/sw-core.mjs) that keeps the app shell for offline visits.
const tag = document.querySelector("script[data-clipseek-js]");
const status = document.getElementById("status");

try {
  if (!tag) throw new Error("the page has no app script tag");
  const bindings = await import(new URL(tag.dataset.clipseekJs, document.baseURI).href);
  await bindings.default({
    module_or_path: new URL(tag.dataset.clipseekWasm, document.baseURI),
  });
} catch (error) {
  console.error(error);
  if (status) {
    status.dataset.state = "error";
    status.textContent = `clipseek could not start: ${error.message ?? error}`;
  }
}

// Offline app shell. Service workers need a secure context (https or localhost); without
// one the page still works, only not offline.
if ("serviceWorker" in navigator && window.isSecureContext) {
  navigator.serviceWorker.register(new URL("sw.js", document.baseURI), { type: "module" }).catch((error) => {
    console.warn(`clipseek: no offline copy of the page (${error.message ?? error})`);
  });
}
