//! The CPU engine: CLIP's forward pass on candle tensors (multi-threaded gemm natively,
//! `+simd128` on wasm32).
//!
//! Mirrors transformers' `CLIPVisionTransformer` / `CLIPTextTransformer` (pre-LN encoder
//! layers, `pre_layrnorm`, class-token pooling + `post_layernorm` for images; causal
//! attention, `final_layer_norm` and pooling at the end token for texts), then the
//! projections and L2 normalisation. Layer norm is computed in two passes (mean, then the
//! variance of the centred values) for stability. Texts are run only up to the last end
//! token of the batch: with causal attention the pooled position never sees later ones.
//! It holds no I/O; weights arrive already checked from `model::weights`.
//!
//! In [`CpuPrecision::Int8`] every linear layer of both towers (q/k/v/out projections,
//! fc1, fc2, the patch embedding as a linear over patches, and the two projections) runs
//! through `encode::quant`: i8 weights with per-output-channel scales, activations
//! quantised per token; embeddings, layer norms, softmax and the attention products stay
//! in f32.

use candle_core::{DType, Device, Tensor, D};

use super::quant::{ActivationBits, QuantLinear, WeightBits};
use super::{l2_normalize_rows, Embeddings, EncodeError, Encoder};
use crate::model::config::{Activation, ClipConfig};
use crate::model::tokenizer::TokenIds;
use crate::model::weights::{ClipWeights, F32Tensor, Towers};

mod fused;
mod parts;
pub use fused::{Profile, Step};
use parts::Bits;
pub use parts::Packed;
pub(super) use parts::Source;

pub(super) fn ce(stage: &'static str) -> impl Fn(candle_core::Error) -> EncodeError {
    move |e| EncodeError::Compute {
        stage,
        message: e.to_string(),
    }
}

pub(super) type CResult<T> = candle_core::Result<T>;

fn to_tensor(t: F32Tensor) -> Result<Tensor, EncodeError> {
    Tensor::from_vec(t.data, t.shape, &Device::Cpu).map_err(ce("loading weights"))
}

/// The numbers the CPU engine's linear layers compute in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuPrecision {
    #[default]
    F32,
    /// 8-bit weights, activations quantised per token ([`QuantOptions::default`]).
    Int8,
}

impl CpuPrecision {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Int8 => "int8",
        }
    }
}

/// Which layers go to 8 bits, and how wide the activations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantOptions {
    /// Capped by the build's kernel (the relaxed-SIMD one takes 7-bit weights).
    pub weights: WeightBits,
    /// Capped by the build's kernel (the relaxed-SIMD one takes 8-bit activations).
    pub activations: ActivationBits,
    /// The patch embedding (a linear over 3·P·P pixels) in 8 bits too.
    pub patch: bool,
    /// The visual and text projections in 8 bits too.
    pub projections: bool,
    /// The text tower's token embedding rounded to f16 (kept in f32 in memory, packed in
    /// 16 bits: the packed text tower's largest part, halved).
    pub token_embedding_f16: bool,
}

impl Default for QuantOptions {
    fn default() -> Self {
        Self {
            weights: WeightBits::Eight,
            activations: ActivationBits::Twelve,
            patch: true,
            projections: true,
            token_embedding_f16: true,
        }
    }
}

/// `y = x W^T + b`: `W^T` stored contiguous for candle's gemm, or quantised.
pub(super) enum Linear {
    F32 {
        weight_t: Tensor,
        bias: Option<Tensor>,
    },
    Int8(QuantLinear),
}

impl Linear {
    /// Replaces f32 weights by their 8-bit quantisation (already 8-bit: unchanged).
    fn quantize(&mut self, bits: (WeightBits, ActivationBits)) -> Result<(), EncodeError> {
        let Self::F32 { weight_t, bias } = self else {
            return Ok(());
        };
        let stage = "quantising weights";
        let (inputs, outputs) = weight_t.dims2().map_err(ce(stage))?;
        let flat = weight_t
            .flatten_all()
            .and_then(|w| w.to_vec1::<f32>())
            .map_err(ce(stage))?;
        let bias = bias
            .as_ref()
            .map(|b| b.to_vec1::<f32>())
            .transpose()
            .map_err(ce(stage))?;
        let q =
            QuantLinear::from_transposed(&flat, inputs, outputs, bias.as_deref(), bits.0, bits.1)
                .map_err(|e| EncodeError::Compute {
                stage,
                message: e.to_string(),
            })?;
        *self = Self::Int8(q);
        Ok(())
    }

