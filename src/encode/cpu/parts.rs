//! Where the CPU engine's parts come from and go to: the [`Source`] it is built from (the
//! model's f32 tensors, quantised here when asked, or the parts of an engine packed by an
//! earlier build, `encode::packed`), and the walk over a built engine's parts that packs it.
//!
//! The names are the checkpoint's (`{prefix}.weight`, `{prefix}.bias`; a linear layer
//! kept in f32 is packed as `{prefix}.weight_t`, the transposed copy candle's gemm reads),
//! so the walk here and the loaders in `cpu` must name the same parts: the round-trip test
//! (`model_cache::packed`'s tests) checks that they do. No I/O here.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};

use super::{
    ce, round_f16, to_tensor, CpuEncoder, EncodeError, LayerNorm, LayerStack, Linear, QuantOptions,
};
use crate::encode::packed::{Part, PartRef};
use crate::encode::quant::{ActivationBits, QuantLinear, WeightBits};
use crate::model::config::ClipConfig;
use crate::model::weights::{TensorSource, Towers};

/// The 8-bit ranges a linear layer is quantised to, or `None` for f32.
pub(super) type Bits = Option<(WeightBits, ActivationBits)>;

/// Where the engine's parts come from while it is built: the model's f32 tensors
/// (`ClipWeights` or any `TensorSource`, quantised here when asked), or parts packed by an earlier build
/// (`pack::Packed`). Each part is taken once.
pub(in crate::encode) trait Source {
    fn tensor(&mut self, name: &str) -> Result<Tensor, EncodeError>;
    /// The linear layer `prefix` (`{prefix}.weight`, `outputs × inputs…` as PyTorch stores
    /// it, and `{prefix}.bias` when `bias`), in 8 bits when `bits` says so.
    fn linear(&mut self, prefix: &str, bias: bool, bits: Bits) -> Result<Linear, EncodeError>;
    /// An embedding table, its values rounded to f16 when `f16` and they fit (packed
    /// parts are already), and whether they were.
    fn embedding(&mut self, name: &str, f16: bool) -> Result<(Tensor, bool), EncodeError> {
        let t = self.tensor(name)?;
        if !f16 {
            return Ok((t, false));
        }
        match round_f16(&t).map_err(ce("rounding the token embedding"))? {
            Some(r) => Ok((r, true)),
            None => Ok((t, false)),
        }
    }
}

impl<T: TensorSource> Source for T {
    fn tensor(&mut self, name: &str) -> Result<Tensor, EncodeError> {
        to_tensor(self.take(name)?)
    }

    fn linear(&mut self, prefix: &str, bias: bool, bits: Bits) -> Result<Linear, EncodeError> {
        let w = self.take(&format!("{prefix}.weight"))?;
        let outputs = w.shape.first().copied().unwrap_or(0);
        let inputs = w.shape.iter().skip(1).product::<usize>();
        let bias = if bias {
            Some(self.take(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        if let Some((wb, ab)) = bits {
            // Straight from PyTorch's row-major layout: no transposed f32 copy.
            let q = QuantLinear::new(
                &w.data,
                outputs,
                inputs,
                bias.as_ref().map(|b| &b.data[..]),
                wb,
                ab,
            )
            .map_err(|e| EncodeError::Compute {
                stage: "quantising weights",
                message: e.to_string(),
            })?;
            return Ok(Linear::Int8(q));
        }
        let weight_t = Tensor::from_vec(w.data, (outputs, inputs), &Device::Cpu)
            .and_then(|t| t.t()?.contiguous())
            .map_err(ce("loading weights"))?;
        let bias = bias.map(to_tensor).transpose()?;
        Ok(Linear::F32 { weight_t, bias })
    }
}

/// The parts of a packed engine, read back by name.
pub struct Packed {
    parts: BTreeMap<String, Part>,
}

impl Packed {
    pub fn new(parts: impl IntoIterator<Item = (String, Part)>) -> Self {
        Self {
            parts: parts.into_iter().collect(),
        }
    }

    fn missing(name: &str) -> EncodeError {
        EncodeError::Compute {
            stage: "reading the packed weights",
            message: format!("{name} is missing or of the wrong kind"),
        }
    }
}

impl Source for Packed {
    fn tensor(&mut self, name: &str) -> Result<Tensor, EncodeError> {
        match self.parts.remove(name) {
            Some(Part::Tensor(t)) => to_tensor(t),
            _ => Err(Self::missing(name)),
        }
    }

    fn embedding(&mut self, name: &str, f16: bool) -> Result<(Tensor, bool), EncodeError> {
        // Rounded when packed (`PartRef::F16`) if it could be; a packed engine is never
        // packed again, so the flag only tells what was asked.
        Ok((self.tensor(name)?, f16))
    }

    fn linear(&mut self, prefix: &str, bias: bool, bits: Bits) -> Result<Linear, EncodeError> {
        if bits.is_some() {
            return match self.parts.remove(prefix) {
                Some(Part::Quant(q)) => Ok(Linear::Int8(q)),
                _ => Err(Self::missing(prefix)),
            };
        }
        let weight_t = self.tensor(&format!("{prefix}.weight_t"))?;
        let bias = if bias {
            Some(self.tensor(&format!("{prefix}.bias"))?)
        } else {
            None
        };
        Ok(Linear::F32 { weight_t, bias })
    }
}

fn push_linear<'a>(out: &mut Vec<(String, PartRef<'a>)>, prefix: &str, lin: &'a Linear) {
    match lin {
        Linear::Int8(q) => out.push((prefix.to_owned(), PartRef::Quant(q))),
        Linear::F32 { weight_t, bias } => {
            out.push((format!("{prefix}.weight_t"), PartRef::Tensor(weight_t)));
            if let Some(b) = bias {
                out.push((format!("{prefix}.bias"), PartRef::Tensor(b)));
            }
        }
    }
}

fn push_norm<'a>(out: &mut Vec<(String, PartRef<'a>)>, prefix: &str, ln: &'a LayerNorm) {
    out.push((format!("{prefix}.weight"), PartRef::Tensor(&ln.weight)));
    out.push((format!("{prefix}.bias"), PartRef::Tensor(&ln.bias)));
}

