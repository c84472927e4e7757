//! The 8-bit engine's transformer layers on plain `f32` slices: what `cpu`'s candle forward
//! computes, without a candle tensor between the ops.
//!
//! One forward holds a handful of buffers ([`Scratch`]: the residual stream, one layer
//! norm's output, q, k, v, the heads' context, the MLP's hidden rows, the packed
//! activations) for all its layers, so nothing is allocated per layer. Per layer: the layer
//! norm writes one buffer, which is quantised **once** and read by the q, k and v kernels;
//! attention runs per image and head straight on the q/k/v rows (k transposed per head so
//! that the score and context loops are vertical multiply-adds, which LLVM vectorises on
//! wasm `simd128` and x86-64); the output projection and fc2 add their results to the
//! residual stream in the kernel's epilogue (`kernels::gemm_add`); the activation runs in
//! place on fc1's output. `exp` (softmax, quick-GELU) is [`exp`], a branch-free polynomial
//! that vectorises (relative error ≤ 2·10⁻⁷; the libm call it replaces does not
//! vectorise on wasm32).
//!
//! A forward can be timed per step ([`Profile`]): the clock is the caller's (natively
//! `Instant`, in a browser `performance.now`), so this module holds no I/O.

use candle_core::{Device, Tensor};

use super::{Activation, CResult, LayerNorm, LayerStack, Linear, TextTower, VisionTower};
use crate::encode::quant::{PackedActs, QuantError, QuantLinear};
use crate::model::tokenizer::TokenIds;

/// The steps a timed forward is split into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Patches, embeddings, pooling, moving rows: everything outside the other steps.
    Other,
    /// The layer norms (both per layer, and the tower's own).
    LayerNorm,
    /// Quantising activations for the 8-bit kernels.
    Quantize,
    /// The 8-bit kernels (with their fused epilogue: scales, bias, residual).
    Gemm,
    /// Attention's scores, softmax and context (f32).
    Attention,
    /// GELU / quick-GELU on the MLP's hidden rows.
    Activation,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Gemm,
        Step::Quantize,
        Step::LayerNorm,
        Step::Attention,
        Step::Activation,
        Step::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Other => "other (patches, embeddings, pooling, copies)",
            Step::LayerNorm => "layer norms",
            Step::Quantize => "quantising activations",
            Step::Gemm => "int8 GEMMs (epilogue fused)",
            Step::Attention => "attention (scores, softmax, context)",
            Step::Activation => "GELU / quick-GELU",
        }
    }
}

/// Milliseconds per [`Step`] of the forwards it was handed to, on the caller's clock.
#[derive(Debug, Clone)]
pub struct Profile {
    clock: fn() -> f64,
    ms: [f64; 6],
    last: f64,
}

impl Profile {
    /// `clock`: milliseconds from any fixed origin.
    pub fn new(clock: fn() -> f64) -> Self {
        Self {
            clock,
            ms: [0.0; 6],
            last: clock(),
        }
    }

    /// Charges the time since the last mark to `step`.
    fn mark(&mut self, step: Step) {
        let now = (self.clock)();
        self.ms[step as usize] += now - self.last;
        self.last = now;
    }

    /// Restarts the running mark (time until now is charged to nothing).
    pub fn restart(&mut self) {
        self.last = (self.clock)();
    }

    /// Milliseconds per step, largest share first in [`Step::ALL`]'s order.
    pub fn steps(&self) -> Vec<(Step, f64)> {
        Step::ALL
            .iter()
            .map(|s| (*s, self.ms[*s as usize]))
            .collect()
    }

    pub fn total(&self) -> f64 {
        self.ms.iter().sum()
    }
}

/// An optional profile: marks cost one branch when there is none.
pub(super) struct Timer<'a>(pub(super) Option<&'a mut Profile>);

impl Timer<'_> {
    #[inline]
    pub(super) fn mark(&mut self, step: Step) {
        if let Some(p) = self.0.as_deref_mut() {
            p.mark(step);
        }
    }
}

/// The buffers one forward reuses for every layer.
#[derive(Default)]
struct Scratch {
    y: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    hidden: Vec<f32>,
    acts: PackedActs,
    /// One head's keys, transposed (`[dh][t]`).
    kt: Vec<f32>,
    scores: Vec<f32>,
}

fn sized(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.resize(len, 0.0);
    &mut buf[..len]
}

