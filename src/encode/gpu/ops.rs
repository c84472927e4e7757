//! Recording kernel launches: a [`ProgramBuilder`] collects steps (kernel, shape parameters,
//! buffers, workgroup grid) and [`ProgramBuilder::finish`] writes every step's parameters
//! into one uniform buffer (one aligned slot per step) and makes the bind groups once. The
//! resulting [`Program`] is replayed into a compute pass for every batch of the same shape:
//! recording a batch costs no allocation and no parameter upload. wgpu orders the dispatches
//! of a pass and inserts the barriers between them.

use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use super::kernels::{Kernel, Kernels, MatmulVariant};
use super::GpuError;
use crate::model::config::Activation;

/// The activation fused into a matmul's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    QuickGelu,
    Gelu,
}

impl Act {
    fn code(self) -> u32 {
        match self {
            Act::None => 0,
            Act::QuickGelu => 1,
            Act::Gelu => 2,
        }
    }
}

impl From<Activation> for Act {
    fn from(a: Activation) -> Self {
        match a {
            Activation::QuickGelu => Act::QuickGelu,
            Activation::Gelu => Act::Gelu,
        }
    }
}

const PARAMS_BYTES: u64 = 32;

struct Step {
    kernel: Kernel,
    params: [u32; 8],
    buffers: Vec<(u32, wgpu::Buffer)>,
    groups: [u32; 3],
}

/// Collects the steps of a program.
pub struct ProgramBuilder<'k> {
    kernels: &'k Kernels,
    max_groups: u32,
    steps: Vec<Step>,
}

/// Recorded steps, ready to replay.
pub struct Program {
    steps: Vec<(Kernel, wgpu::BindGroup, [u32; 3])>,
    _params: Option<wgpu::Buffer>,
}

fn u(v: usize, what: &str) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::Limits {
        what: what.to_owned(),
        needed: v as u64,
        limit: u64::from(u32::MAX),
    })
}

impl<'k> ProgramBuilder<'k> {
    pub fn new(kernels: &'k Kernels, limits: &wgpu::Limits) -> Self {
        Self {
            kernels,
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            steps: Vec::new(),
        }
    }

    /// A grid of `groups` workgroups folded into x and y (kernels rebuild the flat index).
    fn grid(&self, groups: u32) -> [u32; 3] {
        if groups <= self.max_groups {
            [groups.max(1), 1, 1]
        } else {
            [self.max_groups, groups.div_ceil(self.max_groups), 1]
        }
    }

    fn check_groups(&self, groups: [u32; 3], what: &str) -> Result<(), GpuError> {
        match groups.iter().max() {
            Some(g) if *g > self.max_groups => Err(GpuError::Limits {
                what: format!("{what} (workgroups per dimension)"),
                needed: u64::from(*g),
                limit: u64::from(self.max_groups),
            }),
            _ => Ok(()),
        }
    }

    fn push(
        &mut self,
        kernel: Kernel,
        params: [u32; 8],
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) {
        self.steps.push(Step {
            kernel,
            params,
            buffers: buffers.iter().map(|(i, b)| (*i, (*b).clone())).collect(),
            groups,
        });
    }

