//! The WGSL kernels, their compile-time variants and the pipelines built from them.
//!
//! Each kernel family lives in one `kernels/*.wgsl` file loaded with `include_str!`. The
//! Rust side prepends a short header that fixes the element type (`T` = f32, or f16 with
//! `enable f16;`) and the sizes a shader needs at compile time (matmul tiles, workgroup
//! sizes, the longest sequence). Sizes are chosen here from the device's limits, never
//! hard-coded to one GPU: [`KernelConfig::for_limits`] picks the largest matmul tile whose
//! invocations and workgroup memory the adapter allows. [`all_sources`] lists every variant
//! so that a native test can validate them all with naga, without a GPU.

use std::borrow::Cow;

use super::GpuError;

pub const MATMUL_WGSL: &str = include_str!("kernels/matmul.wgsl");
pub const LAYERNORM_WGSL: &str = include_str!("kernels/layernorm.wgsl");
pub const ATTENTION_WGSL: &str = include_str!("kernels/attention.wgsl");
pub const EMBED_WGSL: &str = include_str!("kernels/embed.wgsl");
pub const POOL_WGSL: &str = include_str!("kernels/pool.wgsl");
/// The workgroup reductions layernorm, attention and pool share (after the header).
pub const REDUCE_WGSL: &str = include_str!("kernels/reduce.wgsl");

/// Element type of weights and activations on the device (accumulation is always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    /// Needs `Features::SHADER_F16`: f16 storage, f16 products in the matmul, f32 sums.
    F16,
}

impl Precision {
    pub fn size_bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

/// One matmul tile shape: `tm x tn` outputs per workgroup (multiples of 8; each invocation
/// computes an 8 x 8 block), `tk` (a multiple of 4) of K staged per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulTile {
    pub tm: u32,
    pub tn: u32,
    pub tk: u32,
}

impl MatmulTile {
    pub const fn workgroup_size(&self) -> [u32; 2] {
        [self.tn / 8, self.tm / 8]
    }

    pub const fn invocations(&self) -> u32 {
        (self.tn / 8) * (self.tm / 8)
    }

    /// Workgroup memory of the two staged tiles.
    pub fn workgroup_bytes(&self, precision: Precision) -> u64 {
        u64::from((self.tm + self.tn) * self.tk) * precision.size_bytes()
    }

    pub fn fits(&self, limits: &wgpu::Limits, precision: Precision) -> bool {
        let [x, y] = self.workgroup_size();
        self.invocations() <= limits.max_compute_invocations_per_workgroup
            && x <= limits.max_compute_workgroup_size_x
            && y <= limits.max_compute_workgroup_size_y
            && self.workgroup_bytes(precision)
                <= u64::from(limits.max_compute_workgroup_storage_size)
    }

    /// Workgroups for an `m x n` product.
    pub fn groups(&self, m: u32, n: u32) -> u32 {
        m.div_ceil(self.tm).saturating_mul(n.div_ceil(self.tn))
    }
}

/// Candidate tiles, largest first. WebGPU's default limits (256 invocations, 16 KiB of
/// workgroup memory) admit the first in f32; the last fits any compute-capable adapter.
pub const MATMUL_TILES: [MatmulTile; 5] = [
    MatmulTile {
        tm: 128,
        tn: 128,
        tk: 16,
    },
    MatmulTile {
        tm: 64,
        tn: 64,
        tk: 32,
    },
    MatmulTile {
        tm: 64,
        tn: 64,
        tk: 16,
    },
    MatmulTile {
        tm: 32,
        tn: 32,
        tk: 16,
    },
    MatmulTile {
        tm: 16,
        tn: 16,
        tk: 8,
    },
];

/// Below this many workgroups a product moves to a smaller tile, so that a large GPU has
/// work for all its cores (a batch-1 projection has one row).
pub const MIN_GROUPS: u32 = 96;

/// Everything a set of kernel variants is compiled for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    pub precision: Precision,
    /// For large products.
    pub tile_large: MatmulTile,
    /// At most 64 x 64.
    pub tile_medium: MatmulTile,
    /// At most 32 x 32, for products too small to fill the GPU otherwise.
    pub tile_small: MatmulTile,
    /// Products with fewer large-tile workgroups than this use smaller tiles; 0 always uses
    /// the large tile (a CPU adapter, whose few cores prefer fewer, larger tiles).
    pub min_groups: u32,
    /// Workgroup size of the row and element-wise kernels (a power of two).
    pub wg: u32,
    /// Workgroup size of attention (a power of two).
    pub attention_wg: u32,
    /// Longest sequence attention must hold (scores stay in workgroup memory).
    pub seq_max: u32,
    /// Largest head dimension.
    pub head_dim_max: u32,
}