/// The sum of `xs` in eight running lanes (vectorises; a single running sum does not).
#[inline]
fn sum8(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// Layer norm of each `h`-wide row of `x` into `out`: mean, then the variance of the
/// centred values (the two passes of `cpu::LayerNorm`), scaled and shifted.
pub(super) fn layer_norm(x: &[f32], ln: &LayerNorm, out: &mut [f32]) {
    let h = ln.w.len();
    let eps = ln.eps as f32;
    for (row, o) in x.chunks_exact(h).zip(out.chunks_exact_mut(h)) {
        let mean = sum8(row) / h as f32;
        for (d, v) in o.iter_mut().zip(row) {
            *d = v - mean;
        }
        let mut sq = [0f32; 8];
        let chunks = o.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|c| c * c).sum();
        for c in chunks {
            for (l, v) in sq.iter_mut().zip(c) {
                *l += v * v;
            }
        }
        let var = (sq.iter().sum::<f32>() + tail) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((d, w), b) in o.iter_mut().zip(&ln.w).zip(&ln.b) {
            *d = *d * inv * w + b;
        }
    }
}

/// `e^x` for f32, branch-free (vectorises): `x = n·ln 2 + r`, `|r| ≤ ln 2 / 2`, a degree-6
/// Taylor polynomial for `e^r` (truncation ≤ 1.2·10⁻⁷ relative) and `2^n` built in the
/// exponent bits. Inputs are clamped to `[-87, 88]` (below: ≈ 1.6·10⁻³⁸ instead of a
/// denormal or 0; above: f32's range ends at 88.7); NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n · LN2_HI` is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = crate::encode::quant::kernels::round_even(x * LOG2E);
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// The activation in place on fc1's output.
pub(super) fn activate(xs: &mut [f32], act: Activation) {
    match act {
        // x · σ(1.702 x) = x / (1 + e^(−1.702 x)).
        Activation::QuickGelu => {
            for v in xs.iter_mut() {
                *v /= 1.0 + exp(-1.702 * *v);
            }
        }
        // 0.5 x (1 + erf(x / √2)) with the same erf as candle's `gelu_erf`.
        Activation::Gelu => {
            for v in xs.iter_mut() {
                let x = *v;
                *v = 0.5
                    * x
                    * (1.0 + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

/// Multi-head attention over `b` sequences of `t` rows: `q`, `k`, `v`, `ctx` are
/// `[b · t, h]`, head `i` in columns `i·dh..(i+1)·dh`; `causal` lets row `i` see rows `≤ i`
/// only (the text tower's mask).
#[allow(clippy::too_many_arguments)]
fn attention(
    [q, k, v]: [&[f32]; 3],
    ctx: &mut [f32],
    (b, t, heads): (usize, usize, usize),
    causal: bool,
    kt: &mut Vec<f32>,
    scores: &mut Vec<f32>,
) {
    let h = q.len() / (b * t).max(1);
    let dh = h / heads.max(1);
    let scale = (dh as f32).powf(-0.5);
    let kt = sized(kt, dh * t);
    let scores = sized(scores, t);
    for bi in 0..b {
        let rows = bi * t..(bi + 1) * t;
        for head in 0..heads {
            let cols = head * dh..(head + 1) * dh;
            for (j, row) in k[rows.start * h..rows.end * h].chunks_exact(h).enumerate() {
                for (d, kv) in row[cols.clone()].iter().enumerate() {
                    kt[d * t + j] = *kv;
                }
            }
            for i in 0..t {
                let seen = if causal { i + 1 } else { t };
                let qi = &q[(rows.start + i) * h..][cols.clone()];
                let s = &mut scores[..seen];
                s.fill(0.0);
                for (d, qd) in qi.iter().enumerate() {
                    let qd = qd * scale;
                    for (sj, kj) in s.iter_mut().zip(&kt[d * t..d * t + seen]) {
                        *sj += qd * kj;
                    }
                }
                let max = s.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
                for sj in s.iter_mut() {
                    *sj = exp(*sj - max);
                }
                let inv = 1.0 / sum8(s);
                let ci = &mut ctx[(rows.start + i) * h..][cols.clone()];
                ci.fill(0.0);
                for (j, p) in s.iter().enumerate() {
                    let p = p * inv;
                    let vj = &v[(rows.start + j) * h..][cols.clone()];
                    for (c, vv) in ci.iter_mut().zip(vj) {
                        *c += p * vv;
                    }
                }
            }
        }
    }
}

/// The 8-bit layer inside `lin` (a stack runs fused only when all are).
fn int8(lin: &Linear) -> Result<&QuantLinear, QuantError> {
    match lin {
        Linear::Int8(q) => Ok(q),
        Linear::F32 { .. } => Err(QuantError::Shape {
            what: "an 8-bit layer",
            expected: 1,
            got: 0,
        }),
    }
}

impl LayerStack {
    /// Every linear layer of every layer in 8 bits: the fused forward applies.
    pub(super) fn all_int8(&self) -> bool {
        self.layers.iter().all(|l| {
            [&l.q, &l.k, &l.v, &l.out, &l.fc1, &l.fc2]
                .iter()
                .all(|lin| matches!(lin, super::Linear::Int8(_)))
        })
    }

    /// The layers over `x` (`[b · t, h]`, the residual stream, updated in place); `causal`
    /// for the text tower. Only for [`Self::all_int8`] stacks.
    pub(super) fn forward_fused(
        &self,
        x: &mut [f32],
        (b, t): (usize, usize),
        causal: bool,
        timer: &mut Timer<'_>,
    ) -> Result<(), QuantError> {
        let rows = b * t;
        let mut s = Scratch::default();
        for layer in &self.layers {
            let (q, k, v) = (int8(&layer.q)?, int8(&layer.k)?, int8(&layer.v)?);
            let (out, fc1, fc2) = (int8(&layer.out)?, int8(&layer.fc1)?, int8(&layer.fc2)?);
            let h = q.inputs();
            let y = sized(&mut s.y, rows * h);
            layer_norm(x, &layer.ln1, y);
            timer.mark(Step::LayerNorm);
            let shared = q.activation_limit() == k.activation_limit()
                && q.activation_limit() == v.activation_limit();
            project(q, y, rows, &mut s.acts, &mut s.q, timer, true)?;
            project(k, y, rows, &mut s.acts, &mut s.k, timer, !shared)?;
            project(v, y, rows, &mut s.acts, &mut s.v, timer, !shared)?;
            let ctx = sized(&mut s.ctx, rows * h);
            attention(
                [&s.q, &s.k, &s.v],
                ctx,
                (b, t, self.heads),
                causal,
                &mut s.kt,
                &mut s.scores,
            );
            timer.mark(Step::Attention);
            out.quantize_input(ctx, rows, &mut s.acts)?;
            timer.mark(Step::Quantize);
            out.forward_acts(&s.acts, x, true)?;
            timer.mark(Step::Gemm);
            let y = sized(&mut s.y, rows * h);
            layer_norm(x, &layer.ln2, y);
            timer.mark(Step::LayerNorm);
            fc1.quantize_input(y, rows, &mut s.acts)?;
            timer.mark(Step::Quantize);
            let hidden = sized(&mut s.hidden, rows * fc1.outputs());
            fc1.forward_acts(&s.acts, hidden, false)?;
            timer.mark(Step::Gemm);
            activate(hidden, self.act);
            timer.mark(Step::Activation);
            fc2.quantize_input(hidden, rows, &mut s.acts)?;
            timer.mark(Step::Quantize);
            fc2.forward_acts(&s.acts, x, true)?;
            timer.mark(Step::Gemm);
        }
        Ok(())
    }
}

/// `out = lin(y)`, quantising `y` first when `quantize` (else `acts` already holds it).
fn project(
    lin: &QuantLinear,
    y: &[f32],
    rows: usize,
    acts: &mut PackedActs,
    out: &mut Vec<f32>,
    timer: &mut Timer<'_>,
    quantize: bool,
) -> Result<(), QuantError> {
    if quantize {
        lin.quantize_input(y, rows, acts)?;
        timer.mark(Step::Quantize);
    }
    let out = sized(out, rows * lin.outputs());
    lin.forward_acts(acts, out, false)?;
    timer.mark(Step::Gemm);
    Ok(())
}

/// `lin` over `rows` rows of `x`: the 8-bit kernel straight on the slice, or candle's gemm
/// for a layer kept in f32 (the patch embedding or a projection, by the options).
fn linear_rows(lin: &Linear, x: &[f32], rows: usize) -> CResult<Vec<f32>> {
    match lin {
        Linear::Int8(q) => q.forward(x, rows).map_err(quant_error),
        Linear::F32 { .. } => {
            let t = Tensor::from_slice(x, (rows, x.len() / rows.max(1)), &Device::Cpu)?;
            lin.forward(&t)?.flatten_all()?.to_vec1::<f32>()
        }
    }
}

fn quant_error(e: QuantError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

fn values(t: &Tensor) -> CResult<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// The vision tower's forward for `count` images (CHW pixels back to back) with a fused
/// 8-bit stack: the numbers of `CpuEncoder::vision_forward_candle`, before normalisation.
pub(super) fn vision(
    v: &VisionTower,
    pixels: &[f32],
    count: usize,
    timer: &mut Timer<'_>,
) -> CResult<Vec<f32>> {
    let (c, size, p, h) = (v.channels, v.image_size, v.patch_size, v.hidden);
    let side = size / p;
    let n = side * side;
    let k = c * p * p;
    // Patches in the conv's (channel, row, column) order, row-major over the grid.
    let mut patches = vec![0f32; count * n * k];
    for img in 0..count {
        let src = &pixels[img * c * size * size..(img + 1) * c * size * size];
        for gy in 0..side {
            for gx in 0..side {
                let dst = &mut patches[((img * n) + gy * side + gx) * k..][..k];
                let mut o = 0;
                for ch in 0..c {
                    for ky in 0..p {
                        let row = ch * size * size + (gy * p + ky) * size + gx * p;
                        dst[o..o + p].copy_from_slice(&src[row..row + p]);
                        o += p;
                    }
                }
            }
        }
    }
    timer.mark(Step::Other);
    let emb = linear_rows(&v.patch, &patches, count * n)?;
    timer.mark(if matches!(v.patch, Linear::Int8(_)) {
        Step::Gemm
    } else {
        Step::Other
    });
    let cls = values(&v.class_embedding)?;
    let pos = values(&v.position_embedding)?;
    let t = n + 1;
    if cls.len() != h || pos.len() != t * h {
        return Err(candle_core::Error::Msg(format!(
            "class / position embeddings of {} / {} values; {h} / {} expected",
            cls.len(),
            pos.len(),
            t * h
        )));
    }
    let mut x = vec![0f32; count * t * h];
    for (img, rows) in x.chunks_exact_mut(t * h).enumerate() {
        for (r, row) in rows.chunks_exact_mut(h).enumerate() {
            let src = if r == 0 {
                &cls[..]
            } else {
                &emb[(img * n + r - 1) * h..][..h]
            };
            for ((d, e), q) in row.iter_mut().zip(src).zip(&pos[r * h..(r + 1) * h]) {
                *d = e + q;
            }
        }
    }
    let mut y = vec![0f32; x.len()];
    timer.mark(Step::Other);
    layer_norm(&x, &v.pre_ln, &mut y);
    timer.mark(Step::LayerNorm);
    v.encoder
        .forward_fused(&mut y, (count, t), false, timer)
        .map_err(quant_error)?;
    // The class token of each image.
    let pooled: Vec<f32> = y
        .chunks_exact(t * h)
        .flat_map(|img| img[..h].iter().copied())
        .collect();
    let mut normed = vec![0f32; pooled.len()];
    layer_norm(&pooled, &v.post_ln, &mut normed);
    timer.mark(Step::LayerNorm);
    let out = linear_rows(&v.projection, &normed, count)?;
    timer.mark(Step::Other);
    Ok(out)
}

/// The text tower's forward over the first `seq` tokens of each text with a fused 8-bit
/// stack: the numbers of `CpuEncoder::text_forward_candle`, before normalisation.
pub(super) fn text(t: &TextTower, texts: &[TokenIds], seq: usize) -> CResult<Vec<f32>> {
    let b = texts.len();
    let ids: Vec<u32> = texts
        .iter()
        .flat_map(|x| x.ids[..seq].iter().copied())
        .collect();
    let ids = Tensor::from_vec(ids, b * seq, &Device::Cpu)?;
    let hidden = t.token_embedding.dim(1)?;
    // The lookup stays a candle op: the table is the tower's largest tensor, never copied.
    let x = t
        .token_embedding
        .index_select(&ids, 0)?
        .reshape((b, seq, hidden))?
        .broadcast_add(&t.position_embedding.narrow(0, 0, seq)?)?;
    let mut x = values(&x)?;
    t.encoder
        .forward_fused(&mut x, (b, seq), true, &mut Timer(None))
        .map_err(quant_error)?;
    let pooled: Vec<f32> = texts
        .iter()
        .enumerate()
        .flat_map(|(i, tk)| x[(i * seq + tk.eos_position) * hidden..][..hidden].to_vec())
        .collect();
    let mut normed = vec![0f32; pooled.len()];
    layer_norm(&pooled, &t.final_ln, &mut normed);
    linear_rows(&t.projection, &normed, b)
}

#[cfg(test)]
#[path = "fused_tests.rs"]
mod tests;
