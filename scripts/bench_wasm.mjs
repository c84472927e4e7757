#!/usr/bin/env node
// Times clipseek's wasm32 (+simd128) engine in Node, one thread, with the peer harness's
// rules (tests: shared/peers/bench_ort.mjs): WARMUP untimed calls, then the median and min
// of RUNS timed calls (text: max(RUNS, 15)), each row with this process's CPU time and the
// CPU that *other* processes used meanwhile (from /proc/stat), so a loaded machine shows.
//
// Run by scripts/bench_wasm.sh, which builds the wasm and the model first. Alone:
//   node scripts/bench_wasm.mjs --pkg target/bench/pkg --model /tmp/clipseek-b32 \
//        [--runs 5] [--warmup 3] [--index-sizes 10000,100000] [--out target/bench/wasm.json] \
//        [--paired-ort /tmp/peers --onnx /tmp/peer-models/onnx --rounds 7]
//
// Measures: model load (tensor by tensor), ms/image at batch 1 and 8 on deterministic pixels,
// ms/query for a short query and one filling all 77 positions, decode + preprocess of a
// 12 MP JPEG, top-10 over random 512-d unit vectors in an EmbeddingIndex. Checks the first
// embedding values against the native engine's (native-fingerprint.json next to the model).
// With --paired-ort (a set-up copy of shared/peers), also times onnxruntime-web fp32 and int8
// in this same process, in alternating rounds with our engine (see `paired` below).
import { createRequire } from 'node:module';
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import os from 'node:os';

const SHORT_QUERY = 'kids on their bikes';
const LONG_QUERY = 'word '.repeat(100);

function parseArgs(argv) {
  const a = {
    pkg: 'target/bench/pkg',
    model: '/tmp/clipseek-b32',
    runs: 5,
    warmup: 3,
    'index-sizes': '10000,100000',
    'paired-ort': '',
    onnx: '/tmp/peer-models/onnx',
    rounds: 0,
    k: 10,
    out: 'target/bench/wasm.json',
  };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (!(k in a)) throw new Error(`unknown option --${k}`);
    a[k] = argv[++i];
  }
  a.runs = Number(a.runs);
  a.warmup = Number(a.warmup);
  a.k = Number(a.k);
  a.rounds = Number(a.rounds) || Math.max(a.runs, 7);
  return a;
}

function stats(ms) {
  const s = [...ms].sort((x, y) => x - y);
  const med = s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return {
    median_ms: +med.toFixed(3),
    min_ms: +s[0].toFixed(3),
    max_ms: +s[s.length - 1].toFixed(3),
    mean_ms: +(s.reduce((x, y) => x + y, 0) / s.length).toFixed(3),
    runs: s.length,
    all_ms: ms.map((x) => +x.toFixed(3)),
  };
}

// whole-machine CPU counters (Linux), to flag runs that shared the CPU with other work
function procStat() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    const total = f.slice(0, 8).reduce((x, y) => x + y, 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

function timeIt(fn, warmup, runs) {
  for (let i = 0; i < warmup; i++) fn();
  const ms = [];
  const ps0 = procStat();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    ms.push(performance.now() - t);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const st = stats(ms);
  st.cpu_cores_busy = +((cpu.user + cpu.system) / 1000 / wall).toFixed(2);
  st.cpu_ms_per_run = +((cpu.user + cpu.system) / 1000 / runs).toFixed(2);
  const ps1 = procStat();
  if (ps0 && ps1) {
    const machine = ((ps1.busy - ps0.busy) / (ps1.total - ps0.total)) * os.cpus().length;
    st.other_cores_busy = +Math.max(0, machine - st.cpu_cores_busy).toFixed(2);
  }
  return st;
}

const mib = (b) => +(b / 1048576).toFixed(1);
const first = (arr, n = 8) => Array.from(arr.slice(0, n)).map((x) => +x.toFixed(6));
function compare(name, native, wasm) {
  if (!native) return { name, wasm };
  const n = Math.min(native.length, wasm.length);
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(native[i] - wasm[i]));
  const c = { name, native: native.map((x) => +x.toFixed(6)), wasm, max_abs_diff: +max.toExponential(2) };
  process.stderr.write(`check ${name}\n  native ${c.native.join(' ')}\n  wasm   ${wasm.join(' ')}\n  max |diff| ${c.max_abs_diff}\n`);
  return c;
}

