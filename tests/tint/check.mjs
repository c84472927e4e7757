// Compiles every WGSL kernel variant of the engine with Tint, the shader compiler of Dawn and
// Chrome, through the `webgpu` npm package (Dawn for Node) on its null backend: nothing runs,
// but each module is parsed and validated and each compute pipeline created, with
// `shader-f16` on, as Chrome does on a GPU that has it. Headless Chromium's WebGPU
// (SwiftShader) lacks shader-f16, so without this the f16 kernels would meet Tint only on
// users' machines. (Dawn refuses Mesa lavapipe as a Vulkan adapter, hence the null backend.)
//
//   cargo run --release --example dump_wgsl -- target/wgsl
//   node tests/tint/check.mjs target/wgsl
//
// Prints one line per failing variant and ends with the plain line `N passed, N failed`.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { create, globals } from "webgpu";

const dir = process.argv[2] ?? "target/wgsl";
Object.assign(globalThis, globals);
const gpu = create(["backend=null"]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log("FAIL Dawn's null adapter is not available\n0 passed, 1 failed");
  process.exit(1);
}
if (!adapter.features.has("shader-f16")) {
  console.log("FAIL Dawn's null adapter lacks shader-f16\n0 passed, 1 failed");
  process.exit(1);
}
const limits = {};
for (const key in adapter.limits) if (typeof adapter.limits[key] === "number") limits[key] = adapter.limits[key];
const device = await adapter.requestDevice({ requiredFeatures: ["shader-f16"], requiredLimits: limits });
let lost = null;
device.lost.then((info) => (lost = info.message));

const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
let passed = 0;
let failed = 0;
for (const entry of manifest) {
  const code = await readFile(join(dir, entry.file), "utf8");
  const problems = [];
  device.pushErrorScope("validation");
  const module = device.createShaderModule({ code, label: entry.name });
  const info = await module.getCompilationInfo();
  for (const m of info.messages) if (m.type === "error") problems.push(`${m.lineNum}:${m.linePos} ${m.message}`);
  for (const entryPoint of entry.entry_points) {
    try {
      await device.createComputePipelineAsync({ layout: "auto", compute: { module, entryPoint } });
    } catch (e) {
      problems.push(`pipeline ${entryPoint}: ${e.message}`);
    }
  }
  const error = await device.popErrorScope();
  if (error) problems.push(error.message);
  if (problems.length === 0) passed++;
  else {
    failed++;
    console.log(`FAIL ${entry.file} ${entry.name}${entry.f16 ? " [f16]" : ""}\n${problems.map((p) => `     ${p.split("\n")[0]}`).join("\n")}`);
  }
}
if (lost) {
  console.log(`FAIL the device was lost: ${lost}`);
  failed++;
}
const f16 = manifest.filter((e) => e.f16).length;
console.log(`Tint (Dawn null backend): ${manifest.length} kernel variants, ${f16} in f16`);
console.log(`${passed} passed, ${failed} failed`);
device.destroy();
process.exit(failed === 0 && passed > 0 ? 0 : 1);