    /// `c = act(a · bᵀ + bias) (+ c)`: a `[m, k]`, b `[n, k]`, c `[m, n]`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &mut self,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        c: &wgpu::Buffer,
        m: usize,
        n: usize,
        k: usize,
        act: Act,
        accumulate: bool,
    ) -> Result<(), GpuError> {
        let (m, n, k) = (
            u(m, "matmul rows")?,
            u(n, "matmul columns")?,
            u(k, "matmul depth")?,
        );
        let (variant, tile) = self.kernels.config.tile_for(m, n);
        let kernel = match variant {
            MatmulVariant::Large => Kernel::MatmulLarge,
            MatmulVariant::Medium => Kernel::MatmulMedium,
            MatmulVariant::Small => Kernel::MatmulSmall,
        };
        let flags = u32::from(bias.is_some()) | (act.code() << 1) | (u32::from(accumulate) << 3);
        let groups = [n.div_ceil(tile.tn).max(1), m.div_ceil(tile.tm).max(1), 1];
        self.check_groups(groups, "matmul")?;
        // Without a bias any read-only buffer fills the slot; the kernel does not read it.
        let bias = bias.unwrap_or(b);
        self.push(
            kernel,
            [m, n, k, flags, 0, 0, 0, 0],
            &[(1, a), (2, b), (3, bias), (4, c)],
            groups,
        );
        Ok(())
    }

    /// `y = layernorm(x)` over rows of `n`.
    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &mut self,
        x: &wgpu::Buffer,
        gamma: &wgpu::Buffer,
        beta: &wgpu::Buffer,
        y: &wgpu::Buffer,
        rows: usize,
        n: usize,
        eps: f64,
    ) -> Result<(), GpuError> {
        let rows = u(rows, "layer norm rows")?;
        let groups = self.grid(rows);
        self.push(
            Kernel::LayerNorm,
            [
                rows,
                u(n, "layer norm width")?,
                (eps as f32).to_bits(),
                0,
                0,
                0,
                0,
                0,
            ],
            &[(1, x), (2, gamma), (3, beta), (4, y)],
            groups,
        );
        Ok(())
    }

    /// Attention of each of `batch` sequences of `seq` rows of `qkv` into `ctx`.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &mut self,
        qkv: &wgpu::Buffer,
        ctx: &wgpu::Buffer,
        batch: usize,
        seq: usize,
        heads: usize,
        head_dim: usize,
        causal: bool,
    ) -> Result<(), GpuError> {
        let c = &self.kernels.config;
        if seq > c.seq_max as usize || head_dim > c.head_dim_max as usize {
            return Err(GpuError::Limits {
                what: "attention sequence or head size beyond what the kernels were built for"
                    .into(),
                needed: seq.max(head_dim) as u64,
                limit: u64::from(c.seq_max.min(c.head_dim_max)),
            });
        }
        let scale = (head_dim as f64).powf(-0.5) as f32;
        let groups = [u(seq, "sequence")?, u(heads, "heads")?, u(batch, "batch")?];
        self.check_groups(groups, "attention")?;
        self.push(
            Kernel::Attention,
            [
                u(seq, "sequence")?,
                u(heads, "heads")?,
                u(head_dim, "head size")?,
                u32::from(causal),
                scale.to_bits(),
                0,
                0,
                0,
            ],
            &[(1, qkv), (2, ctx)],
            groups,
        );
        Ok(())
    }

    fn elementwise_groups(&self, total: u32) -> [u32; 3] {
        self.grid(total.div_ceil(self.kernels.config.wg))
    }

    /// f32 images `[count, channels, image, image]` → patch rows in `patches`.
    pub fn im2col(
        &mut self,
        pixels: &wgpu::Buffer,
        patches: &wgpu::Buffer,
        count: usize,
        channels: usize,
        image: usize,
        patch: usize,
    ) -> Result<(), GpuError> {
        let side = image / patch;
        let total = u(
            count * side * side * channels * patch * patch,
            "patch values",
        )?;
        let groups = self.elementwise_groups(total);
        self.push(
            Kernel::Im2col,
            [
                total,
                u(channels, "channels")?,
                u(image, "image size")?,
                u(patch, "patch size")?,
                0,
                0,
                0,
                0,
            ],
            &[(1, pixels), (6, patches)],
            groups,
        );
        Ok(())
    }

    /// `x = [class | patch embeddings] + positions`.
    #[allow(clippy::too_many_arguments)]
    pub fn assemble_vision(
        &mut self,
        patch_emb: &wgpu::Buffer,
        pos: &wgpu::Buffer,
        class: &wgpu::Buffer,
        x: &wgpu::Buffer,
        batch: usize,
        seq: usize,
        hidden: usize,
    ) -> Result<(), GpuError> {
        let total = u(batch * seq * hidden, "vision embeddings")?;
        let groups = self.elementwise_groups(total);
        self.push(
            Kernel::AssembleVision,
            [
                total,
                u(seq, "sequence")?,
                u(hidden, "hidden size")?,
                0,
                0,
                0,
                0,
                0,
            ],
            &[(2, patch_emb), (3, pos), (4, class), (6, x)],
            groups,
        );
        Ok(())
    }

    /// `x = table[ids] + positions` for `rows` ids in sequences of `seq`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed_tokens(
        &mut self,
        ids: &wgpu::Buffer,
        table: &wgpu::Buffer,
        pos: &wgpu::Buffer,
        x: &wgpu::Buffer,
        rows: usize,
        seq: usize,
        hidden: usize,
    ) -> Result<(), GpuError> {
        let total = u(rows * hidden, "token embeddings")?;
        let groups = self.elementwise_groups(total);
        self.push(
            Kernel::EmbedTokens,
            [
                total,
                u(seq, "sequence")?,
                u(hidden, "hidden size")?,
                0,
                0,
                0,
                0,
                0,
            ],
            &[(2, table), (3, pos), (5, ids), (6, x)],
            groups,
        );
        Ok(())
    }

    /// `dst[r] = src[rows[r]]` for `count` rows of `n`.
    pub fn gather_rows(
        &mut self,
        src: &wgpu::Buffer,
        rows: &wgpu::Buffer,
        dst: &wgpu::Buffer,
        count: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        let total = u(count * n, "pooled values")?;
        let groups = self.elementwise_groups(total);
        self.push(
            Kernel::GatherRows,
            [
                u(count, "pooled rows")?,
                u(n, "hidden size")?,
                0,
                0,
                0,
                0,
                0,
                0,
            ],
            &[(1, src), (2, rows), (3, dst)],
            groups,
        );
        Ok(())
    }

    /// `out` (f32) = each row of `src` scaled to unit length.
    pub fn l2_normalize(
        &mut self,
        src: &wgpu::Buffer,
        out: &wgpu::Buffer,
        rows: usize,
        n: usize,
    ) -> Result<(), GpuError> {
        let rows = u(rows, "embeddings")?;
        let groups = self.grid(rows);
        self.push(
            Kernel::L2Normalize,
            [rows, u(n, "embedding size")?, 0, 0, 0, 0, 0, 0],
            &[(1, src), (4, out)],
            groups,
        );
        Ok(())
    }

    /// Uploads the parameters and makes the bind groups.
    pub fn finish(self, device: &wgpu::Device) -> Program {
        if self.steps.is_empty() {
            return Program {
                steps: Vec::new(),
                _params: None,
            };
        }
        let align =
            u64::from(device.limits().min_uniform_buffer_offset_alignment).max(PARAMS_BYTES);
        let mut bytes = vec![0u8; self.steps.len() * align as usize];
        for (i, s) in self.steps.iter().enumerate() {
            let at = i * align as usize;
            bytes[at..at + PARAMS_BYTES as usize].copy_from_slice(bytemuck::cast_slice(&s.params));
        }
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("clipseek step parameters"),
            contents: &bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let steps =
            self.steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let mut entries = vec![wgpu::BindGroupEntry {
                        binding: 0,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &params,
                            offset: i as u64 * align,
                            size: NonZeroU64::new(PARAMS_BYTES),
                        }),
                    }];
                    entries.extend(s.buffers.iter().map(|(binding, buffer)| {
                        wgpu::BindGroupEntry {
                            binding: *binding,
                            resource: buffer.as_entire_binding(),
                        }
                    }));
                    let layout = self.kernels.pipeline(s.kernel).get_bind_group_layout(0);
                    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &layout,
                        entries: &entries,
                    });
                    (s.kernel, group, s.groups)
                })
                .collect();
        Program {
            steps,
            _params: Some(params),
        }
    }
}

impl Program {
    /// Replays every step into `pass`.
    pub fn record(&self, kernels: &Kernels, pass: &mut wgpu::ComputePass<'_>) {
        for (kernel, group, [x, y, z]) in &self.steps {
            pass.set_pipeline(kernels.pipeline(*kernel));
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, *z);
        }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}