function loadModel(wasm, dir, int8 = false) {
  const cfg = readFileSync(join(dir, 'config.json'));
  const pre = readFileSync(join(dir, 'preprocessor_config.json'));
  const tok = readFileSync(join(dir, 'tokenizer.json'));
  const fd = openSync(join(dir, 'model.safetensors'), 'r');
  try {
    const len = fstatSync(fd).size;
    const first8 = Buffer.alloc(8);
    readSync(fd, first8, 0, 8, 0);
    const headerLen = wasm.safetensors_header_len(first8, len);
    const front = Buffer.alloc(headerLen);
    readSync(fd, front, 0, headerLen, 0);
    const loader = new wasm.BenchLoader(cfg, pre, tok, front, len);
    const names = loader.plan_names();
    const offsets = loader.plan_offsets();
    const sizes = loader.plan_sizes();
    let buf = Buffer.alloc(0);
    for (let i = 0; i < names.length; i++) {
      if (buf.length < sizes[i]) buf = Buffer.alloc(sizes[i]);
      const view = buf.subarray(0, sizes[i]);
      let got = 0;
      while (got < sizes[i]) got += readSync(fd, view, got, sizes[i] - got, offsets[i] + got);
      loader.insert(names[i], view);
    }
    return { model: int8 ? loader.finish_int8() : loader.finish(), tensors: names.length, file_bytes: len };
  } finally {
    closeSync(fd);
  }
}


// --- paired rounds with onnxruntime-web in this same process ---------------------------------
// The shared machine's load comes and goes within minutes, so a peer run followed by ours can
// see different conditions. Here both engines live in one Node process (onnxruntime-web's wasm
// backend at 1 thread, no workers, as the peer harness sets it) and take turns: after each
// engine's own warm-up, every round times one call of each engine, rotating the order, so that
// load hits all of them alike; each round also yields per-round ratios to onnxruntime-web fp32.
async function paired(a, ours, say) {
  const ortEntry = join(resolve(a['paired-ort']), 'node_modules/onnxruntime-web/dist/ort.node.min.mjs');
  const ort = await import(pathToFileURL(ortEntry).href);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = 'error';
  const version = JSON.parse(readFileSync(join(dirname(ortEntry), '..', 'package.json'), 'utf8')).version;
  const opts = { executionProviders: ['wasm'], graphOptimizationLevel: 'all', executionMode: 'sequential' };
  // inputs: deterministic values in the normalised pixel range; a 7-token query padded to 77
  // with <|endoftext|> and its attention mask, as CLIP's tokenizer pads
  const px = (b) => {
    const d = new Float32Array(b * 3 * 224 * 224);
    for (let i = 0; i < d.length; i++) d[i] = ((i * 7919) % 1000) / 500 - 1;
    return new ort.Tensor('float32', d, [b, 3, 224, 224]);
  };
  const ids = new BigInt64Array(77).fill(49407n);
  const mask = new BigInt64Array(77).fill(0n);
  [49406n, 320n, 1125n, 539n, 320n, 2368n, 49407n].forEach((v, i) => { ids[i] = v; mask[i] = 1n; });
  const engines = [];
  const sessions = [];
  for (const [variant, suffix] of [['fp32', ''], ['int8', '_quantized']]) {
    const vs = await ort.InferenceSession.create(readFileSync(join(a.onnx, `vision_model${suffix}.onnx`)), opts);
    const ts = await ort.InferenceSession.create(readFileSync(join(a.onnx, `text_model${suffix}.onnx`)), opts);
    sessions.push(vs, ts);
    const p1 = { pixel_values: px(1) };
    const p8 = { pixel_values: px(8) };
    const feeds = { input_ids: new ort.Tensor('int64', ids, [1, 77]) };
    if (ts.inputNames.includes('attention_mask')) feeds.attention_mask = new ort.Tensor('int64', mask, [1, 77]);
    engines.push({
      name: `onnxruntime-web ${variant}`,
      b1: () => vs.run(p1),
      b8: () => vs.run(p8),
      text: () => ts.run(feeds),
    });
  }
  const res = { onnxruntime_web: version, onnx_dir: resolve(a.onnx), ...(await alternate([...ours, ...engines], a, say, 'onnxruntime-web fp32')) };
  for (const s of sessions) await s.release?.();
  return res;
}

