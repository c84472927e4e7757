// Layer normalisation over the last dimension, one workgroup per row, as
// torch.nn.LayerNorm: y = (x - mean) / sqrt(var + eps) * gamma + beta, with the biased
// variance. Two passes for stability: the mean, then the variance of the centred values
// (never E[x²] - E[x]²), both accumulated in f32 and reduced in a tree in workgroup memory.
// Rows are numbered across a 2-D grid (x fastest) so that any row count fits the
// per-dimension dispatch limit.
//
// Header: T (element type) and WG (workgroup size, a power of two).

struct Params {
    rows: u32,
    n: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<T>;
@group(0) @binding(3) var<storage, read> beta: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;

// workgroup_sum comes from reduce.wgsl.

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    let inv_n = 1.0 / f32(p.n);
    var s = 0.0;
    for (var i = li; i < p.n; i += WG) {
        s += f32(x[base + i]);
    }
    let mean = workgroup_sum(s, li) * inv_n;
    var q = 0.0;
    for (var i = li; i < p.n; i += WG) {
        let d = f32(x[base + i]) - mean;
        q += d * d;
    }
    let inv_std = inverseSqrt(workgroup_sum(q, li) * inv_n + p.eps);
    for (var i = li; i < p.n; i += WG) {
        let d = f32(x[base + i]) - mean;
        y[base + i] = T(d * inv_std * f32(gamma[i]) + f32(beta[i]));
    }
}