fn pow2_at_most(v: u32, cap: u32) -> u32 {
    let v = v.min(cap).max(1);
    1 << (31 - v.leading_zeros())
}

impl KernelConfig {
    /// Picks variants for a device's limits; fails if even the smallest do not fit.
    pub fn for_limits(
        limits: &wgpu::Limits,
        precision: Precision,
        seq_max: u32,
        head_dim_max: u32,
    ) -> Result<Self, GpuError> {
        let fitting: Vec<MatmulTile> = MATMUL_TILES
            .iter()
            .copied()
            .filter(|t| t.fits(limits, precision))
            .collect();
        let (Some(large), Some(last)) = (fitting.first().copied(), fitting.last().copied()) else {
            let t = MATMUL_TILES[MATMUL_TILES.len() - 1];
            let bytes = t.workgroup_bytes(precision);
            return Err(
                if t.invocations() <= limits.max_compute_invocations_per_workgroup {
                    GpuError::Limits {
                        what: "the smallest matmul tile (workgroup memory bytes)".into(),
                        needed: bytes,
                        limit: u64::from(limits.max_compute_workgroup_storage_size),
                    }
                } else {
                    GpuError::Limits {
                        what: "the smallest matmul tile (invocations per workgroup)".into(),
                        needed: u64::from(t.invocations()),
                        limit: u64::from(limits.max_compute_invocations_per_workgroup),
                    }
                },
            );
        };
        let at_most = |side: u32| {
            fitting
                .iter()
                .copied()
                .find(|t| t.tm <= side)
                .unwrap_or(last)
        };
        let (medium, small) = (at_most(64), at_most(32));
        let max_inv = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        let wg = pow2_at_most(max_inv, 256);
        let attention_wg = pow2_at_most(max_inv, 64);
        let config = Self {
            precision,
            tile_large: large,
            tile_medium: medium,
            tile_small: small,
            min_groups: MIN_GROUPS,
            wg,
            attention_wg,
            seq_max: seq_max.max(1),
            head_dim_max: head_dim_max.max(1),
        };
        let attention_bytes = 4 * u64::from(config.seq_max + config.head_dim_max + attention_wg);
        if attention_bytes > u64::from(limits.max_compute_workgroup_storage_size) {
            return Err(GpuError::Limits {
                what: format!(
                    "attention over {} positions (workgroup memory bytes)",
                    config.seq_max
                ),
                needed: attention_bytes,
                limit: u64::from(limits.max_compute_workgroup_storage_size),
            });
        }
        Ok(config)
    }