// Engines taking turns: after each engine's own warm-up, every round times one call of each,
// rotating the order, so that the machine's load hits all of them alike; per-round ratios
// are taken to the engine named `baseName`.
async function alternate(engines, a, say, baseName) {
  const res = { rounds: a.rounds, warmup: a.warmup, base: baseName, shapes: {} };
  for (const shape of ['b1', 'b8', 'text', 'text_short']) {
    const es = engines.filter((e) => e[shape]);
    const warm = shape.startsWith('text') ? a.warmup + 1 : a.warmup;
    const rounds = shape.startsWith('text') ? Math.max(a.rounds, 15) : a.rounds;
    for (const e of es) for (let i = 0; i < warm; i++) await e[shape]();
    const ms = es.map(() => []);
    const other = [];
    for (let r = 0; r < rounds; r++) {
      const ps0 = procStat();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let j = 0; j < es.length; j++) {
        const k = (j + r) % es.length;
        const t = performance.now();
        await es[k][shape]();
        ms[k].push(performance.now() - t);
      }
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const ps1 = procStat();
      if (ps0 && ps1) {
        const machine = ((ps1.busy - ps0.busy) / (ps1.total - ps0.total)) * os.cpus().length;
        other.push(Math.max(0, machine - (cpu.user + cpu.system) / 1000 / wall));
      }
    }
    const div = shape === 'b8' ? 8 : 1;
    const base = es.findIndex((e) => e.name === baseName);
    const row = {};
    es.forEach((e, k) => {
      const st = stats(ms[k].map((x) => x / div));
      if (base >= 0) {
        st.ratio_of_medians = +(st.median_ms / stats(ms[base].map((x) => x / div)).median_ms).toFixed(3);
        st.median_of_round_ratios = +stats(ms[k].map((x, r) => x / ms[base][r])).median_ms.toFixed(3);
      }
      row[e.name] = st;
    });
    const sorted = [...other].sort((x, y) => x - y);
    res.shapes[shape] = {
      unit: shape === 'b8' ? 'ms per image (batch 8 call / 8)' : shape === 'b1' ? 'ms per image' : 'ms per query',
      rounds,
      other_cores_busy_median: sorted.length ? +sorted[Math.floor(sorted.length / 2)].toFixed(2) : null,
      other_cores_busy_max: sorted.length ? +sorted[sorted.length - 1].toFixed(2) : null,
      engines: row,
    };
    say(`alternating ${shape}: ` + es.map((e) => `${e.name} ${row[e.name].median_ms} ms` + (row[e.name].median_of_round_ratios ? ` (${row[e.name].median_of_round_ratios}x)` : '')).join(', ') + `; other load median ${res.shapes[shape].other_cores_busy_median}`);
  }
  return res;
}

function ourEngine(name, model) {
  return {
    name,
    b1: async () => model.embed_images(1),
    b8: async () => model.embed_images(8),
    text: async () => model.embed_text(LONG_QUERY),
    text_short: async () => model.embed_text(SHORT_QUERY),
  };
}

function cosine(x, y) {
  let d = 0, nx = 0, ny = 0;
  for (let i = 0; i < x.length; i++) { d += x[i] * y[i]; nx += x[i] * x[i]; ny += y[i] * y[i]; }
  return d / Math.sqrt(nx * ny);
}

