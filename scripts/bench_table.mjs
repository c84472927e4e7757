#!/usr/bin/env node
// Prints the comparison table of BENCHMARKS.md (markdown) from the JSON the benchmarks
// wrote, with every ms figure's ratio to onnxruntime-web fp32 (Node, 1 thread) of the same
// session. Inputs (any may be missing; its rows are then left out):
//   --wasm target/bench/wasm.json          scripts/bench_wasm.mjs (clipseek wasm in Node)
//   --ort target/bench/ort-web.json        shared/peers bench_ort.mjs --runtimes web --threads 1
//   --torch PATH                           shared/peers bench_torch.py --threads 1 (out/torch.json)
//   --criterion LABEL=DIR (repeatable)     a CRITERION_HOME of `cargo bench --bench engine`
//   --rank DIR                             a CRITERION_HOME of `cargo bench --bench rank`
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const a = { wasm: 'target/bench/wasm.json', ort: 'target/bench/ort-web.json', torch: null, criterion: [], rank: null };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i].replace(/^--/, '');
  const v = process.argv[++i];
  if (k === 'criterion') a.criterion.push(v);
  else if (k in a) a[k] = v;
  else throw new Error(`unknown option --${k}`);
}
const load = (p) => (p && existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : null);

// Criterion keeps each benchmark's estimates (ns per iteration) in
// DIR/<group>/<function>/new/estimates.json; it writes spaces in names as is.
function criterion(dir, group, fn) {
  const e = load(join(dir, group, fn, 'new', 'estimates.json'));
  const s = load(join(dir, group, fn, 'new', 'sample.json'));
  if (!e) return null;
  let min = null;
  if (s) min = Math.min(...s.times.map((t, i) => t / s.iters[i])) / 1e6;
  return { median_ms: e.median.point_estimate / 1e6, min_ms: min };
}

const rows = []; // {name, threads, b1, b8, qshort, q77, note}
const wasm = load(a.wasm);
const ort = load(a.ort);
const torch = load(a.torch);
const m = (s, div = 1) => (s ? { med: s.median_ms / div, min: s.min_ms == null ? null : s.min_ms / div } : null);

if (ort) {
  for (const c of ort.configs || []) {
    for (const r of c.results || []) {
      rows.push({
        name: `onnxruntime-web ${c.version} wasm (Node ${ort.node}), ${r.variant}`,
        key: `ort-${r.variant}`,
        threads: c.threads,
        b1: m(r.vision?.b1),
        b8: m(r.vision?.b8, 8),
        qshort: null,
        q77: m(r.text?.q1),
        other: Math.max(...[r.vision?.b1, r.vision?.b8, r.text?.q1].map((s) => s?.other_cores_busy ?? 0)),
      });
    }
  }
}
if (wasm) {
  rows.unshift({
    name: `**clipseek wasm32 +simd128 (Node ${wasm.node}), f32**`,
    key: 'ours-wasm',
    threads: 1,
    b1: m(wasm.vision?.b1),
    b8: m(wasm.vision?.b8, 8),
    qshort: m(wasm.text?.short),
    q77: m(wasm.text?.long77),
    other: Math.max(...[wasm.vision?.b1, wasm.vision?.b8, wasm.text?.short, wasm.text?.long77].map((s) => s?.other_cores_busy ?? 0)),
  });
}
for (const spec of a.criterion) {
  const [label, dir] = spec.split('=');
  rows.push({
    name: `clipseek native (candle, Criterion), f32`,
    key: `native-${label}`,
    threads: label,
    b1: m(criterion(dir, 'vit-b32', 'image batch 1')),
    b8: m(criterion(dir, 'vit-b32', 'image batch 8'), 8),
    qshort: m(criterion(dir, 'vit-b32', 'query short')),
    q77: m(criterion(dir, 'vit-b32', 'query 77 tokens')),
    other: null,
  });
}
if (torch) {
  for (const c of torch.configs || []) {
    if (c.error) continue;
    rows.push({
      name: `PyTorch ${c.torch} eager CPU (${c.attn_implementation}), f32`,
      key: `torch-${c.threads}`,
      threads: c.threads,
      b1: m(c.vision?.b1),
      b8: m(c.vision?.b8, 8),
      qshort: null,
      q77: m(c.text?.q1),
      other: Math.max(...[c.vision?.b1, c.vision?.b8, c.text?.q1].map((s) => s?.other_cores_busy ?? 0)),
    });
  }
}

