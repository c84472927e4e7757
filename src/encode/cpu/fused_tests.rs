use super::*;

use crate::splitmix::SplitMix64 as Rng;

fn norm(w: Vec<f32>, b: Vec<f32>, eps: f64) -> CResult<LayerNorm> {
    let t = |v: &[f32]| Tensor::from_slice(v, v.len(), &Device::Cpu);
    Ok(LayerNorm {
        weight: t(&w)?,
        bias: t(&b)?,
        w,
        b,
        eps,
    })
}

#[test]
fn exp_is_within_a_few_ulps_of_f64_over_the_whole_range() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x <= 88.0 {
        let want = f64::from(x).exp();
        let got = f64::from(exp(x));
        worst = worst.max(((got - want) / want).abs());
        x += 0.000_37;
    }
    assert!(worst <= 3e-7, "worst relative error {worst}");
    // Clamped, not infinite or zero; NaN stays NaN.
    assert!(exp(-1e4) > 0.0 && exp(-1e4) < 1e-37);
    assert!(exp(f32::NEG_INFINITY) >= 0.0 && exp(f32::NEG_INFINITY) < 1e-37);
    assert!(exp(1e4).is_finite());
    assert!(exp(f32::NAN).is_nan());
    assert_eq!(exp(0.0), 1.0);
}

#[test]
fn layer_norm_matches_a_two_pass_f64_reference_on_odd_widths() -> CResult<()> {
    let mut rng = Rng(3);
    for h in [1usize, 5, 8, 13, 64, 768, 771] {
        let rows = 3;
        let mut x = rng.vec(rows * h, 2.0);
        // An outlier channel and an offset, as the residual stream has.
        x[h / 2] = 40.0;
        for v in x.iter_mut().take(h) {
            *v += 7.0;
        }
        let ln = norm(rng.vec(h, 1.0), rng.vec(h, 0.5), 1e-5)?;
        let mut out = vec![0f32; x.len()];
        layer_norm(&x, &ln, &mut out);
        for (r, row) in x.chunks_exact(h).enumerate() {
            let mean = row.iter().map(|v| f64::from(*v)).sum::<f64>() / h as f64;
            let var = row
                .iter()
                .map(|v| (f64::from(*v) - mean).powi(2))
                .sum::<f64>()
                / h as f64;
            for i in 0..h {
                let want = (f64::from(row[i]) - mean) / (var + 1e-5).sqrt() * f64::from(ln.w[i])
                    + f64::from(ln.b[i]);
                let got = f64::from(out[r * h + i]);
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "h {h} row {r} at {i}: {got} vs {want}"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn the_activations_match_their_f64_definitions() {
    let xs: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.01).collect();
    let mut quick = xs.clone();
    activate(&mut quick, Activation::QuickGelu);
    let mut gelu = xs.clone();
    activate(&mut gelu, Activation::Gelu);
    for (i, x) in xs.iter().enumerate() {
        let x64 = f64::from(*x);
        let want_quick = x64 / (1.0 + (-1.702 * x64).exp());
        assert!(
            (f64::from(quick[i]) - want_quick).abs() <= 1e-6 * (1.0 + want_quick.abs()),
            "quick-GELU({x}) = {}, want {want_quick}",
            quick[i]
        );
        let want_gelu =
            0.5 * x64 * (1.0 + f64::from(candle_core::cpu::erf::erf_f32(*x / 2f32.sqrt())));
        assert!(
            (f64::from(gelu[i]) - want_gelu).abs() <= 1e-6 * (1.0 + want_gelu.abs()),
            "GELU({x}) = {}, want {want_gelu}",
            gelu[i]
        );
    }
}

/// Attention computed the textbook way in f64: scores, masked softmax, context.
fn attention_reference(
    [q, k, v]: [&[f32]; 3],
    (b, t, heads): (usize, usize, usize),
    causal: bool,
) -> Vec<f64> {
    let h = q.len() / (b * t);
    let dh = h / heads;
    let mut ctx = vec![0f64; b * t * h];
    for bi in 0..b {
        for hd in 0..heads {
            for i in 0..t {
                let at =
                    |m: &[f32], r: usize, d: usize| f64::from(m[(bi * t + r) * h + hd * dh + d]);
                let scores: Vec<f64> = (0..t)
                    .map(|j| {
                        if causal && j > i {
                            f64::NEG_INFINITY
                        } else {
                            (0..dh).map(|d| at(q, i, d) * at(k, j, d)).sum::<f64>()
                                / (dh as f64).sqrt()
                        }
                    })
                    .collect();
                let max = scores.iter().fold(f64::NEG_INFINITY, |m, s| m.max(*s));
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..dh {
                    ctx[(bi * t + i) * h + hd * dh + d] =
                        (0..t).map(|j| e[j] / sum * at(v, j, d)).sum::<f64>();
                }
            }
        }
    }
    ctx
}

#[test]
fn attention_matches_the_f64_reference_with_and_without_the_causal_mask() {
    let mut rng = Rng(9);
    // Odd sizes: heads of 5 and 1 values, sequences of 1, 7 and 50 rows, batches of 1–3.
    for (b, t, heads, dh) in [(1, 1, 1, 1), (2, 7, 3, 5), (3, 5, 2, 8), (1, 50, 12, 64)] {
        let h = heads * dh;
        let q = rng.vec(b * t * h, 1.5);
        let k = rng.vec(b * t * h, 1.5);
        let v = rng.vec(b * t * h, 1.0);
        for causal in [false, true] {
            let mut ctx = vec![f32::NAN; b * t * h];
            let (mut kt, mut scores) = (Vec::new(), Vec::new());
            attention(
                [&q, &k, &v],
                &mut ctx,
                (b, t, heads),
                causal,
                &mut kt,
                &mut scores,
            );
            let want = attention_reference([&q, &k, &v], (b, t, heads), causal);
            for (i, (g, w)) in ctx.iter().zip(&want).enumerate() {
                assert!(
                    (f64::from(*g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{b}x{t}, {heads} heads of {dh}, causal {causal}, at {i}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn a_profile_charges_each_mark_to_its_step() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NOW: AtomicU64 = AtomicU64::new(0);
    fn clock() -> f64 {
        NOW.fetch_add(1, Ordering::SeqCst) as f64
    }
    let mut p = Profile::new(clock);
    let mut timer = Timer(Some(&mut p));
    timer.mark(Step::Gemm);
    timer.mark(Step::Gemm);
    timer.mark(Step::Attention);
    let steps = p.steps();
    assert_eq!(steps[0], (Step::Gemm, 2.0));
    assert!(steps.contains(&(Step::Attention, 1.0)));
    assert_eq!(p.total(), 3.0);
    Timer(None).mark(Step::Other);
}
