//! The pre-LN transformer layers both towers share, on the device: weights uploaded once,
//! and the seven launches per layer that transformers' `CLIPEncoderLayer` amounts to:
//! layer_norm1 → fused q/k/v projection → attention → out_proj (+ residual, in place) →
//! layer_norm2 → fc1 + activation → fc2 (+ residual, in place). q, k and v weights are
//! concatenated into one `[3 * hidden, hidden]` matrix at upload so that one matmul makes all
//! three; the attention kernel applies `head_dim^-0.5` to the scores.

use super::buffers::upload;
use super::kernels::Precision;
use super::ops::{Act, ProgramBuilder};
use super::workspace::Workspace;
use super::GpuError;
use crate::model::weights::ClipWeights;

pub(crate) struct Layer {
    ln1_g: wgpu::Buffer,
    ln1_b: wgpu::Buffer,
    qkv_w: wgpu::Buffer,
    qkv_b: wgpu::Buffer,
    out_w: wgpu::Buffer,
    out_b: wgpu::Buffer,
    ln2_g: wgpu::Buffer,
    ln2_b: wgpu::Buffer,
    fc1_w: wgpu::Buffer,
    fc1_b: wgpu::Buffer,
    fc2_w: wgpu::Buffer,
    fc2_b: wgpu::Buffer,
}

/// Shapes and settings of one tower's layer stack.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StackShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub act: Act,
    pub eps: f64,
}

pub(crate) struct Stack {
    pub shape: StackShape,
    layers: Vec<Layer>,
}

/// Uploads one tensor by name.
pub(crate) fn put(
    device: &wgpu::Device,
    limits: &wgpu::Limits,
    weights: &mut ClipWeights,
    name: &str,
    precision: Precision,
) -> Result<wgpu::Buffer, GpuError> {
    let t = weights.take(name)?;
    upload(device, limits, name, &t.data, precision)
}

impl Stack {
    pub fn upload(
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        weights: &mut ClipWeights,
        prefix: &str,
        count: usize,
        shape: StackShape,
        precision: Precision,
    ) -> Result<Self, GpuError> {
        let mut layers = Vec::with_capacity(count);
        for i in 0..count {
            let p = format!("{prefix}.{i}");
            let ln1_g = put(
                device,
                limits,
                weights,
                &format!("{p}.layer_norm1.weight"),
                precision,
            )?;
            let ln1_b = put(
                device,
                limits,
                weights,
                &format!("{p}.layer_norm1.bias"),
                precision,
            )?;
            let mut qkv_w = Vec::with_capacity(3 * shape.hidden * shape.hidden);
            let mut qkv_b = Vec::with_capacity(3 * shape.hidden);
            for proj in ["q_proj", "k_proj", "v_proj"] {
                qkv_w.extend(weights.take(&format!("{p}.self_attn.{proj}.weight"))?.data);
                qkv_b.extend(weights.take(&format!("{p}.self_attn.{proj}.bias"))?.data);
            }
            let qkv_name = format!("{p}.self_attn.qkv (fused)");
            let qkv_w = upload(device, limits, &qkv_name, &qkv_w, precision)?;
            let qkv_b = upload(device, limits, &qkv_name, &qkv_b, precision)?;
            let mut take =
                |name: &str| put(device, limits, weights, &format!("{p}.{name}"), precision);
            layers.push(Layer {
                ln1_g,
                ln1_b,
                qkv_w,
                qkv_b,
                out_w: take("self_attn.out_proj.weight")?,
                out_b: take("self_attn.out_proj.bias")?,
                ln2_g: take("layer_norm2.weight")?,
                ln2_b: take("layer_norm2.bias")?,
                fc1_w: take("mlp.fc1.weight")?,
                fc1_b: take("mlp.fc1.bias")?,
                fc2_w: take("mlp.fc2.weight")?,
                fc2_b: take("mlp.fc2.bias")?,
            });
        }
        Ok(Self { shape, layers })
    }

    /// Records every layer over `batch` sequences of `seq` rows: the residual stream in
    /// `ws.x` (updated in place), layer-norm outputs in `ws.y`, q/k/v in `ws.qkv`, attention
    /// contexts in `ws.ctx`, the MLP's hidden rows in `ws.h`.
    pub fn record(
        &self,
        prog: &mut ProgramBuilder<'_>,
        b: &Workspace,
        batch: usize,
        seq: usize,
        causal: bool,
    ) -> Result<(), GpuError> {
        let s = self.shape;
        let rows = batch * seq;
        let (h, i) = (s.hidden, s.intermediate);
        for l in &self.layers {
            prog.layernorm(&b.x, &l.ln1_g, &l.ln1_b, &b.y, rows, h, s.eps)?;
            prog.matmul(
                &b.y,
                &l.qkv_w,
                Some(&l.qkv_b),
                &b.qkv,
                rows,
                3 * h,
                h,
                Act::None,
                false,
            )?;
            prog.attention(&b.qkv, &b.ctx, batch, seq, s.heads, h / s.heads, causal)?;
            prog.matmul(
                &b.ctx,
                &l.out_w,
                Some(&l.out_b),
                &b.x,
                rows,
                h,
                h,
                Act::None,
                true,
            )?;
            prog.layernorm(&b.x, &l.ln2_g, &l.ln2_b, &b.y, rows, h, s.eps)?;
            prog.matmul(
                &b.y,
                &l.fc1_w,
                Some(&l.fc1_b),
                &b.h,
                rows,
                i,
                h,
                s.act,
                false,
            )?;
            prog.matmul(
                &b.h,
                &l.fc2_w,
                Some(&l.fc2_b),
                &b.x,
                rows,
                h,
                i,
                Act::None,
                true,
            )?;
        }
        Ok(())
    }
}

/// How both towers end: the pooled rows listed in `ws.rows` (the class token of an image,
/// the end token of a text) gathered, the final layer norm, the projection without bias and
/// L2 normalisation into `ws.out`.
pub(crate) struct Head {
    norm_g: wgpu::Buffer,
    norm_b: wgpu::Buffer,
    proj: wgpu::Buffer,
    pub projection_dim: usize,
}

impl Head {
    /// Uploads `{norm}.weight`, `{norm}.bias` and the projection `proj`.
    pub fn upload(
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        weights: &mut ClipWeights,
        norm: &str,
        proj: &str,
        projection_dim: usize,
        precision: Precision,
    ) -> Result<Self, GpuError> {
        let mut take = |name: &str| put(device, limits, weights, name, precision);
        Ok(Self {
            norm_g: take(&format!("{norm}.weight"))?,
            norm_b: take(&format!("{norm}.bias"))?,
            proj: take(proj)?,
            projection_dim,
        })
    }

    /// Records the head over `batch` items whose residual stream is in `ws.x`.
    pub fn record(
        &self,
        prog: &mut ProgramBuilder<'_>,
        ws: &Workspace,
        batch: usize,
        hidden: usize,
        eps: f64,
    ) -> Result<(), GpuError> {
        let p = self.projection_dim;
        prog.gather_rows(&ws.x, &ws.rows, &ws.y, batch, hidden)?;
        prog.layernorm(
            &ws.y,
            &self.norm_g,
            &self.norm_b,
            &ws.ctx,
            batch,
            hidden,
            eps,
        )?;
        prog.matmul(
            &ws.ctx,
            &self.proj,
            None,
            &ws.qkv,
            batch,
            p,
            hidden,
            Act::None,
            false,
        )?;
        prog.l2_normalize(&ws.qkv, &ws.out, batch, p)
    }
}
