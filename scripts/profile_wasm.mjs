#!/usr/bin/env node
// Where one image's 8-bit forward spends its time in wasm (Node, 1 thread): loads the model
// in int8 through examples/wasm_bench.rs, then, in alternating rounds in this one process,
// times the fused forward (`encode::cpu::fused`, the default), the same forward timed per
// step (`CpuEncoder::profile_images`), and the older op-by-op forward on candle tensors.
// Prints a table and the paired ratio (op by op ÷ fused per round: robust to load).
//
//   bash scripts/bench_wasm.sh builds target/bench/pkg (SKIP_BUILD=1 reuses it); then
//   node scripts/profile_wasm.mjs --pkg target/bench/pkg --model /tmp/clipseek-b32 \
//        [--rounds 5] [--batch 1] [--out target/bench/profile.json]
// KERNEL=relaxed builds (pkg-relaxed) need `node --experimental-wasm-relaxed-simd`; Node 20
// computes the relaxed dot product wrongly, so such a run is timings only.
import { createRequire } from 'node:module';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const a = { pkg: 'target/bench/pkg', model: '/tmp/clipseek-b32', rounds: 5, batch: 1, out: 'target/bench/profile.json' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in a)) throw new Error(`unknown option --${k}`);
  a[k] = typeof a[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const say = (s) => process.stderr.write(`profile_wasm: ${s}\n`);
const wasm = createRequire(import.meta.url)(resolve(a.pkg, 'wasm_bench.js'));

function loadInt8(dir) {
  const cfg = readFileSync(join(dir, 'config.json'));
  const pre = readFileSync(join(dir, 'preprocessor_config.json'));
  const tok = readFileSync(join(dir, 'tokenizer.json'));
  const fd = openSync(join(dir, 'model.safetensors'), 'r');
  try {
    const len = fstatSync(fd).size;
    const first8 = Buffer.alloc(8);
    readSync(fd, first8, 0, 8, 0);
    const front = Buffer.alloc(wasm.safetensors_header_len(first8, len));
    readSync(fd, front, 0, front.length, 0);
    const loader = new wasm.BenchLoader(cfg, pre, tok, front, len);
    const [names, offsets, sizes] = [loader.plan_names(), loader.plan_offsets(), loader.plan_sizes()];
    let buf = Buffer.alloc(0);
    for (let i = 0; i < names.length; i++) {
      if (buf.length < sizes[i]) buf = Buffer.alloc(sizes[i]);
      const view = buf.subarray(0, sizes[i]);
      let got = 0;
      while (got < sizes[i]) got += readSync(fd, view, got, sizes[i] - got, offsets[i] + got);
      loader.insert(names[i], view);
    }
    return loader.finish_int8();
  } finally {
    closeSync(fd);
  }
}

const median = (xs) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
const cosine = (x, y) => {
  let d = 0, nx = 0, ny = 0;
  for (let i = 0; i < x.length; i++) { d += x[i] * y[i]; nx += x[i] * x[i]; ny += y[i] * y[i]; }
  return d / Math.sqrt(nx * ny);
};
const time = (f) => { const t = performance.now(); f(); return performance.now() - t; };

let t = performance.now();
const m = loadInt8(a.model);
say(`int8 model loaded in ${(performance.now() - t).toFixed(0)} ms (precision ${m.precision()})`);
const b = a.batch;
m.set_fused(true);
const fusedEmb = m.embed_images(b);
m.set_fused(false);
const candleEmb = m.embed_images(b);
const cos = cosine(fusedEmb, candleEmb);
say(`fused vs op-by-op embedding cos ${cos.toFixed(7)}`);
const rounds = [];
const steps = {};
for (let r = 0; r < a.rounds; r++) {
  m.set_fused(true);
  const fused = time(() => m.embed_images(b)) / b;
  const prof = JSON.parse(m.profile_images(b));
  for (let i = 0; i < prof.length; i++) (steps[prof[i][0]] ??= []).push(prof[i][1] / b);
  m.set_fused(false);
  const candle = time(() => m.embed_images(b)) / b;
  rounds.push({ fused, candle, ratio: candle / fused });
  say(`round ${r + 1}: fused ${fused.toFixed(1)} ms/img, op by op ${candle.toFixed(1)} ms/img, ratio ${(candle / fused).toFixed(2)}×; load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
}
const out = {
  batch: b,
  rounds,
  fused_ms_per_image: median(rounds.map((r) => r.fused)),
  op_by_op_ms_per_image: median(rounds.map((r) => r.candle)),
  paired_ratio_median: median(rounds.map((r) => r.ratio)),
  cos_fused_vs_op_by_op: cos,
  steps_ms_per_image: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)])),
  load_average_end: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
};
const total = Object.values(out.steps_ms_per_image).reduce((x, y) => x + y, 0);
console.log(`\n| step (fused forward, batch ${b}) | ms per image (median of ${a.rounds}) | share |\n|---|---:|---:|`);
for (const [k, v] of Object.entries(out.steps_ms_per_image)) console.log(`| ${k} | ${v.toFixed(1)} | ${((100 * v) / total).toFixed(1)} % |`);
console.log(`\nfused ${out.fused_ms_per_image.toFixed(1)} ms/img, op by op ${out.op_by_op_ms_per_image.toFixed(1)} ms/img, paired ratio (op by op ÷ fused) median ${out.paired_ratio_median.toFixed(2)}×`);
mkdirSync(dirname(a.out), { recursive: true });
writeFileSync(a.out, JSON.stringify(out, null, 2));
