// The towers' inputs, as transformers' CLIPVisionEmbeddings / CLIPTextEmbeddings:
// - `im2col`: images [B, C, S, S] (f32, CHW) -> patches [B * P, C * p * p], one row per
//   patch in row-major grid order, each in the conv weight's (channel, row, column) order, so
//   the patch embedding (a stride-p conv without bias) is the matmul of these rows with the
//   conv weight seen as [hidden, C * p * p].
// - `assemble_vision`: x[b, 0] = class_embedding + pos[0]; x[b, 1 + t] = patches_emb[b, t] +
//   pos[1 + t].
// - `embed_tokens`: x[b, t] = token_embedding[ids[b, t]] + pos[t].
// One invocation per output element, numbered across a 2-D grid (x fastest). Additions in f32.
//
// Header: T, WG.

struct Params {
    // im2col: total, channels, image, patch | assemble: total, seq, hidden | tokens: total, seq, hidden
    total: u32,
    u1: u32,
    u2: u32,
    u3: u32,
    u4: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pixels: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<T>;
@group(0) @binding(3) var<storage, read> pos: array<T>;
@group(0) @binding(4) var<storage, read> class_emb: array<T>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;
@group(0) @binding(6) var<storage, read_write> dst: array<T>;

fn flat_index(wid: vec3<u32>, groups: vec3<u32>, li: u32) -> u32 {
    return (wid.y * groups.x + wid.x) * WG + li;
}

@compute @workgroup_size(WG, 1, 1)
fn im2col(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let idx = flat_index(wid, groups, li);
    if (idx >= p.total) {
        return;
    }
    let channels = p.u1;
    let image = p.u2;
    let psize = p.u3;
    let side = image / psize;
    let per_image = side * side;
    let k = channels * psize * psize;
    let r = idx / k;
    let kk = idx % k;
    let img = r / per_image;
    let cell = r % per_image;
    let gy = cell / side;
    let gx = cell % side;
    let ch = kk / (psize * psize);
    let rem = kk % (psize * psize);
    let ky = rem / psize;
    let kx = rem % psize;
    let at = ((img * channels + ch) * image + gy * psize + ky) * image + gx * psize + kx;
    dst[idx] = T(pixels[at]);
}

@compute @workgroup_size(WG, 1, 1)
fn assemble_vision(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let idx = flat_index(wid, groups, li);
    if (idx >= p.total) {
        return;
    }
    let seq = p.u1;
    let hidden = p.u2;
    let d = idx % hidden;
    let row = idx / hidden;
    let t = row % seq;
    let b = row / seq;
    var v = f32(pos[t * hidden + d]);
    if (t == 0u) {
        v += f32(class_emb[d]);
    } else {
        v += f32(src[(b * (seq - 1u) + t - 1u) * hidden + d]);
    }
    dst[idx] = T(v);
}

@compute @workgroup_size(WG, 1, 1)
fn embed_tokens(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let idx = flat_index(wid, groups, li);
    if (idx >= p.total) {
        return;
    }
    let seq = p.u1;
    let hidden = p.u2;
    let d = idx % hidden;
    let row = idx / hidden;
    let t = row % seq;
    let id = ids[row];
    dst[idx] = T(f32(src[id * hidden + d]) + f32(pos[t * hidden + d]));
}