    /// The matmul tile for an `m x n` product: the largest that still gives `min_groups`
    /// workgroups and does not pad the product to more than 1.25 times the work the
    /// tightest tile does (a 50-row product on 128-row tiles would compute 2.6 times too
    /// much); else the small one.
    pub fn tile_for(&self, m: u32, n: u32) -> (MatmulVariant, MatmulTile) {
        let variants = [
            (MatmulVariant::Large, self.tile_large),
            (MatmulVariant::Medium, self.tile_medium),
            (MatmulVariant::Small, self.tile_small),
        ];
        let padded = |t: &MatmulTile| {
            u64::from(m.div_ceil(t.tm) * t.tm) * u64::from(n.div_ceil(t.tn) * t.tn)
        };
        let tightest = variants.iter().map(|(_, t)| padded(t)).min().unwrap_or(0);
        variants
            .into_iter()
            .find(|(_, t)| t.groups(m, n) >= self.min_groups && padded(t) * 4 <= tightest * 5)
            .unwrap_or((MatmulVariant::Small, self.tile_small))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulVariant {
    Large,
    Medium,
    Small,
}

/// The header every kernel source starts with.
pub fn header(precision: Precision, consts: &[(&str, u32)]) -> String {
    let mut h = String::new();
    match precision {
        Precision::F32 => h.push_str("alias T = f32;\nalias T4 = vec4<f32>;\n"),
        Precision::F16 => h.push_str("enable f16;\nalias T = f16;\nalias T4 = vec4<f16>;\n"),
    }
    for (name, value) in consts {
        h.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    h
}

/// One compiled shader: a name for messages, its entry points and its full source.
#[derive(Debug, Clone)]
pub struct KernelSource {
    pub name: String,
    pub entry_points: &'static [&'static str],
    pub code: String,
}

fn matmul_source(precision: Precision, t: MatmulTile) -> String {
    let split = format!("const SPLIT: bool = {};\n", precision == Precision::F16);
    header(precision, &[("TM", t.tm), ("TN", t.tn), ("TK", t.tk)]) + &split + MATMUL_WGSL
}

/// Every shader of one configuration, in a fixed order (see [`Kernels::new`]).
pub fn sources(c: &KernelConfig) -> Vec<KernelSource> {
    let p = c.precision;
    let src = |name: &str, entry_points: &'static [&'static str], code: String| KernelSource {
        name: format!(
            "{name} ({}, tiles {}x{}x{}/{}x{}x{}/{}x{}x{}, wg {}/{}, seq {}, head {})",
            p.name(),
            c.tile_large.tm,
            c.tile_large.tn,
            c.tile_large.tk,
            c.tile_medium.tm,
            c.tile_medium.tn,
            c.tile_medium.tk,
            c.tile_small.tm,
            c.tile_small.tn,
            c.tile_small.tk,
            c.wg,
            c.attention_wg,
            c.seq_max,
            c.head_dim_max
        ),
        entry_points,
        code,
    };
    vec![
        src("matmul large", &["main"], matmul_source(p, c.tile_large)),
        src("matmul medium", &["main"], matmul_source(p, c.tile_medium)),
        src("matmul small", &["main"], matmul_source(p, c.tile_small)),
        src(
            "layernorm",
            &["main"],
            header(p, &[("WG", c.wg)]) + REDUCE_WGSL + LAYERNORM_WGSL,
        ),
        src(
            "attention",
            &["main"],
            header(
                p,
                &[
                    ("WG", c.attention_wg),
                    ("SEQ_MAX", c.seq_max),
                    ("DH_MAX", c.head_dim_max),
                ],
            ) + REDUCE_WGSL
                + ATTENTION_WGSL,
        ),
        src(
            "embed",
            &["im2col", "assemble_vision", "embed_tokens"],
            header(p, &[("WG", c.wg)]) + EMBED_WGSL,
        ),
        src(
            "pool",
            &["gather_rows", "l2_normalize"],
            header(p, &[("WG", c.wg)]) + REDUCE_WGSL + POOL_WGSL,
        ),
    ]
}

/// Every variant the engine can compile, for validation without a GPU: both precisions,
/// every matmul tile, and the limits of WebGPU's defaults and of a generous desktop GPU.
/// The bool says whether the source needs f16 support.
pub fn all_sources() -> Vec<(KernelSource, bool)> {
    let mut out = Vec::new();
    for precision in [Precision::F32, Precision::F16] {
        for (i, tile) in MATMUL_TILES.iter().enumerate() {
            out.push((
                KernelSource {
                    name: format!("matmul tile {i} ({})", precision.name()),
                    entry_points: &["main"],
                    code: matmul_source(precision, *tile),
                },
                precision == Precision::F16,
            ));
        }
        for limits in [wgpu::Limits::defaults(), wgpu::Limits::downlevel_defaults()] {
            for (seq, dh) in [(50, 64), (77, 64), (257, 80), (65, 8)] {
                if let Ok(c) = KernelConfig::for_limits(&limits, precision, seq, dh) {
                    for s in sources(&c) {
                        if !out
                            .iter()
                            .any(|(o, _): &(KernelSource, bool)| o.code == s.code)
                        {
                            out.push((s, precision == Precision::F16));
                        }
                    }
                }
            }
        }
    }
    out
}

/// The compiled pipelines of one configuration.
pub struct Kernels {
    pub config: KernelConfig,
    pub matmul_large: wgpu::ComputePipeline,
    pub matmul_medium: wgpu::ComputePipeline,
    pub matmul_small: wgpu::ComputePipeline,
    pub layernorm: wgpu::ComputePipeline,
    pub attention: wgpu::ComputePipeline,
    pub im2col: wgpu::ComputePipeline,
    pub assemble_vision: wgpu::ComputePipeline,
    pub embed_tokens: wgpu::ComputePipeline,
    pub gather_rows: wgpu::ComputePipeline,
    pub l2_normalize: wgpu::ComputePipeline,
}

/// Which pipeline a recorded step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    MatmulLarge,
    MatmulMedium,
    MatmulSmall,
    LayerNorm,
    Attention,
    Im2col,
    AssembleVision,
    EmbedTokens,
    GatherRows,
    L2Normalize,
}

