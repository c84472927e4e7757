//! Plain CPU references for every GPU kernel, written for clarity and numerical stability
//! rather than speed: sums in f64, two-pass layer norm, softmax with max subtraction, an
//! erf accurate to f64 rounding. The kernel tests compare each WGSL kernel with its
//! function here on random sizes and inputs. Same layouts as the kernels (row-major; `b` of
//! a matmul in nn.Linear's `[out, in]` layout).

use super::ops::Act;

/// erf(x) to about 1e-15: Taylor series near zero, Lentz's continued fraction for erfc
/// further out.
pub fn erf(x: f64) -> f64 {
    let z = x.abs();
    let r = if z < 2.5 {
        // erf z = 2/sqrt(pi) * sum (-1)^n z^(2n+1) / (n! (2n+1))
        let mut term = z;
        let mut sum = z;
        let z2 = z * z;
        // Terms peak near n = z² (~6) and fall below 1e-17 of the sum well before n = 60.
        for n in 1..60 {
            let n = f64::from(n);
            term *= -z2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        // erfc z = exp(-z²)/sqrt(pi) / (z + 1/2 / (z + 1 / (z + 3/2 / (z + 2 / (z + ...)))))
        let mut f = z;
        for n in (1..=80).rev() {
            f = z + (f64::from(n) / 2.0) / f;
        }
        1.0 - (-z * z).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

pub fn activate(v: f64, act: Act) -> f64 {
    match act {
        Act::None => v,
        Act::QuickGelu => v / (1.0 + (-1.702 * v).exp()),
        Act::Gelu => 0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2)),
    }
}

/// `act(a · bᵀ + bias) (+ residual)`: a `[m, k]`, b `[n, k]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    act: Act,
) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        let ar = &a[i * k..(i + 1) * k];
        for j in 0..n {
            let br = &b[j * k..(j + 1) * k];
            let mut s: f64 = ar
                .iter()
                .zip(br)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            if let Some(bias) = bias {
                s += f64::from(bias[j]);
            }
            s = activate(s, act);
            if let Some(r) = residual {
                s += f64::from(r[i * n + j]);
            }
            out[i * n + j] = s as f32;
        }
    }
    out
}

/// Row-wise layer norm over `n` columns, biased variance, two passes.
pub fn layernorm(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    n: usize,
    eps: f64,
) -> Vec<f32> {
    let mut out = vec![0f32; rows * n];
    for r in 0..rows {
        let row = &x[r * n..(r + 1) * n];
        let mean = row.iter().map(|v| f64::from(*v)).sum::<f64>() / n as f64;
        let var = row
            .iter()
            .map(|v| (f64::from(*v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for (i, v) in row.iter().enumerate() {
            out[r * n + i] =
                ((f64::from(*v) - mean) * inv * f64::from(gamma[i]) + f64::from(beta[i])) as f32;
        }
    }
    out
}

/// Multi-head attention over `qkv` rows `[q | k | v]` (each `heads * head_dim`), per batch
/// item of `seq` rows; returns the context `[batch * seq, heads * head_dim]`.
pub fn attention(
    qkv: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    head_dim: usize,
    causal: bool,
    scale: f64,
) -> Vec<f32> {
    let hidden = heads * head_dim;
    let stride = 3 * hidden;
    let mut out = vec![0f32; batch * seq * hidden];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..seq {
                let q = &qkv[(b * seq + i) * stride + h * head_dim..][..head_dim];
                let keys = if causal { i + 1 } else { seq };
                let scores: Vec<f64> = (0..keys)
                    .map(|j| {
                        let k = &qkv[(b * seq + j) * stride + hidden + h * head_dim..][..head_dim];
                        q.iter()
                            .zip(k)
                            .map(|(x, y)| f64::from(*x) * f64::from(*y))
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..head_dim {
                    let o: f64 = (0..keys)
                        .map(|j| {
                            e[j] * f64::from(
                                qkv[(b * seq + j) * stride + 2 * hidden + h * head_dim + d],
                            )
                        })
                        .sum();
                    out[(b * seq + i) * hidden + h * head_dim + d] = (o / sum) as f32;
                }
            }
        }
    }
    out
}

/// Images `[count, channels, image, image]` → patch rows `[count * side², channels * patch²]`.
pub fn im2col(
    pixels: &[f32],
    count: usize,
    channels: usize,
    image: usize,
    patch: usize,
) -> Vec<f32> {
    let side = image / patch;
    let k = channels * patch * patch;
    let mut out = Vec::with_capacity(count * side * side * k);
    for img in 0..count {
        for gy in 0..side {
            for gx in 0..side {
                for ch in 0..channels {
                    for ky in 0..patch {
                        for kx in 0..patch {
                            out.push(
                                pixels[((img * channels + ch) * image + gy * patch + ky) * image
                                    + gx * patch
                                    + kx],
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// `[class | patches] + positions` for each image: `[batch * seq, hidden]`.
pub fn assemble_vision(
    patches: &[f32],
    pos: &[f32],
    class: &[f32],
    batch: usize,
    seq: usize,
    hidden: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * seq * hidden];
    for b in 0..batch {
        for t in 0..seq {
            for d in 0..hidden {
                let base = if t == 0 {
                    class[d]
                } else {
                    patches[(b * (seq - 1) + t - 1) * hidden + d]
                };
                out[(b * seq + t) * hidden + d] = base + pos[t * hidden + d];
            }
        }
    }
    out
}

/// `table[ids] + positions`: `[batch * seq, hidden]`.
pub fn embed_tokens(
    ids: &[u32],
    table: &[f32],
    pos: &[f32],
    seq: usize,
    hidden: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; ids.len() * hidden];
    for (r, id) in ids.iter().enumerate() {
        let t = r % seq;
        for d in 0..hidden {
            out[r * hidden + d] = table[*id as usize * hidden + d] + pos[t * hidden + d];
        }
    }
    out
}

/// Rows `rows` of `src` (rows of `n`).
pub fn gather_rows(src: &[f32], rows: &[u32], n: usize) -> Vec<f32> {
    rows.iter()
        .flat_map(|r| src[*r as usize * n..(*r as usize + 1) * n].iter().copied())
        .collect()
}

/// Each row scaled to unit length; zero rows stay zero.
pub fn l2_normalize(src: &[f32], n: usize) -> Vec<f32> {
    let mut out = src.to_vec();
    for row in out.chunks_exact_mut(n.max(1)) {
        let norm = row
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            row.iter_mut()
                .for_each(|v| *v = (f64::from(*v) / norm) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_known_values() {
        let cases = [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (2.5, 0.999_593_047_982_555),
            (3.0, 0.999_977_909_503_001_4),
            (-1.5, -0.966_105_146_475_310_7),
        ];
        for (x, want) in cases {
            assert!(
                (erf(x) - want).abs() < 1e-12,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
        // The two branches meet smoothly.
        let (below, above) = (erf(2.5 - 1e-9), erf(2.5));
        assert!((above - below).abs() < 1e-10, "{below} vs {above}");
    }

    #[test]
    fn softmax_survives_large_scores() {
        // Scores of 1e4 would overflow exp() without max subtraction.
        let qkv = vec![100f32; 2 * 3 * 2];
        let out = attention(&qkv, 1, 2, 1, 2, false, 1.0);
        assert!(out.iter().all(|v| (v - 100.0).abs() < 1e-3), "{out:?}");
    }
}
