//! The Rust weight generator reproduces the fixture script's numpy generator bit for bit:
//! first values of a few tensors (`check`) and the SHA-256 of every small tensor's
//! little-endian f32 bytes (`sha256_le_f32`); the slow test covers all of them.

mod common;

use clipseek::model::synthetic::{fnv1a64, generate, Spec};
use common::*;
use sha2::{Digest, Sha256};

#[derive(serde::Deserialize)]
struct Check {
    name: String,
    fnv1a64: String,
    first_bits: Vec<String>,
}

#[derive(serde::Deserialize)]
struct Extra {
    check: Vec<Check>,
    sha256_le_f32: std::collections::BTreeMap<String, String>,
}

fn sha_hex(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_tensors(max_elements: usize) -> TestResult {
    let bytes = std::fs::read(fixtures().join("vit-b32-random/spec.json"))?;
    let spec = Spec::from_json(&bytes)?;
    let extra: Extra = serde_json::from_slice(&bytes)?;
    for c in &extra.check {
        assert_eq!(
            format!("{:#018x}", fnv1a64(c.name.as_bytes())),
            c.fnv1a64,
            "{}",
            c.name
        );
        let t = spec
            .tensors
            .iter()
            .find(|t| t.name == c.name)
            .ok_or("tensor not in spec")?;
        let values = generate(t)?;
        for (v, bits) in values.iter().zip(&c.first_bits) {
            assert_eq!(format!("{:#010x}", v.to_bits()), *bits, "{}", c.name);
        }
    }
    let mut checked = 0;
    for t in &spec.tensors {
        if t.shape.iter().product::<usize>() > max_elements {
            continue;
        }
        let want = extra.sha256_le_f32.get(&t.name).ok_or("no hash")?;
        assert_eq!(&sha_hex(&generate(t)?), want, "{}", t.name);
        checked += 1;
    }
    assert!(checked > 0);
    Ok(())
}

#[test]
fn generator_matches_numpy_on_small_tensors() -> TestResult {
    check_tensors(1 << 20)
}

#[test]
#[ignore = "slow: generates all 151 M values; scripts/check runs it"]
fn generator_matches_numpy_on_every_tensor() -> TestResult {
    check_tensors(usize::MAX)
}
