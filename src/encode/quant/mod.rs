//! 8-bit linear layers for the CPU engine: weights quantised once at load to i8 with one
//! symmetric scale per output channel (`sw[o] = max_k |W[o][k]| / 127`), activations
//! quantised per call, per row (token), symmetrically to `±limit` with `sx[r] = max_k
//! |x[r][k]| / limit`, and `y = (Σ_k qx·qw) · sx · sw + b` computed in i32 by
//! [`kernels::gemm`].
//!
//! The activation range is a choice ([`ActivationBits`]): 8 bits (±127) or 12 bits
//! (±2047). The kernels multiply i16 by i16 either way, so the wider one costs nothing in
//! time; it is the default because CLIP's residual stream has outlier channels that set a
//! token's scale and leave the other channels few levels at 8 bits. The limit is lowered
//! further when a layer is so wide that `limit · 127 · inputs` would overflow i32
//! ([`kernels::max_activation`]). Symmetric per-channel weights and per-token activations
//! follow the usual dynamic-quantisation recipe (as in LLM.int8()'s vector-wise
//! quantisation, without its outlier decomposition). This module does no model logic:
//! which layers are quantised is `encode::cpu`'s choice.
//!
//! Each build runs one kernel ([`KERNEL`]), which caps both ranges: the relaxed-SIMD kernel
//! of the page's second worker module reads 7-bit weights (±63, [`WeightBits::Seven`]) and
//! 8-bit activations, whatever was asked for; [`WeightBits::Seven`] with
//! [`ActivationBits::Eight`] computes the same numbers on every build, which is how its
//! fidelity is measured natively (`tests/int8_parity.rs`).

pub mod kernels;

use kernels::max_activation;
pub use kernels::PackedActs;
pub use kernels::PackedWeights;
pub use kernels::KERNEL;

/// How wide the quantised activations are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationBits {
    /// ±127, the range of an i8.
    Eight,
    /// ±2047: the same cost in these kernels, 16× finer steps.
    #[default]
    Twelve,
}

impl ActivationBits {
    // The cap is a per-build constant: a no-op on some builds, not on the relaxed one.
    #[allow(clippy::unnecessary_min_or_max)]
    pub fn limit(self) -> i16 {
        match self {
            Self::Eight => 127,
            Self::Twelve => 2047,
        }
        .min(kernels::MAX_ACTIVATION)
    }
}

/// How wide the quantised weights are. The build's kernel may take fewer levels
/// ([`kernels::MAX_WEIGHT`]: the relaxed-SIMD kernel reads ±63), and then gets those.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightBits {
    /// ±127, the range of an i8.
    #[default]
    Eight,
    /// ±63: what the relaxed-SIMD kernel computes with (measured natively through this).
    Seven,
}

impl WeightBits {
    // The cap is a per-build constant: a no-op on some builds, not on the relaxed one.
    #[allow(clippy::unnecessary_min_or_max)]
    pub fn limit(self) -> i8 {
        let wanted = match self {
            Self::Eight => 127,
            Self::Seven => 63,
        };
        wanted.min(kernels::MAX_WEIGHT)
    }
}

/// Why a quantised layer could not be built or run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    #[error("{what} has {got} values; {expected} were expected")]
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("weight row {row} holds a value that is not finite")]
    NotFinite { row: usize },
}

/// `y = x Wᵀ + b` with W in i8 (per-output-channel scales) and x quantised per row.
#[derive(Debug, Clone)]
pub struct QuantLinear {
    weights: PackedWeights,
    scales: Vec<f32>,
    bias: Vec<f32>,
    limit: i16,
}