async function main() {
  const a = parseArgs(process.argv);
  const require = createRequire(import.meta.url);
  const pkgJs = resolve(a.pkg, 'wasm_bench.js');
  const wasm = require(pkgJs);
  const nativeFp = existsSync(join(a.model, 'native-fingerprint.json'))
    ? JSON.parse(readFileSync(join(a.model, 'native-fingerprint.json'), 'utf8'))
    : null;
  const out = {
    date: new Date().toISOString(),
    node: process.version,
    nproc: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    loadavg_at_start: os.loadavg().map((x) => +x.toFixed(2)),
    threads: 1,
    engine: 'clipseek wasm32 +simd128 (candle CPU), wasm-bindgen --target nodejs',
    model_dir: resolve(a.model),
    warmup: a.warmup,
    runs: a.runs,
    memory: { at_start_bytes: wasm.memory_bytes() },
    checks: [],
  };
  const say = (s) => process.stderr.write(s + '\n');

  // --- load, tensor by tensor -----------------------------------------------------------
  let t = performance.now();
  const { model, tensors, file_bytes } = loadModel(wasm, a.model);
  out.load = { ms: +(performance.now() - t).toFixed(1), tensors, file_bytes, model_id: model.model_id() };
  out.memory.after_load_bytes = wasm.memory_bytes();
  say(`loaded ${tensors} tensors (${mib(file_bytes)} MiB) in ${out.load.ms} ms; wasm memory ${mib(out.memory.after_load_bytes)} MiB`);
  if (nativeFp && nativeFp.model_id !== out.load.model_id) {
    say(`WARNING: model id differs from native: ${nativeFp.model_id} vs ${out.load.model_id}`);
  }
  out.load.model_id_matches_native = nativeFp ? nativeFp.model_id === out.load.model_id : null;

  // --- images ---------------------------------------------------------------------------
  out.vision = {};
  for (const b of [1, 8]) {
    let emb;
    const st = timeIt(() => { emb = model.embed_images(b); }, a.warmup, a.runs);
    st.ms_per_image = +(st.median_ms / b).toFixed(2);
    st.min_ms_per_image = +(st.min_ms / b).toFixed(2);
    st.images_per_s = +((1000 * b) / st.median_ms).toFixed(2);
    out.vision[`b${b}`] = st;
    if (b === 1) out.checks.push(compare('image b1 first8', nativeFp?.image_b1_first8, first(emb)));
    if (b === 8) out.checks.push(compare('image b8 row7 first8', nativeFp?.image_b8_row7_first8, first(emb.subarray(7 * model.embedding_dim()))));
    say(`vision b${b}: ${st.median_ms} ms median, ${st.ms_per_image} ms/img (min ${st.min_ms_per_image}), other load ${st.other_cores_busy}`);
  }

  // --- text -----------------------------------------------------------------------------
  out.text = {};
  for (const [key, q, fpKey] of [['short', SHORT_QUERY, 'text_short'], ['long77', LONG_QUERY, 'text_long']]) {
    let emb;
    const st = timeIt(() => { emb = model.embed_text(q); }, a.warmup + 1, Math.max(a.runs, 15));
    st.tokens = model.query_tokens(q);
    st.query = key === 'short' ? q : '"word " x 100';
    out.text[key] = st;
    out.checks.push(compare(`text ${key} first8`, nativeFp?.[fpKey]?.first8, first(emb)));
    say(`text ${key} (${st.tokens} tokens): ${st.median_ms} ms median (min ${st.min_ms}), other load ${st.other_cores_busy}`);
  }
  out.memory.after_embed_bytes = wasm.memory_bytes();

  // --- decode + preprocess a 12 MP JPEG ---------------------------------------------------
  const jpegPath = join(a.model, 'bench-12mp.jpg');
  if (existsSync(jpegPath)) {
    const jpeg = readFileSync(jpegPath);
    let r;
    const st = timeIt(() => { r = model.preprocess(jpeg); }, a.warmup, a.runs);
    st.file = jpegPath;
    st.size_bytes = jpeg.length;
    st.pixel_values = r[0];
    st.pixel_sum = r[1];
    out.preprocess = { jpeg_12mp: st };
    const nat = nativeFp?.jpeg_12mp;
    out.checks.push({ name: 'preprocess 12 MP pixel sum', native: nat?.pixel_sum, wasm: r[1], values: r[0] });
    say(`decode+preprocess 12 MP JPEG: ${st.median_ms} ms median (min ${st.min_ms}); pixel sum wasm ${r[1]} native ${nat?.pixel_sum}`);
    if (typeof wasm.preprocess_jpeg === 'function') {
      // The same file always decoded at full scale (the path before reduced-scale decode).
      const pre = readFileSync(join(a.model, 'preprocessor_config.json'));
      const full = timeIt(() => { wasm.preprocess_jpeg(pre, jpeg, false); }, a.warmup, a.runs);
      out.preprocess.jpeg_12mp_full_scale = full;
      say(`decode+preprocess 12 MP JPEG at full scale: ${full.median_ms} ms median (min ${full.min_ms})`);
    }
  } else {
    say(`no ${jpegPath}: skipping the JPEG row (make_synthetic_model writes it)`);
  }
  out.memory.after_preprocess_bytes = wasm.memory_bytes();

  // --- the same model with 8-bit linear layers ---------------------------------------------
  t = performance.now();
  const q = loadModel(wasm, a.model, true).model;
  out.int8 = { load: { ms: +(performance.now() - t).toFixed(1), precision: q.precision() }, vision: {}, text: {}, cos_to_f32: {} };
  out.memory.after_int8_load_bytes = wasm.memory_bytes();
  say(`loaded the int8 model in ${out.int8.load.ms} ms; wasm memory ${mib(out.memory.after_int8_load_bytes)} MiB`);
  for (const b of [1, 8]) {
    let emb;
    const st = timeIt(() => { emb = q.embed_images(b); }, a.warmup, a.runs);
    st.ms_per_image = +(st.median_ms / b).toFixed(2);
    st.min_ms_per_image = +(st.min_ms / b).toFixed(2);
    out.int8.vision[`b${b}`] = st;
    const f = model.embed_images(b);
    const d = model.embedding_dim();
    let worst = 1;
    for (let i = 0; i < b; i++) worst = Math.min(worst, cosine(emb.subarray(i * d, (i + 1) * d), f.subarray(i * d, (i + 1) * d)));
    out.int8.cos_to_f32[`image_b${b}_min`] = +worst.toFixed(6);
    say(`int8 vision b${b}: ${st.median_ms} ms median, ${st.ms_per_image} ms/img (min ${st.min_ms_per_image}), other load ${st.other_cores_busy}; cos to f32 ${worst.toFixed(6)}`);
  }
  for (const [key, text] of [['short', SHORT_QUERY], ['long77', LONG_QUERY]]) {
    let emb;
    const st = timeIt(() => { emb = q.embed_text(text); }, a.warmup + 1, Math.max(a.runs, 15));
    out.int8.text[key] = st;
    out.int8.cos_to_f32[`text_${key}`] = +cosine(emb, model.embed_text(text)).toFixed(6);
    say(`int8 text ${key}: ${st.median_ms} ms median (min ${st.min_ms}), other load ${st.other_cores_busy}; cos to f32 ${out.int8.cos_to_f32[`text_${key}`]}`);
  }
  const ours = [ourEngine('clipseek wasm f32', model), ourEngine('clipseek wasm int8', q)];
  if (a['paired-ort']) out.paired = await paired(a, ours, say);
  else out.alternating = await alternate(ours, a, say, 'clipseek wasm f32');
  q.free();
  model.free();

  // --- top-k ----------------------------------------------------------------------------
  out.index = {};
  if (typeof wasm.BenchIndex === 'function') {
    for (const n of a['index-sizes'].split(',').map(Number)) {
      t = performance.now();
      const idx = new wasm.BenchIndex(n, 512, BigInt(n));
      const build_ms = +(performance.now() - t).toFixed(1);
      let hits;
      const st = timeIt(() => { hits = idx.search(a.k); }, a.warmup, Math.max(a.runs, 15));
      st.entries = idx.len();
      st.k = a.k;
      st.hits = hits;
      st.build_ms = build_ms;
      out.index[`n${n}`] = st;
      say(`top-${a.k} over ${n} x 512: ${st.median_ms} ms median (min ${st.min_ms}); built in ${build_ms} ms`);
      idx.free();
    }
  }
  out.memory.peak_bytes = wasm.memory_bytes();
  out.memory.process_max_rss_bytes = process.resourceUsage().maxRSS * 1024;
  out.loadavg_at_end = os.loadavg().map((x) => +x.toFixed(2));
  say(`wasm memory: after load ${mib(out.memory.after_load_bytes)} MiB, peak ${mib(out.memory.peak_bytes)} MiB; process max RSS ${mib(out.memory.process_max_rss_bytes)} MiB`);

  mkdirSync(dirname(resolve(a.out)), { recursive: true });
  writeFileSync(a.out, JSON.stringify(out, null, 2));
  say(`wrote ${a.out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
