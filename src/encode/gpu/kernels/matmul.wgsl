// Tiled matrix product with a fused epilogue, the workhorse of both towers:
//   C[M,N] = act(A[M,K] · B[N,K]ᵀ + bias[N])          (flags bit 3 clear)
//   C[M,N] = C + act(A[M,K] · B[N,K]ᵀ + bias[N])      (flags bit 3 set: residual add in place)
// B is in nn.Linear's [out, in] layout, so both operands are read along K.
//
// The Rust side prepends a header defining the element type `T` / `T4` (f32, or f16 with
// `enable f16;`), SPLIT (true in f16 mode) and the tile: a workgroup of (TN/8) x (TM/8)
// invocations computes TM x TN outputs, each invocation an 8 x 8 block held in sixteen vec4
// registers. Each step stages TK values of K of both operands in workgroup memory, k-major
// and packed by four rows (or columns), so that two vec4 reads give an invocation its eight
// rows and two its eight columns; the block then grows by outer products (sixteen vec4
// multiply-adds per k, 64 FMAs per 4 reads). In f16 mode (SPLIT) the products of one step
// (at most TK terms) are summed in f16 and then added to f32 accumulators; in f32 mode the
// partial sums are the accumulators (the SPLIT branches are constant and fold away).
// Edges of M, N and K are masked with zeros.

const WX: u32 = TN / 8u;
const WY: u32 = TM / 8u;
const THREADS: u32 = WX * WY;
const QM: u32 = TM / 4u;
const QN: u32 = TN / 4u;

const FLAG_BIAS: u32 = 1u;
const FLAG_ACCUMULATE: u32 = 8u;
const ACT_QUICK_GELU: u32 = 1u;
const ACT_GELU: u32 = 2u;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: add bias; bits 1-2: activation; bit 3: add into C
    flags: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> c: array<T>;

// [k][row / 4] -> the four rows (columns) 4q..4q+3 at k.
var<workgroup> tile_a: array<T4, TK * QM>;
var<workgroup> tile_b: array<T4, TK * QN>;

// erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7); WGSL has no erf.
fn erf_approx(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(x) * (1.0 - poly * exp(-z * z));
}

fn activate(v: f32, act: u32) -> f32 {
    if (act == ACT_QUICK_GELU) {
        // x * sigmoid(1.702 x); exp overflow gives 0 for large negative x, as it should.
        return v / (1.0 + exp(-1.702 * v));
    }
    if (act == ACT_GELU) {
        return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
    }
    return v;
}

fn load_a(row: u32, col: u32) -> T {
    if (row < p.m && col < p.k) {
        return a[row * p.k + col];
    }
    return T(0);
}

fn load_b(row: u32, col: u32) -> T {
    if (row < p.n && col < p.k) {
        return b[row * p.k + col];
    }
    return T(0);
}

fn store(row: u32, col: u32, acc: f32, act: u32) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    var v = acc;
    if ((p.flags & FLAG_BIAS) != 0u) {
        v += f32(bias[col]);
    }
    v = activate(v, act);
    let idx = row * p.n + col;
    if ((p.flags & FLAG_ACCUMULATE) != 0u) {
        v += f32(c[idx]);
    }
    c[idx] = T(v);
}

fn store_row(row: u32, col: u32, acc: vec4<f32>, act: u32) {
    store(row, col, acc.x, act);
    store(row, col + 1u, acc.y, act);
    store(row, col + 2u, acc.z, act);
    store(row, col + 3u, acc.w, act);
}