impl QuantLinear {
    /// Quantises row-major `weight` (`outputs × inputs`, as PyTorch stores a Linear).
    pub fn new(
        weight: &[f32],
        outputs: usize,
        inputs: usize,
        bias: Option<&[f32]>,
        weights: WeightBits,
        activations: ActivationBits,
    ) -> Result<Self, QuantError> {
        if weight.len() != outputs * inputs {
            return Err(QuantError::Shape {
                what: "the weight",
                expected: outputs * inputs,
                got: weight.len(),
            });
        }
        let lim = f32::from(weights.limit());
        let mut q = vec![0i8; outputs * inputs];
        let mut scales = Vec::with_capacity(outputs);
        for (row, (src, dst)) in weight
            .chunks_exact(inputs.max(1))
            .zip(q.chunks_exact_mut(inputs.max(1)))
            .enumerate()
            .take(outputs)
        {
            let max = src.iter().fold(0f32, |m, v| m.max(v.abs()));
            if !max.is_finite() {
                return Err(QuantError::NotFinite { row });
            }
            if max == 0.0 {
                scales.push(0.0);
                continue;
            }
            let inv = lim / max;
            for (d, s) in dst.iter_mut().zip(src) {
                *d = kernels::round_even((s * inv).clamp(-lim, lim)) as i8;
            }
            scales.push(max / lim);
        }
        Self::from_parts(q, scales, bias, outputs, inputs, activations)
    }

    /// [`Self::new`] from the transposed weight (`inputs × outputs`, row-major, as the f32
    /// engine keeps it for its gemm): the same numbers, without a transposed copy in f32.
    pub fn from_transposed(
        weight_t: &[f32],
        inputs: usize,
        outputs: usize,
        bias: Option<&[f32]>,
        weights: WeightBits,
        activations: ActivationBits,
    ) -> Result<Self, QuantError> {
        if weight_t.len() != outputs * inputs {
            return Err(QuantError::Shape {
                what: "the weight",
                expected: outputs * inputs,
                got: weight_t.len(),
            });
        }
        let mut max = vec![0f32; outputs];
        for row in weight_t.chunks_exact(outputs.max(1)) {
            for (m, v) in max.iter_mut().zip(row) {
                *m = m.max(v.abs());
            }
        }
        if let Some(row) = max.iter().position(|m| !m.is_finite()) {
            return Err(QuantError::NotFinite { row });
        }
        let lim = f32::from(weights.limit());
        let inv: Vec<f32> = max
            .iter()
            .map(|m| if *m == 0.0 { 0.0 } else { lim / m })
            .collect();
        let mut q = vec![0i8; outputs * inputs];
        for (k, row) in weight_t.chunks_exact(outputs.max(1)).enumerate() {
            for (o, (v, s)) in row.iter().zip(&inv).enumerate() {
                q[o * inputs + k] = kernels::round_even((v * s).clamp(-lim, lim)) as i8;
            }
        }
        let scales = max.iter().map(|m| m / lim).collect();
        Self::from_parts(q, scales, bias, outputs, inputs, activations)
    }

    fn from_parts(
        q: Vec<i8>,
        scales: Vec<f32>,
        bias: Option<&[f32]>,
        outputs: usize,
        inputs: usize,
        activations: ActivationBits,
    ) -> Result<Self, QuantError> {
        let bias = match bias {
            Some(b) if b.len() != outputs => {
                return Err(QuantError::Shape {
                    what: "the bias",
                    expected: outputs,
                    got: b.len(),
                })
            }
            Some(b) => b.to_vec(),
            None => vec![0.0; outputs],
        };
        Ok(Self {
            weights: PackedWeights::pack(&q, outputs, inputs),
            scales,
            bias,
            limit: max_activation(activations.limit(), inputs),
        })
    }

    /// A layer from what [`Self::parts`] gave on a build with the same kernel (weights
    /// packed for it, one scale and bias per output, the activation limit in use).
    pub fn from_packed(
        weights: PackedWeights,
        scales: Vec<f32>,
        bias: Vec<f32>,
        limit: i16,
    ) -> Result<Self, QuantError> {
        let outputs = weights.outputs();
        for (what, got) in [("the scales", scales.len()), ("the bias", bias.len())] {
            if got != outputs {
                return Err(QuantError::Shape {
                    what,
                    expected: outputs,
                    got,
                });
            }
        }
        if !(1..=kernels::MAX_ACTIVATION).contains(&limit)
            || limit != max_activation(limit, weights.inputs())
        {
            return Err(QuantError::Shape {
                what: "the activation limit",
                expected: usize::from(
                    max_activation(kernels::MAX_ACTIVATION, weights.inputs()).unsigned_abs(),
                ),
                got: usize::from(limit.unsigned_abs()),
            });
        }
        Ok(Self {
            weights,
            scales,
            bias,
            limit,
        })
    }

    /// The packed weights, the per-output scales and bias, and the activation limit: what
    /// [`Self::from_packed`] takes back.
    pub fn parts(&self) -> (&PackedWeights, &[f32], &[f32], i16) {
        (&self.weights, &self.scales, &self.bias, self.limit)
    }