fn push_stack<'a>(out: &mut Vec<(String, PartRef<'a>)>, prefix: &str, stack: &'a LayerStack) {
    for (i, l) in stack.layers.iter().enumerate() {
        let p = format!("{prefix}.{i}");
        push_norm(out, &format!("{p}.layer_norm1"), &l.ln1);
        for (name, lin) in [
            ("q_proj", &l.q),
            ("k_proj", &l.k),
            ("v_proj", &l.v),
            ("out_proj", &l.out),
        ] {
            push_linear(out, &format!("{p}.self_attn.{name}"), lin);
        }
        push_norm(out, &format!("{p}.layer_norm2"), &l.ln2);
        push_linear(out, &format!("{p}.mlp.fc1"), &l.fc1);
        push_linear(out, &format!("{p}.mlp.fc2"), &l.fc2);
    }
}

impl CpuEncoder {
    /// The engine's parts by name, in the order they are packed (`encode::packed`).
    pub fn parts(&self) -> Vec<(String, PartRef<'_>)> {
        let mut out = Vec::new();
        if let Some(v) = &self.vision {
            push_linear(
                &mut out,
                "vision_model.embeddings.patch_embedding",
                &v.patch,
            );
            out.push((
                "vision_model.embeddings.class_embedding".into(),
                PartRef::Tensor(&v.class_embedding),
            ));
            out.push((
                "vision_model.embeddings.position_embedding.weight".into(),
                PartRef::Tensor(&v.position_embedding),
            ));
            push_norm(&mut out, "vision_model.pre_layrnorm", &v.pre_ln);
            push_stack(&mut out, "vision_model.encoder.layers", &v.encoder);
            push_norm(&mut out, "vision_model.post_layernorm", &v.post_ln);
            push_linear(&mut out, "visual_projection", &v.projection);
        }
        if let Some(t) = &self.text {
            let embedding = if t.embedding_f16 {
                PartRef::F16(&t.token_embedding)
            } else {
                PartRef::Tensor(&t.token_embedding)
            };
            out.push((
                "text_model.embeddings.token_embedding.weight".into(),
                embedding,
            ));
            out.push((
                "text_model.embeddings.position_embedding.weight".into(),
                PartRef::Tensor(&t.position_embedding),
            ));
            push_stack(&mut out, "text_model.encoder.layers", &t.encoder);
            push_norm(&mut out, "text_model.final_layer_norm", &t.final_ln);
            push_linear(&mut out, "text_projection", &t.projection);
        }
        out
    }

    /// The engine of `towers` from the parts [`Self::parts`] gave on a build of the same
    /// kernel, quantised with `options` (the packed file's key said which).
    pub fn from_packed(
        config: &ClipConfig,
        towers: Towers,
        options: QuantOptions,
        mut parts: Packed,
    ) -> Result<Self, EncodeError> {
        Self::build(config, &mut parts, towers, Some(options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedding_is_rounded_to_f16_only_when_it_fits() -> Result<(), EncodeError> {
        let table = |values: Vec<f32>| crate::model::weights::F32Tensor {
            shape: vec![2, 2],
            data: values,
        };
        let mut packed = Packed::new([
            (
                "small".to_owned(),
                Part::Tensor(table(vec![0.1, -3.0, 1e-6, 0.0])),
            ),
            (
                "large".to_owned(),
                Part::Tensor(table(vec![0.1, 7e4, 1.0, 2.0])),
            ),
        ]);
        let small = packed.tensor("small")?;
        let large = packed.tensor("large")?;
        let rounded = round_f16(&small)
            .map_err(ce("test"))?
            .ok_or(EncodeError::Compute {
                stage: "test",
                message: "not rounded".into(),
            })?;
        let got = rounded.flatten_all().and_then(|t| t.to_vec1::<f32>());
        let want: Vec<f32> = [0.1f32, -3.0, 1e-6, 0.0]
            .iter()
            .map(|v| half::f16::from_f32(*v).to_f32())
            .collect();
        assert_eq!(got.map_err(ce("test"))?, want);
        assert!(round_f16(&large).map_err(ce("test"))?.is_none());
        Ok(())
    }
}