@compute @workgroup_size(WX, WY, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    // part[2r + h]: row r of the block, columns 4h..4h+3.
    var part: array<T4, 16>;
    var acc: array<vec4<f32>, 16>;
    let steps = (p.k + TK - 1u) / TK;
    for (var s = 0u; s < steps; s++) {
        let k0 = s * TK;
        // Consecutive invocations read consecutive k of a row: coalesced.
        for (var e = li; e < TK * QM; e += THREADS) {
            let kk = e % TK;
            let r = m0 + (e / TK) * 4u;
            tile_a[kk * QM + e / TK] = T4(load_a(r, k0 + kk), load_a(r + 1u, k0 + kk), load_a(r + 2u, k0 + kk), load_a(r + 3u, k0 + kk));
        }
        for (var e = li; e < TK * QN; e += THREADS) {
            let kk = e % TK;
            let r = n0 + (e / TK) * 4u;
            tile_b[kk * QN + e / TK] = T4(load_b(r, k0 + kk), load_b(r + 1u, k0 + kk), load_b(r + 2u, k0 + kk), load_b(r + 3u, k0 + kk));
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a0 = tile_a[kk * QM + lid.y * 2u];
            let a1 = tile_a[kk * QM + lid.y * 2u + 1u];
            let b0 = tile_b[kk * QN + lid.x * 2u];
            let b1 = tile_b[kk * QN + lid.x * 2u + 1u];
            part[0] += a0.x * b0;
            part[1] += a0.x * b1;
            part[2] += a0.y * b0;
            part[3] += a0.y * b1;
            part[4] += a0.z * b0;
            part[5] += a0.z * b1;
            part[6] += a0.w * b0;
            part[7] += a0.w * b1;
            part[8] += a1.x * b0;
            part[9] += a1.x * b1;
            part[10] += a1.y * b0;
            part[11] += a1.y * b1;
            part[12] += a1.z * b0;
            part[13] += a1.z * b1;
            part[14] += a1.w * b0;
            part[15] += a1.w * b1;
        }
        // Constant indices only (here and below): the arrays must stay in registers.
        if (SPLIT) {
            acc[0] += vec4<f32>(part[0]);
            acc[1] += vec4<f32>(part[1]);
            acc[2] += vec4<f32>(part[2]);
            acc[3] += vec4<f32>(part[3]);
            acc[4] += vec4<f32>(part[4]);
            acc[5] += vec4<f32>(part[5]);
            acc[6] += vec4<f32>(part[6]);
            acc[7] += vec4<f32>(part[7]);
            acc[8] += vec4<f32>(part[8]);
            acc[9] += vec4<f32>(part[9]);
            acc[10] += vec4<f32>(part[10]);
            acc[11] += vec4<f32>(part[11]);
            acc[12] += vec4<f32>(part[12]);
            acc[13] += vec4<f32>(part[13]);
            acc[14] += vec4<f32>(part[14]);
            acc[15] += vec4<f32>(part[15]);
            part = array<T4, 16>();
        }
        workgroupBarrier();
    }
    let act = (p.flags >> 1u) & 3u;
    let row = m0 + lid.y * 8u;
    let col = n0 + lid.x * 8u;
    store_row(row + 0u, col, acc[0] + vec4<f32>(part[0]), act);
    store_row(row + 0u, col + 4u, acc[1] + vec4<f32>(part[1]), act);
    store_row(row + 1u, col, acc[2] + vec4<f32>(part[2]), act);
    store_row(row + 1u, col + 4u, acc[3] + vec4<f32>(part[3]), act);
    store_row(row + 2u, col, acc[4] + vec4<f32>(part[4]), act);
    store_row(row + 2u, col + 4u, acc[5] + vec4<f32>(part[5]), act);
    store_row(row + 3u, col, acc[6] + vec4<f32>(part[6]), act);
    store_row(row + 3u, col + 4u, acc[7] + vec4<f32>(part[7]), act);
    store_row(row + 4u, col, acc[8] + vec4<f32>(part[8]), act);
    store_row(row + 4u, col + 4u, acc[9] + vec4<f32>(part[9]), act);
    store_row(row + 5u, col, acc[10] + vec4<f32>(part[10]), act);
    store_row(row + 5u, col + 4u, acc[11] + vec4<f32>(part[11]), act);
    store_row(row + 6u, col, acc[12] + vec4<f32>(part[12]), act);
    store_row(row + 6u, col + 4u, acc[13] + vec4<f32>(part[13]), act);
    store_row(row + 7u, col, acc[14] + vec4<f32>(part[14]), act);
    store_row(row + 7u, col + 4u, acc[15] + vec4<f32>(part[15]), act);
}