    pub fn inputs(&self) -> usize {
        self.weights.inputs()
    }

    pub fn outputs(&self) -> usize {
        self.weights.outputs()
    }

    /// Bytes of the packed i8 weights (scales and bias not counted).
    pub fn weight_bytes(&self) -> usize {
        self.weights.bytes()
    }

    /// The activation limit in use (after the overflow bound).
    pub fn activation_limit(&self) -> i16 {
        self.limit
    }

    /// `x`: `rows × inputs`, row-major → `rows × outputs`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, QuantError> {
        let mut acts = PackedActs::default();
        let mut out = vec![0f32; rows * self.outputs()];
        self.forward_into(x, rows, &mut acts, &mut out)?;
        Ok(out)
    }

    /// [`Self::forward`] into caller-held buffers (`acts` is reused between calls).
    pub fn forward_into(
        &self,
        x: &[f32],
        rows: usize,
        acts: &mut PackedActs,
        out: &mut [f32],
    ) -> Result<(), QuantError> {
        if x.len() != rows * self.inputs() {
            return Err(QuantError::Shape {
                what: "the input",
                expected: rows * self.inputs(),
                got: x.len(),
            });
        }
        if out.len() != rows * self.outputs() {
            return Err(QuantError::Shape {
                what: "the output",
                expected: rows * self.outputs(),
                got: out.len(),
            });
        }
        acts.fill(x, rows, self.inputs(), self.limit);
        kernels::gemm(acts, &self.weights, &self.scales, &self.bias, out);
        Ok(())
    }

    /// Quantises `x` (`rows × inputs`) into `acts` with this layer's activation limit: one
    /// packing that every layer with the same inputs and limit can read
    /// ([`Self::forward_acts`]), as q, k and v read one layer norm's output.
    pub fn quantize_input(
        &self,
        x: &[f32],
        rows: usize,
        acts: &mut PackedActs,
    ) -> Result<(), QuantError> {
        if x.len() != rows * self.inputs() {
            return Err(QuantError::Shape {
                what: "the input",
                expected: rows * self.inputs(),
                got: x.len(),
            });
        }
        acts.fill(x, rows, self.inputs(), self.limit);
        Ok(())
    }

    /// `out = acts · Wᵀ + b` (or `out += …` when `add`: a residual fused in) from
    /// activations packed by [`Self::quantize_input`] of a layer with the same inputs and
    /// activation limit.
    pub fn forward_acts(
        &self,
        acts: &PackedActs,
        out: &mut [f32],
        add: bool,
    ) -> Result<(), QuantError> {
        if acts.inputs() != self.inputs() || acts.limit() != self.limit {
            return Err(QuantError::Shape {
                what: "the packed input",
                expected: self.inputs(),
                got: acts.inputs(),
            });
        }
        if out.len() != acts.rows() * self.outputs() {
            return Err(QuantError::Shape {
                what: "the output",
                expected: acts.rows() * self.outputs(),
                got: out.len(),
            });
        }
        let gemm = if add {
            kernels::gemm_add
        } else {
            kernels::gemm
        };
        gemm(acts, &self.weights, &self.scales, &self.bias, out);
        Ok(())
    }

    /// The same numbers computed one product at a time in i64 from the packed values: the
    /// reference the kernels are tested against (they must agree to float rounding of the
    /// epilogue only).
    pub fn forward_scalar(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, QuantError> {
        if x.len() != rows * self.inputs() {
            return Err(QuantError::Shape {
                what: "the input",
                expected: rows * self.inputs(),
                got: x.len(),
            });
        }
        let mut acts = PackedActs::default();
        acts.fill(x, rows, self.inputs(), self.limit);
        let (n, k) = (self.outputs(), self.inputs());
        let mut out = vec![0f32; rows * n];
        for r in 0..rows {
            for o in 0..n {
                let acc: i64 = (0..k)
                    .map(|j| i64::from(acts.get(r, j)) * i64::from(self.weights.get(o, j)))
                    .sum();
                out[r * n + o] = acc as f32 * (acts.scales()[r] * self.scales[o]) + self.bias[o];
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::splitmix::SplitMix64 as Rng;

    fn f32_reference(x: &[f32], w: &[f32], b: &[f32], rows: usize, k: usize) -> Vec<f32> {
        let n = b.len();
        let mut y = vec![0f32; rows * n];
        for r in 0..rows {
            for o in 0..n {
                let s: f64 = (0..k)
                    .map(|j| f64::from(x[r * k + j]) * f64::from(w[o * k + j]))
                    .sum();
                y[r * n + o] = s as f32 + b[o];
            }
        }
        y
    }

    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        dot / (na * nb).max(f64::MIN_POSITIVE)
    }

    /// Sizes on and off every multiple the kernels use (4 rows, 2 channels, 16 inputs).
    const SIZES: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (1, 16, 2),
        (3, 17, 5),
        (4, 32, 4),
        (5, 31, 3),
        (7, 100, 9),
        (9, 768, 33),
        (50, 768, 64),
        (13, 3072, 7),
        // Enough column groups at this width for several cache chunks.
        (5, 3072, 41),
        (2, 5, 1),
    ];

    #[test]
    fn the_kernel_equals_the_integer_reference_on_odd_sizes() -> Result<(), QuantError> {
        let mut rng = Rng(7);
        let kinds = [
            (WeightBits::Eight, ActivationBits::Eight),
            (WeightBits::Eight, ActivationBits::Twelve),
            // The relaxed-SIMD kernel's numbers.
            (WeightBits::Seven, ActivationBits::Eight),
        ];
        for &(rows, k, n) in SIZES {
            for (wbits, bits) in kinds {
                let w = rng.vec(n * k, 0.2);
                let b = rng.vec(n, 0.5);
                let x = rng.vec(rows * k, 3.0);
                let layer = QuantLinear::new(&w, n, k, Some(&b), wbits, bits)?;
                let fast = layer.forward(&x, rows)?;
                let slow = layer.forward_scalar(&x, rows)?;
                for (i, (a, s)) in fast.iter().zip(&slow).enumerate() {
                    assert!(
                        (a - s).abs() <= 1e-5 * (1.0 + s.abs()),
                        "{rows}x{k}x{n} {wbits:?} {bits:?} at {i}: kernel {a}, reference {s}"
                    );
                }
            }
        }
        Ok(())
    }

    /// The layer's own weights, dequantised (`q · sw`): the reference that leaves only the
    /// activations' share of the error.
    fn dequantized(layer: &QuantLinear) -> Vec<f32> {
        let (n, k) = (layer.outputs(), layer.inputs());
        (0..n * k)
            .map(|i| f32::from(layer.weights.get(i / k, i % k)) * layer.scales[i / k])
            .collect()
    }

    fn rms_diff(a: &[f32], b: &[f32]) -> f64 {
        let s: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        (s / a.len().max(1) as f64).sqrt()
    }

    #[test]
    fn the_kernel_is_close_to_f32_and_wider_activations_are_closer() -> Result<(), QuantError> {
        // Several seeds: the claims must not hang on one draw. "Closer" is judged on the
        // activations' share of the error alone (against the dequantised weights in f32):
        // the weights' error is the same for both widths and would otherwise decide the
        // comparison by chance where it dominates.
        for seed in [11, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
            let mut rng = Rng(seed);
            for &(rows, k, n) in SIZES.iter().filter(|s| s.1 >= 16) {
                let w = rng.vec(n * k, 0.1);
                let b = rng.vec(n, 0.1);
                let mut x = rng.vec(rows * k, 1.0);
                // An outlier channel, as CLIP's residual stream has.
                for r in 0..rows {
                    x[r * k + k / 3] = 40.0;
                }
                let want = f32_reference(&x, &w, &b, rows, k);
                let mut cos = Vec::new();
                let mut act_err = Vec::new();
                for bits in [ActivationBits::Eight, ActivationBits::Twelve] {
                    let layer = QuantLinear::new(&w, n, k, Some(&b), WeightBits::Eight, bits)?;
                    let y = layer.forward(&x, rows)?;
                    cos.push(cosine(&y, &want));
                    let exact_acts = f32_reference(&x, &dequantized(&layer), &b, rows, k);
                    act_err.push(rms_diff(&y, &exact_acts));
                }
                let at = format!("seed {seed}, {rows}x{k}x{n}");
                assert!(cos[0] >= 0.99, "{at}: 8-bit cos {}", cos[0]);
                assert!(cos[1] >= 0.9995, "{at}: 12-bit cos {}", cos[1]);
                assert!(
                    act_err[1] < act_err[0],
                    "{at}: activation error 12-bit {} vs 8-bit {}",
                    act_err[1],
                    act_err[0]
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_transposed_weight_gives_the_same_layer() -> Result<(), QuantError> {
        let mut rng = Rng(5);
        let (k, n, rows) = (37, 11, 6);
        let w = rng.vec(n * k, 0.3);
        let wt: Vec<f32> = (0..k * n).map(|i| w[(i % n) * k + i / n]).collect();
        let b = rng.vec(n, 0.1);
        let x = rng.vec(rows * k, 2.0);
        let a = QuantLinear::new(
            &w,
            n,
            k,
            Some(&b),
            WeightBits::Eight,
            ActivationBits::Twelve,
        )?;
        let t = QuantLinear::from_transposed(
            &wt,
            k,
            n,
            Some(&b),
            WeightBits::Eight,
            ActivationBits::Twelve,
        )?;
        assert_eq!(a.forward(&x, rows)?, t.forward(&x, rows)?);
        for o in 0..n {
            for j in 0..k {
                assert_eq!(a.weights.get(o, j), t.weights.get(o, j));
            }
        }
        assert!(matches!(
            QuantLinear::from_transposed(
                &[1.0, 0.0, f32::INFINITY, 0.0],
                2,
                2,
                None,
                WeightBits::Eight,
                ActivationBits::Eight
            ),
            Err(QuantError::NotFinite { row: 0 })
        ));
        Ok(())
    }

    #[test]
    fn the_activation_limit_keeps_every_sum_inside_i32() {
        assert_eq!(max_activation(2047, 768), 2047);
        assert_eq!(max_activation(2047, 3072), 2047);
        let wide = max_activation(2047, 20_000);
        assert!(wide < 2047);
        let padded = 20_000usize.div_ceil(kernels::KB) * kernels::KB;
        assert!(i64::from(wide) * 127 * padded as i64 <= i64::from(i32::MAX));
    }

    #[test]
    fn extreme_values_saturate_without_overflow() -> Result<(), QuantError> {
        // Every activation and weight at its limit: the largest sum the kernel can see.
        let (rows, k, n) = (5, 3072, 3);
        let w = vec![-1.0f32; n * k];
        let x = vec![1.0f32; rows * k];
        let layer = QuantLinear::new(&w, n, k, None, WeightBits::Eight, ActivationBits::Twelve)?;
        let y = layer.forward(&x, rows)?;
        assert!(
            y.iter().all(|v| (v + k as f32).abs() <= 1e-2 * k as f32),
            "{y:?}"
        );
        Ok(())
    }

    #[test]
    fn zero_rows_shapes_and_bad_weights() -> Result<(), QuantError> {
        let layer = QuantLinear::new(
            &[0.0; 6],
            2,
            3,
            Some(&[1.0, 2.0]),
            WeightBits::Eight,
            ActivationBits::Twelve,
        )?;
        assert_eq!(layer.forward(&[0.0; 3], 1)?, vec![1.0, 2.0]);
        assert!(layer.forward(&[], 0)?.is_empty());
        let empty = QuantLinear::new(
            &[],
            2,
            0,
            Some(&[3.0, 4.0]),
            WeightBits::Eight,
            ActivationBits::Twelve,
        )?;
        assert_eq!(empty.forward(&[], 2)?, vec![3.0, 4.0, 3.0, 4.0]);
        assert!(matches!(
            layer.forward(&[0.0; 4], 1),
            Err(QuantError::Shape {
                expected: 3,
                got: 4,
                ..
            })
        ));
        assert!(matches!(
            QuantLinear::new(
                &[0.0, f32::INFINITY],
                2,
                1,
                None,
                WeightBits::Eight,
                ActivationBits::Eight
            ),
            Err(QuantError::NotFinite { row: 1 })
        ));
        assert!(matches!(
            QuantLinear::new(
                &[0.0; 6],
                2,
                3,
                Some(&[1.0]),
                WeightBits::Eight,
                ActivationBits::Eight
            ),
            Err(QuantError::Shape {
                expected: 2,
                got: 1,
                ..
            })
        ));
        Ok(())
    }
}
