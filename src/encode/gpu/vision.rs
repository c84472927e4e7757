//! The vision tower on the device, as transformers' `CLIPVisionTransformer` followed by
//! `visual_projection`: im2col + matmul for the patch embedding (a stride-p convolution
//! without bias), class token and position embeddings, `pre_layrnorm`, the layer stack,
//! the class token's row through `post_layernorm`, the projection and L2 normalisation.

use super::kernels::Precision;
use super::layers::{put, Head, Stack, StackShape};
use super::ops::ProgramBuilder;
use super::workspace::{Needs, Workspace};
use super::GpuError;
use crate::model::config::VisionConfig;
use crate::model::weights::ClipWeights;

pub(crate) struct Vision {
    patch_w: wgpu::Buffer,
    class_emb: wgpu::Buffer,
    pos: wgpu::Buffer,
    pre_g: wgpu::Buffer,
    pre_b: wgpu::Buffer,
    stack: Stack,
    head: Head,
    pub channels: usize,
    pub image: usize,
    pub patch: usize,
    pub seq: usize,
    pub projection_dim: usize,
}

impl Vision {
    pub fn upload(
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        weights: &mut ClipWeights,
        v: &VisionConfig,
        projection_dim: usize,
        precision: Precision,
    ) -> Result<Self, GpuError> {
        let mut take = |name: &str| put(device, limits, weights, name, precision);
        let patch_w = take("vision_model.embeddings.patch_embedding.weight")?;
        let class_emb = take("vision_model.embeddings.class_embedding")?;
        let pos = take("vision_model.embeddings.position_embedding.weight")?;
        let pre_g = take("vision_model.pre_layrnorm.weight")?;
        let pre_b = take("vision_model.pre_layrnorm.bias")?;
        let stack = Stack::upload(
            device,
            limits,
            weights,
            "vision_model.encoder.layers",
            v.num_hidden_layers,
            StackShape {
                hidden: v.hidden_size,
                intermediate: v.intermediate_size,
                heads: v.num_attention_heads,
                act: v.hidden_act.into(),
                eps: v.layer_norm_eps,
            },
            precision,
        )?;
        let head = Head::upload(
            device,
            limits,
            weights,
            "vision_model.post_layernorm",
            "visual_projection.weight",
            projection_dim,
            precision,
        )?;
        Ok(Self {
            patch_w,
            class_emb,
            pos,
            pre_g,
            pre_b,
            stack,
            head,
            channels: v.num_channels,
            image: v.image_size,
            patch: v.patch_size,
            seq: v.num_positions(),
            projection_dim,
        })
    }

    fn patch_len(&self) -> usize {
        self.channels * self.patch * self.patch
    }

    /// Workspace bytes for `batch` images.
    pub fn needs(&self, batch: usize, precision: Precision) -> Needs {
        let s = self.stack.shape;
        let e = precision.size_bytes();
        let rows = (batch * self.seq) as u64;
        let patches = (batch * (self.seq - 1)) as u64;
        let (h, i, p) = (
            s.hidden as u64,
            s.intermediate as u64,
            self.projection_dim as u64,
        );
        Needs {
            x: rows * h * e,
            y: rows * h * e,
            // The patch embeddings and then the projected rows pass through qkv.
            qkv: (rows * 3 * h).max(patches * h).max(batch as u64 * p) * e,
            ctx: rows * h * e,
            // The im2col patches pass through h.
            h: (rows * i).max(patches * self.patch_len() as u64) * e,
            pixels: (batch * self.channels * self.image * self.image) as u64 * 4,
            ids: 0,
            rows: batch as u64 * 4,
            out: batch as u64 * p * 4,
        }
    }

    /// Records the tower for `batch` images whose pixels are in `ws.pixels` and whose pooled
    /// rows (`b * seq`) are in `ws.rows`; the embeddings land in `ws.out`.
    pub fn record(
        &self,
        prog: &mut ProgramBuilder<'_>,
        ws: &Workspace,
        batch: usize,
    ) -> Result<(), GpuError> {
        let s = self.stack.shape;
        let n = self.seq - 1;
        prog.im2col(
            &ws.pixels,
            &ws.h,
            batch,
            self.channels,
            self.image,
            self.patch,
        )?;
        prog.matmul(
            &ws.h,
            &self.patch_w,
            None,
            &ws.qkv,
            batch * n,
            s.hidden,
            self.patch_len(),
            super::ops::Act::None,
            false,
        )?;
        prog.assemble_vision(
            &ws.qkv,
            &self.pos,
            &self.class_emb,
            &ws.y,
            batch,
            self.seq,
            s.hidden,
        )?;
        prog.layernorm(
            &ws.y,
            &self.pre_g,
            &self.pre_b,
            &ws.x,
            batch * self.seq,
            s.hidden,
            s.eps,
        )?;
        self.stack.record(prog, ws, batch, self.seq, false)?;
        self.head.record(prog, ws, batch, s.hidden, s.eps)
    }
}