    /// `x`: `[rows, in]` → `[rows, out]`.
    pub(super) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        match self {
            Self::F32 { weight_t, bias } => {
                let y = x.matmul(weight_t)?;
                match bias {
                    Some(b) => y.broadcast_add(b),
                    None => Ok(y),
                }
            }
            Self::Int8(q) => {
                let (rows, _) = x.dims2()?;
                let data = x.flatten_all()?.to_vec1::<f32>()?;
                let y = q
                    .forward(&data, rows)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                Tensor::from_vec(y, (rows, q.outputs()), x.device())
            }
        }
    }
}

pub(super) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    /// The same weight and bias as plain values, for the fused forward.
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f64,
}

impl LayerNorm {
    pub(super) fn load(
        weights: &mut dyn Source,
        prefix: &str,
        eps: f64,
    ) -> Result<Self, EncodeError> {
        let weight = weights.tensor(&format!("{prefix}.weight"))?;
        let bias = weights.tensor(&format!("{prefix}.bias"))?;
        let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let (w, b) = (values(&weight), values(&bias));
        let (w, b) = (
            w.map_err(ce("loading weights"))?,
            b.map_err(ce("loading weights"))?,
        );
        if w.len() != b.len() {
            return Err(EncodeError::Compute {
                stage: "loading weights",
                message: format!("{prefix}: weight and bias differ in length"),
            });
        }
        Ok(Self {
            weight,
            bias,
            w,
            b,
            eps,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let inv = (var + self.eps)?.sqrt()?.recip()?;
        centred
            .broadcast_mul(&inv)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// `t`'s values rounded to the nearest f16 (still f32), or `None` when one lies outside
/// f16's range (it would become infinite): such a table stays in f32.
pub(super) fn round_f16(t: &Tensor) -> CResult<Option<Tensor>> {
    let largest = t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    // NaN or beyond f16::MAX: kept in f32.
    if largest.is_nan() || largest > f32::from(half::f16::MAX) {
        return Ok(None);
    }
    t.to_dtype(candle_core::DType::F16)?
        .to_dtype(candle_core::DType::F32)
        .map(Some)
}

pub(super) fn activate(x: &Tensor, act: Activation) -> CResult<Tensor> {
    match act {
        Activation::Gelu => x.gelu_erf(),
        Activation::QuickGelu => x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
    }
}

/// Multi-head attention of the rows `y` (`[b * t, h]`) through the q, k and v projections,
/// with an additive `mask` broadcast over the scores (`[t, t]` causal, `[b, 1, 1, t]` for
/// padding); returns the heads' context `[b * t, h]`, before the output projection.
pub(super) fn attention(
    y: &Tensor,
    [q, k, v]: [&Linear; 3],
    (b, t, heads): (usize, usize, usize),
    mask: Option<&Tensor>,
) -> CResult<Tensor> {
    let h = y.dim(1)?;
    let dh = h / heads;
    let split = |lin: &Linear, s: f64| -> CResult<Tensor> {
        let p = lin.forward(y)?;
        let p = if s == 1.0 { p } else { (p * s)? };
        p.reshape((b, t, heads, dh))?.transpose(1, 2)?.contiguous()
    };
    let q = split(q, (dh as f64).powf(-0.5))?;
    let k = split(k, 1.0)?;
    let v = split(v, 1.0)?;
    let mut scores = q.matmul(&k.t()?.contiguous()?)?;
    if let Some(m) = mask {
        scores = scores.broadcast_add(m)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * t, h))
}

struct Layer {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Layer {
    fn load(w: &mut dyn Source, prefix: &str, eps: f64, bits: Bits) -> Result<Self, EncodeError> {
        Ok(Self {
            ln1: LayerNorm::load(w, &format!("{prefix}.layer_norm1"), eps)?,
            q: w.linear(&format!("{prefix}.self_attn.q_proj"), true, bits)?,
            k: w.linear(&format!("{prefix}.self_attn.k_proj"), true, bits)?,
            v: w.linear(&format!("{prefix}.self_attn.v_proj"), true, bits)?,
            out: w.linear(&format!("{prefix}.self_attn.out_proj"), true, bits)?,
            ln2: LayerNorm::load(w, &format!("{prefix}.layer_norm2"), eps)?,
            fc1: w.linear(&format!("{prefix}.mlp.fc1"), true, bits)?,
            fc2: w.linear(&format!("{prefix}.mlp.fc2"), true, bits)?,
        })
    }

    fn quantize(&mut self, bits: (WeightBits, ActivationBits)) -> Result<(), EncodeError> {
        for lin in [
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.out,
            &mut self.fc1,
            &mut self.fc2,
        ] {
            lin.quantize(bits)?;
        }
        Ok(())
    }
}

/// A stack of pre-LN transformer layers shared by both towers.
struct LayerStack {
    layers: Vec<Layer>,
    heads: usize,
    act: Activation,
}

impl LayerStack {
    fn load(
        weights: &mut dyn Source,
        prefix: &str,
        (count, heads): (usize, usize),
        act: Activation,
        eps: f64,
        bits: Bits,
    ) -> Result<Self, EncodeError> {
        let layers = (0..count)
            .map(|i| Layer::load(weights, &format!("{prefix}.{i}"), eps, bits))
            .collect::<Result<_, _>>()?;
        Ok(Self { layers, heads, act })
    }

    fn quantize(&mut self, bits: (WeightBits, ActivationBits)) -> Result<(), EncodeError> {
        self.layers.iter_mut().try_for_each(|l| l.quantize(bits))
    }

    /// `x`: `[batch, seq, hidden]`; `mask`: additive `[seq, seq]` or none.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> CResult<Tensor> {
        let (b, t, h) = x.dims3()?;
        let mut x = x.reshape((b * t, h))?;
        for layer in &self.layers {
            let y = layer.ln1.forward(&x)?;
            let ctx = attention(&y, [&layer.q, &layer.k, &layer.v], (b, t, self.heads), mask)?;
            x = (x + layer.out.forward(&ctx)?)?;
            let y = layer.ln2.forward(&x)?;
            let y = layer
                .fc2
                .forward(&activate(&layer.fc1.forward(&y)?, self.act)?)?;
            x = (x + y)?;
        }
        x.reshape((b, t, h))
    }
}

struct VisionTower {
    patch: Linear,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_ln: LayerNorm,
    encoder: LayerStack,
    post_ln: LayerNorm,
    projection: Linear,
    channels: usize,
    image_size: usize,
    patch_size: usize,
    hidden: usize,
}

struct TextTower {
    token_embedding: Tensor,
    /// `token_embedding` holds f16 values (`QuantOptions::token_embedding_f16`).
    embedding_f16: bool,
    position_embedding: Tensor,
    encoder: LayerStack,
    final_ln: LayerNorm,
    projection: Linear,
}

/// CLIP on the CPU with candle.
pub struct CpuEncoder {
    vision: Option<VisionTower>,
    text: Option<TextTower>,
    image_shape: [usize; 3],
    context: usize,
    vocab_size: usize,
    projection_dim: usize,
    precision: CpuPrecision,
    /// 8-bit stacks run on plain slices (`fused`), not candle tensors; off only to compare.
    fused: bool,
}

impl CpuEncoder {
    /// The engine in `precision`; `Int8` with the default options, each layer quantised
    /// as it is read (the same numbers as [`Self::new`] then [`Self::quantized`], without
    /// the f32 engine in between).
    pub fn new_with(
        config: &ClipConfig,
        mut weights: ClipWeights,
        precision: CpuPrecision,
    ) -> Result<Self, EncodeError> {
        let options = match precision {
            CpuPrecision::F32 => None,
            CpuPrecision::Int8 => Some(QuantOptions::default()),
        };
        let towers = weights.towers();
        Self::build(config, &mut weights, towers, options)
    }

    /// Turns the linear layers into 8-bit ones, one at a time (each f32 weight is dropped
    /// once its 8-bit copy exists, so the peak is the f32 engine plus one layer).
    pub fn quantized(mut self, options: QuantOptions) -> Result<Self, EncodeError> {
        let bits = (options.weights, options.activations);
        if let Some(v) = self.vision.as_mut() {
            v.encoder.quantize(bits)?;
            if options.patch {
                v.patch.quantize(bits)?;
            }
            if options.projections {
                v.projection.quantize(bits)?;
            }
        }
        if let Some(t) = self.text.as_mut() {
            if options.token_embedding_f16 && !t.embedding_f16 {
                if let Some(r) = round_f16(&t.token_embedding).map_err(ce("rounding"))? {
                    t.token_embedding = r;
                    t.embedding_f16 = true;
                }
            }
            t.encoder.quantize(bits)?;
            if options.projections {
                t.projection.quantize(bits)?;
            }
        }
        self.precision = CpuPrecision::Int8;
        Ok(self)
    }

    /// Whether 8-bit layer stacks run fused on plain slices (the default) or op by op on
    /// candle tensors (the older path, kept to compare the two in tests and benchmarks).
    pub fn with_fused(mut self, fused: bool) -> Self {
        self.set_fused(fused);
        self
    }

    /// [`Self::with_fused`] in place.
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// One forward of `count` images (CHW pixels back to back) timed per step on `clock`
    /// (milliseconds from any origin): where the 8-bit engine's time goes. `None` when the
    /// vision stack does not run fused (f32 layers, or [`Self::with_fused`] off).
    pub fn profile_images(
        &self,
        pixels: &[f32],
        count: usize,
        clock: fn() -> f64,
    ) -> Result<Option<Profile>, EncodeError> {
        let vision = self
            .vision
            .as_ref()
            .ok_or(EncodeError::TowerNotLoaded { tower: "vision" })?;
        let [c, h, w] = self.image_shape;
        if pixels.len() != count * c * h * w {
            return Err(EncodeError::PixelCount {
                count,
                expected: count * c * h * w,
                got: pixels.len(),
            });
        }
        if !(self.fused && vision.encoder.all_int8()) {
            return Ok(None);
        }
        let mut profile = Profile::new(clock);
        fused::vision(vision, pixels, count, &mut fused::Timer(Some(&mut profile)))
            .map_err(ce("image embeddings"))?;
        Ok(Some(profile))
    }

    /// What the linear layers compute in.
    pub fn precision(&self) -> CpuPrecision {
        self.precision
    }

    /// Builds the towers the weights hold, in f32 (consumed to avoid a second copy).
    pub fn new(config: &ClipConfig, mut weights: ClipWeights) -> Result<Self, EncodeError> {
        let towers = weights.towers();
        Self::build(config, &mut weights, towers, None)
    }

    /// The `towers` from `source`, 8-bit where `options` says (`None`: f32).
    fn build(
        config: &ClipConfig,
        source: &mut dyn Source,
        towers: Towers,
        options: Option<QuantOptions>,
    ) -> Result<Self, EncodeError> {
        let vision = if towers.vision() {
            Some(Self::load_vision(config, source, options)?)
        } else {
            None
        };
        let text = if towers.text() {
            Some(Self::load_text(config, source, options)?)
        } else {
            None
        };
        let v = &config.vision_config;
        Ok(Self {
            vision,
            text,
            image_shape: [v.num_channels, v.image_size, v.image_size],
            context: config.text_config.max_position_embeddings,
            vocab_size: config.text_config.vocab_size,
            projection_dim: config.projection_dim,
            precision: match options {
                Some(_) => CpuPrecision::Int8,
                None => CpuPrecision::F32,
            },
            fused: true,
        })
    }

    fn load_vision(
        config: &ClipConfig,
        w: &mut dyn Source,
        options: Option<QuantOptions>,
    ) -> Result<VisionTower, EncodeError> {
        let v = &config.vision_config;
        let bits = options.map(|o| (o.weights, o.activations));
        let when = |yes: bool| bits.filter(|_| yes);
        let eps = v.layer_norm_eps;
        Ok(VisionTower {
            patch: w.linear(
                "vision_model.embeddings.patch_embedding",
                false,
                when(options.is_some_and(|o| o.patch)),
            )?,
            class_embedding: w.tensor("vision_model.embeddings.class_embedding")?,
            position_embedding: w.tensor("vision_model.embeddings.position_embedding.weight")?,
            pre_ln: LayerNorm::load(w, "vision_model.pre_layrnorm", eps)?,
            encoder: LayerStack::load(
                w,
                "vision_model.encoder.layers",
                (v.num_hidden_layers, v.num_attention_heads),
                v.hidden_act,
                eps,
                bits,
            )?,
            post_ln: LayerNorm::load(w, "vision_model.post_layernorm", eps)?,
            projection: w.linear(
                "visual_projection",
                false,
                when(options.is_some_and(|o| o.projections)),
            )?,
            channels: v.num_channels,
            image_size: v.image_size,
            patch_size: v.patch_size,
            hidden: v.hidden_size,
        })
    }

    fn load_text(
        config: &ClipConfig,
        w: &mut dyn Source,
        options: Option<QuantOptions>,
    ) -> Result<TextTower, EncodeError> {
        let t = &config.text_config;
        let bits = options.map(|o| (o.weights, o.activations));
        let (token_embedding, embedding_f16) = w.embedding(
            "text_model.embeddings.token_embedding.weight",
            options.is_some_and(|o| o.token_embedding_f16),
        )?;
        Ok(TextTower {
            token_embedding,
            embedding_f16,
            position_embedding: w.tensor("text_model.embeddings.position_embedding.weight")?,
            encoder: LayerStack::load(
                w,
                "text_model.encoder.layers",
                (t.num_hidden_layers, t.num_attention_heads),
                t.hidden_act,
                t.layer_norm_eps,
                bits,
            )?,
            final_ln: LayerNorm::load(w, "text_model.final_layer_norm", t.layer_norm_eps)?,
            projection: w.linear(
                "text_projection",
                false,
                bits.filter(|_| options.is_some_and(|o| o.projections)),
            )?,
        })
    }

    fn vision_forward(&self, v: &VisionTower, pixels: &[f32], count: usize) -> CResult<Vec<f32>> {
        if self.fused && v.encoder.all_int8() {
            return fused::vision(v, pixels, count, &mut fused::Timer(None));
        }
        Self::vision_forward_candle(v, pixels, count)
    }

    fn vision_forward_candle(v: &VisionTower, pixels: &[f32], count: usize) -> CResult<Vec<f32>> {
        let (c, s, p) = (v.channels, v.image_size, v.patch_size);
        let side = s / p;
        let n = side * side;
        let k = c * p * p;
        // Patches in the conv's (channel, row, column) order, row-major over the grid.
        let mut patches = vec![0f32; count * n * k];
        for img in 0..count {
            let src = &pixels[img * c * s * s..(img + 1) * c * s * s];
            for gy in 0..side {
                for gx in 0..side {
                    let dst = &mut patches[((img * n) + gy * side + gx) * k..][..k];
                    let mut o = 0;
                    for ch in 0..c {
                        for ky in 0..p {
                            let row = ch * s * s + (gy * p + ky) * s + gx * p;
                            dst[o..o + p].copy_from_slice(&src[row..row + p]);
                            o += p;
                        }
                    }
                }
            }
        }
        let patches = Tensor::from_vec(patches, (count * n, k), &Device::Cpu)?;
        let emb = v.patch.forward(&patches)?.reshape((count, n, v.hidden))?;
        let cls = v
            .class_embedding
            .reshape((1, 1, v.hidden))?
            .broadcast_as((count, 1, v.hidden))?;
        let x = Tensor::cat(&[&cls, &emb], 1)?.broadcast_add(&v.position_embedding)?;
        let x = v.pre_ln.forward(&x)?;
        let x = v.encoder.forward(&x, None)?;
        let pooled = x.narrow(1, 0, 1)?.reshape((count, v.hidden))?;
        let pooled = v.post_ln.forward(&pooled)?;
        let out = v.projection.forward(&pooled)?;
        out.flatten_all()?.to_vec1::<f32>()
    }

    fn text_forward(&self, t: &TextTower, texts: &[TokenIds], seq: usize) -> CResult<Vec<f32>> {
        if self.fused && t.encoder.all_int8() {
            return fused::text(t, texts, seq);
        }
        Self::text_forward_candle(t, texts, seq)
    }

    fn text_forward_candle(t: &TextTower, texts: &[TokenIds], seq: usize) -> CResult<Vec<f32>> {
        let b = texts.len();
        let ids: Vec<u32> = texts
            .iter()
            .flat_map(|x| x.ids[..seq].iter().copied())
            .collect();
        let ids = Tensor::from_vec(ids, b * seq, &Device::Cpu)?;
        let hidden = t.token_embedding.dim(1)?;
        let x = t
            .token_embedding
            .index_select(&ids, 0)?
            .reshape((b, seq, hidden))?
            .broadcast_add(&t.position_embedding.narrow(0, 0, seq)?)?;
        let mask: Vec<f32> = (0..seq)
            .flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (seq, seq), &Device::Cpu)?;
        let x = t.encoder.forward(&x, Some(&mask))?;
        let x = x.reshape((b * seq, hidden))?;
        let rows: Vec<u32> = texts
            .iter()
            .enumerate()
            .map(|(i, tk)| (i * seq + tk.eos_position) as u32)
            .collect();
        let rows = Tensor::from_vec(rows, b, &Device::Cpu)?;
        let pooled = x.index_select(&rows, 0)?;
        let pooled = t.final_ln.forward(&pooled)?;
        let out = t.projection.forward(&pooled)?;
        out.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
    }
}

impl Encoder for CpuEncoder {
    fn embedding_dim(&self) -> usize {
        self.projection_dim
    }

    fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    fn encode_images(&self, pixels: &[f32], count: usize) -> Result<Embeddings, EncodeError> {
        let [c, h, w] = self.image_shape();
        let expected = count * c * h * w;
        if pixels.len() != expected {
            return Err(EncodeError::PixelCount {
                count,
                expected,
                got: pixels.len(),
            });
        }
        if count == 0 {
            return Ok(Embeddings {
                dim: self.projection_dim,
                data: Vec::new(),
            });
        }
        let vision = self
            .vision
            .as_ref()
            .ok_or(EncodeError::TowerNotLoaded { tower: "vision" })?;
        let mut data = self
            .vision_forward(vision, pixels, count)
            .map_err(ce("image embeddings"))?;
        l2_normalize_rows(&mut data, self.projection_dim);
        Ok(Embeddings {
            dim: self.projection_dim,
            data,
        })
    }

    fn encode_texts(&self, texts: &[TokenIds]) -> Result<Embeddings, EncodeError> {
        super::validate_texts(texts, self.context, self.vocab_size)?;
        if texts.is_empty() {
            return Ok(Embeddings {
                dim: self.projection_dim,
                data: Vec::new(),
            });
        }
        let seq = texts.iter().map(|t| t.eos_position + 1).max().unwrap_or(1);
        let text = self
            .text
            .as_ref()
            .ok_or(EncodeError::TowerNotLoaded { tower: "text" })?;
        let mut data = self
            .text_forward(text, texts, seq)
            .map_err(ce("text embeddings"))?;
        l2_normalize_rows(&mut data, self.projection_dim);
        Ok(Embeddings {
            dim: self.projection_dim,
            data,
        })
    }
}
