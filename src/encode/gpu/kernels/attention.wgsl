// Multi-head scaled dot-product attention, fused per (query row, head, batch item): one
// workgroup computes the scores of one query against all keys of its sequence, a softmax
// with max subtraction (exp(s - max) / sum), and the context row, without writing scores to
// global memory. Causal mode masks keys after the query (the text tower).
//
// qkv is the output of the fused Q/K/V projection: row r of a sequence holds
// [q (hidden) | k (hidden) | v (hidden)], head h at columns h*head_dim.. of each part.
// Scores are scale * q·k with scale = head_dim^-0.5, as transformers' CLIPAttention scales q.
// ctx row r gets the heads side by side, ready for out_proj. Arithmetic is f32.
//
// Header: T, WG (a power of two), SEQ_MAX (longest sequence), DH_MAX (largest head_dim).

struct Params {
    seq: u32,
    heads: u32,
    head_dim: u32,
    causal: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<T>;
@group(0) @binding(2) var<storage, read_write> ctx: array<T>;

var<workgroup> q_row: array<f32, DH_MAX>;
var<workgroup> scores: array<f32, SEQ_MAX>;
// workgroup_sum and workgroup_max come from reduce.wgsl.

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let i = wid.x;
    let h = wid.y;
    let b = wid.z;
    let hidden = p.heads * p.head_dim;
    let stride = 3u * hidden;
    let seq_base = b * p.seq;
    let q_off = (seq_base + i) * stride + h * p.head_dim;
    for (var d = li; d < p.head_dim; d += WG) {
        q_row[d] = f32(qkv[q_off + d]);
    }
    workgroupBarrier();
    var keys = p.seq;
    if (p.causal != 0u) {
        keys = i + 1u;
    }
    let k_col = hidden + h * p.head_dim;
    // -f32::MAX as bits: a decimal literal that rounds beyond f32 is rejected by Tint.
    var local_max = bitcast<f32>(0xff7fffffu);
    for (var j = li; j < keys; j += WG) {
        let k_off = (seq_base + j) * stride + k_col;
        var s = 0.0;
        for (var d = 0u; d < p.head_dim; d++) {
            s += q_row[d] * f32(qkv[k_off + d]);
        }
        s *= p.scale;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    let m = workgroup_max(local_max, li);
    var local_sum = 0.0;
    for (var j = li; j < keys; j += WG) {
        let e = exp(scores[j] - m);
        scores[j] = e;
        local_sum += e;
    }
    let inv_sum = 1.0 / workgroup_sum(local_sum, li);
    let v_col = 2u * hidden + h * p.head_dim;
    let out_off = (seq_base + i) * hidden + h * p.head_dim;
    for (var d = li; d < p.head_dim; d += WG) {
        var o = 0.0;
        for (var j = 0u; j < keys; j++) {
            o += scores[j] * f32(qkv[(seq_base + j) * stride + v_col + d]);
        }
        ctx[out_off + d] = T(o * inv_sum);
    }
}