impl Kernels {
    pub fn new(device: &wgpu::Device, config: KernelConfig) -> Self {
        let srcs = sources(&config);
        let modules: Vec<wgpu::ShaderModule> = srcs
            .iter()
            .map(|s| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&s.name),
                    source: wgpu::ShaderSource::Wgsl(Cow::Borrowed(&s.code)),
                })
            })
            .collect();
        let pipeline = |module: &wgpu::ShaderModule, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        };
        Self {
            matmul_large: pipeline(&modules[0], "main"),
            matmul_medium: pipeline(&modules[1], "main"),
            matmul_small: pipeline(&modules[2], "main"),
            layernorm: pipeline(&modules[3], "main"),
            attention: pipeline(&modules[4], "main"),
            im2col: pipeline(&modules[5], "im2col"),
            assemble_vision: pipeline(&modules[5], "assemble_vision"),
            embed_tokens: pipeline(&modules[5], "embed_tokens"),
            gather_rows: pipeline(&modules[6], "gather_rows"),
            l2_normalize: pipeline(&modules[6], "l2_normalize"),
            config,
        }
    }

    pub fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        match k {
            Kernel::MatmulLarge => &self.matmul_large,
            Kernel::MatmulMedium => &self.matmul_medium,
            Kernel::MatmulSmall => &self.matmul_small,
            Kernel::LayerNorm => &self.layernorm,
            Kernel::Attention => &self.attention,
            Kernel::Im2col => &self.im2col,
            Kernel::AssembleVision => &self.assemble_vision,
            Kernel::EmbedTokens => &self.embed_tokens,
            Kernel::GatherRows => &self.gather_rows,
            Kernel::L2Normalize => &self.l2_normalize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_follow_limits() -> Result<(), GpuError> {
        let c = KernelConfig::for_limits(&wgpu::Limits::defaults(), Precision::F32, 50, 64)?;
        assert_eq!(c.tile_large, MATMUL_TILES[0]);
        assert_eq!((c.tile_medium.tm, c.tile_small.tm), (64, 32));
        assert_eq!(c.wg, 256);
        // f32 128x128x16 and 64x64x32 tiles need all of WebGPU's 16 KiB; downlevel limits
        // have 32 bytes less.
        let c =
            KernelConfig::for_limits(&wgpu::Limits::downlevel_defaults(), Precision::F32, 50, 64)?;
        assert_eq!(c.tile_large, MATMUL_TILES[2]);
        let c =
            KernelConfig::for_limits(&wgpu::Limits::downlevel_defaults(), Precision::F16, 50, 64)?;
        assert_eq!(c.tile_large, MATMUL_TILES[0]);
        let mut small = wgpu::Limits::downlevel_defaults();
        small.max_compute_invocations_per_workgroup = 64;
        small.max_compute_workgroup_storage_size = 4096;
        let c = KernelConfig::for_limits(&small, Precision::F32, 77, 64)?;
        assert!(c.tile_large.invocations() <= 64);
        assert!(c.tile_large.workgroup_bytes(Precision::F32) <= 4096);
        assert_eq!(c.wg, 64);
        let mut none = small.clone();
        none.max_compute_invocations_per_workgroup = 0;
        assert!(KernelConfig::for_limits(&none, Precision::F32, 77, 64).is_err());
        // A sequence whose scores cannot stay in workgroup memory is refused by name.
        assert!(KernelConfig::for_limits(&small, Precision::F32, 5000, 64).is_err());
        Ok(())
    }

    #[test]
    fn small_products_use_small_tiles() -> Result<(), GpuError> {
        let mut c = KernelConfig::for_limits(&wgpu::Limits::defaults(), Precision::F32, 50, 64)?;
        assert_eq!(c.tile_for(2, 512).0, MatmulVariant::Small);
        assert_eq!(c.tile_for(800, 768).0, MatmulVariant::Medium);
        assert_eq!(c.tile_for(3200, 768).0, MatmulVariant::Large);
        c.min_groups = 0;
        // Without a workgroup target only padding matters.
        assert_eq!(c.tile_for(3200, 768).0, MatmulVariant::Large);
        assert_eq!(c.tile_for(400, 768).0, MatmulVariant::Large);
        assert_eq!(c.tile_for(50, 2304).0, MatmulVariant::Medium);
        assert_eq!(c.tile_for(2, 512).0, MatmulVariant::Small);
        Ok(())
    }
}
