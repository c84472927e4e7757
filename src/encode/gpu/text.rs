//! The text tower on the device, as transformers' `CLIPTextTransformer` followed by
//! `text_projection`: token and position embeddings, the causal layer stack,
//! `final_layer_norm` of the end token's row, the projection and L2 normalisation.
//!
//! The token table (49408 x hidden) is the largest tensor of a CLIP model. When it does not
//! fit one storage binding of the adapter (ViT-L/14's f32 table is 152 MB; lavapipe binds
//! 128 MiB), it stays in memory and the lookup is done on the CPU before upload: that adds
//! no round trip, since the ids come from the CPU anyway.

use super::buffers::{check_size, to_bytes, upload};
use super::kernels::Precision;
use super::layers::{Head, Stack, StackShape};
use super::ops::ProgramBuilder;
use super::workspace::{Needs, Workspace};
use super::GpuError;
use crate::model::config::TextConfig;
use crate::model::weights::ClipWeights;

const TOKEN_TABLE: &str = "text_model.embeddings.token_embedding.weight";
const POSITIONS: &str = "text_model.embeddings.position_embedding.weight";

enum TokenTable {
    Device(wgpu::Buffer),
    /// Table and positions kept on the CPU.
    Host {
        table: Vec<f32>,
        pos: Vec<f32>,
    },
}

pub(crate) struct Text {
    table: TokenTable,
    pos: wgpu::Buffer,
    stack: Stack,
    head: Head,
    pub hidden: usize,
    pub context: usize,
    pub projection_dim: usize,
}

impl Text {
    pub fn upload(
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        weights: &mut ClipWeights,
        t: &TextConfig,
        projection_dim: usize,
        precision: Precision,
    ) -> Result<Self, GpuError> {
        let table_t = weights.take(TOKEN_TABLE)?;
        let table_bytes = table_t.data.len() as u64 * precision.size_bytes();
        let pos_t = weights.take(POSITIONS)?;
        let pos = upload(device, limits, POSITIONS, &pos_t.data, precision)?;
        let table = if check_size(limits, TOKEN_TABLE, super::buffers::padded(table_bytes)).is_ok()
        {
            TokenTable::Device(upload(
                device,
                limits,
                TOKEN_TABLE,
                &table_t.data,
                precision,
            )?)
        } else {
            TokenTable::Host {
                table: table_t.data,
                pos: pos_t.data,
            }
        };
        let head = Head::upload(
            device,
            limits,
            weights,
            "text_model.final_layer_norm",
            "text_projection.weight",
            projection_dim,
            precision,
        )?;
        let stack = Stack::upload(
            device,
            limits,
            weights,
            "text_model.encoder.layers",
            t.num_hidden_layers,
            StackShape {
                hidden: t.hidden_size,
                intermediate: t.intermediate_size,
                heads: t.num_attention_heads,
                act: t.hidden_act.into(),
                eps: t.layer_norm_eps,
            },
            precision,
        )?;
        Ok(Self {
            table,
            pos,
            stack,
            head,
            hidden: t.hidden_size,
            context: t.max_position_embeddings,
            projection_dim,
        })
    }

    /// True when the token lookup runs on the CPU (the table exceeds a binding).
    pub fn lookup_on_host(&self) -> bool {
        matches!(self.table, TokenTable::Host { .. })
    }

    /// Workspace bytes for `batch` texts of `seq` positions.
    pub fn needs(&self, batch: usize, seq: usize, precision: Precision) -> Needs {
        let s = self.stack.shape;
        let e = precision.size_bytes();
        let rows = (batch * seq) as u64;
        let (h, i, p) = (
            s.hidden as u64,
            s.intermediate as u64,
            self.projection_dim as u64,
        );
        Needs {
            x: rows * h * e,
            y: rows * h * e,
            qkv: (rows * 3 * h).max(batch as u64 * p) * e,
            ctx: rows * h * e,
            h: rows * i * e,
            pixels: 0,
            ids: rows * 4,
            rows: batch as u64 * 4,
            out: batch as u64 * p * 4,
        }
    }

    /// The first residual stream computed on the CPU, as bytes for `ws.x`, when the table
    /// lives there; `None` when the device does the lookup from `ws.ids`.
    pub fn host_embedding(&self, ids: &[u32], seq: usize, precision: Precision) -> Option<Vec<u8>> {
        let TokenTable::Host { table, pos } = &self.table else {
            return None;
        };
        let h = self.hidden;
        let x: Vec<f32> = ids
            .iter()
            .enumerate()
            .flat_map(|(r, id)| {
                let t = r % seq;
                let row = &table[*id as usize * h..][..h];
                row.iter().zip(&pos[t * h..(t + 1) * h]).map(|(a, b)| a + b)
            })
            .collect();
        Some(to_bytes(&x, precision))
    }

    /// Records the tower for `batch` texts of `seq` positions (ids in `ws.ids`, or the
    /// embedded rows already in `ws.x`), pooled at the rows listed in `ws.rows`.
    pub fn record(
        &self,
        prog: &mut ProgramBuilder<'_>,
        ws: &Workspace,
        batch: usize,
        seq: usize,
    ) -> Result<(), GpuError> {
        let s = self.stack.shape;
        if let TokenTable::Device(table) = &self.table {
            prog.embed_tokens(&ws.ids, table, &self.pos, &ws.x, batch * seq, seq, s.hidden)?;
        }
        self.stack.record(prog, ws, batch, seq, true)?;
        self.head.record(prog, ws, batch, s.hidden, s.eps)
    }
}
