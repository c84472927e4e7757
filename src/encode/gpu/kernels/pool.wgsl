// The towers' outputs: `gather_rows` picks one row per batch item (the class token of an
// image, the end token of a text) into a compact [B, hidden] matrix for the final layer norm
// and the projection (a matmul); `l2_normalize` scales each projected row to unit length in
// f32 (zero rows stay zero), one workgroup per row, and writes the f32 result that is read
// back. Mirrors CLIPModel.get_*_features followed by `x / x.norm(dim=-1)`.
//
// Header: T, WG (a power of two).

struct Params {
    rows: u32,
    n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
    _pad5: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read> row_index: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<T>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// workgroup_sum and workgroup_max come from reduce.wgsl.

@compute @workgroup_size(WG, 1, 1)
fn gather_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let idx = (wid.y * groups.x + wid.x) * WG + li;
    if (idx >= p.rows * p.n) {
        return;
    }
    let r = idx / p.n;
    let d = idx % p.n;
    dst[idx] = src[row_index[r] * p.n + d];
}

@compute @workgroup_size(WG, 1, 1)
fn l2_normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    // Scale by the largest magnitude first so that squares can neither overflow nor underflow.
    var m = 0.0;
    for (var i = li; i < p.n; i += WG) {
        m = max(m, abs(f32(src[base + i])));
    }
    let big = workgroup_max(m, li);
    var inv_big = 0.0;
    if (big > 0.0) {
        inv_big = 1.0 / big;
    }
    var s = 0.0;
    for (var i = li; i < p.n; i += WG) {
        let v = f32(src[base + i]) * inv_big;
        s += v * v;
    }
    let norm = sqrt(workgroup_sum(s, li));
    var scale = 0.0;
    if (norm > 0.0) {
        scale = inv_big / norm;
    }
    for (var i = li; i < p.n; i += WG) {
        out[base + i] = f32(src[base + i]) * scale;
    }
}