const base = rows.find((r) => r.key === 'ort-fp32');
const cell = (v, ref) => {
  if (!v) return '—';
  let s = v.med.toFixed(1);
  if (v.min != null) s += ` (min ${v.min.toFixed(1)})`;
  if (ref) s += ` · **${(v.med / ref.med).toFixed(2)}×**`;
  return s;
};
console.log('| engine | threads | ms/image b1 | ms/image b8 (÷8) | ms/query short (6 tok) | ms/query 77 tok | other load |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.threads} | ${cell(r.b1, base?.b1)} | ${cell(r.b8, base?.b8)} | ${cell(r.qshort, base?.q77)} | ${cell(r.q77, base?.q77)} | ${r.other == null ? '—' : r.other.toFixed(2)} |`);
}

console.log('');
const pre = wasm?.preprocess?.jpeg_12mp;
const nat = a.criterion.map((spec) => {
  const [label, dir] = spec.split('=');
  return [label, criterion(dir, 'preprocess', 'decode + preprocess 12 MP JPEG')];
});
console.log('| decode + preprocess 12 MP JPEG | ms (median, min) |');
console.log('|---|---:|');
if (pre) console.log(`| clipseek wasm (Node, 1 thread) | ${pre.median_ms.toFixed(1)} (min ${pre.min_ms.toFixed(1)}) |`);
for (const [label, v] of nat) if (v) console.log(`| clipseek native, ${label} thread(s) | ${v.median_ms.toFixed(1)} (min ${v.min_ms?.toFixed(1)}) |`);

console.log('');
console.log('| top-10 over N random 512-d embeddings | ms (median, min) |');
console.log('|---|---:|');
for (const [k, v] of Object.entries(wasm?.index || {})) {
  console.log(`| clipseek wasm (Node, 1 thread), N = ${v.entries} | ${v.median_ms.toFixed(2)} (min ${v.min_ms.toFixed(2)}) |`);
}
if (a.rank) {
  for (const n of ['10000', '100000']) {
    const v = criterion(a.rank, 'search_top10_512d', n);
    if (v) console.log(`| clipseek native (Criterion \`rank\`), N = ${n} | ${v.median_ms.toFixed(2)} (min ${v.min_ms?.toFixed(2)}) |`);
  }
}

// Paired rounds (our engine and onnxruntime-web in one process, taking turns): ratios
// from the same rounds, which stay fair when the machine's load changes during a run.
const pr = wasm?.paired;
if (pr) {
  console.log('');
  console.log(`Paired rounds in one Node process (onnxruntime-web ${pr.onnxruntime_web}, ${pr.warmup} warm-up calls per engine, then rounds of one call each; text ≥15 rounds). Cell: median ms (min) · median of the per-round ratios to onnxruntime-web fp32.`);
  console.log('');
  const shapes = ['b1', 'b8', 'text', 'text_short'];
  const head = { b1: 'ms/image b1', b8: 'ms/image b8 (÷8)', text: 'ms/query 77 tok', text_short: 'ms/query short (6 tok)' };
  const names = Object.keys(pr.shapes.b1?.engines || {});
  console.log(`| engine (1 thread) | ${shapes.map((s) => head[s]).join(' | ')} |`);
  console.log(`|---|${shapes.map(() => '---:').join('|')}|`);
  for (const n of names) {
    const cells = shapes.map((s) => {
      const e = pr.shapes[s]?.engines?.[n];
      if (!e) return '—';
      let c = `${e.median_ms.toFixed(1)} (min ${e.min_ms.toFixed(1)})`;
      if (e.median_of_round_ratios != null) c += ` · **${e.median_of_round_ratios.toFixed(2)}×**`;
      // onnxruntime-web always computes all 77 positions: compare the short query with that
      const ref = pr.shapes.text?.engines?.['onnxruntime-web fp32'];
      if (s === 'text_short' && ref) c += ` · **${(e.median_ms / ref.median_ms).toFixed(2)}×**`;
      return c;
    });
    console.log(`| ${n} | ${cells.join(' | ')} |`);
  }
  console.log(`| other load (cores, median / max over rounds) | ${shapes.map((s) => `${pr.shapes[s]?.other_cores_busy_median} / ${pr.shapes[s]?.other_cores_busy_max}`).join(' | ')} |`);
}
