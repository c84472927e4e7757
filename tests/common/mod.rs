//! Shared helpers for the integration tests: fixture paths, the reference JSON written by
//! `scripts/make_fixtures.py`, raw f32 files and cosine similarity.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[derive(Debug, Deserialize)]
pub struct RefImage {
    pub file: String,
    pub pixels: String,
    pub shape: Vec<usize>,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub embedding_f16: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct RefText {
    pub text: String,
    pub ids: Vec<u32>,
    pub eos_position: usize,
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub embedding_f16: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct RefRanking {
    pub text: String,
    pub files: Vec<String>,
    pub scores: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct Reference {
    pub model: String,
    pub images: Vec<RefImage>,
    pub texts: Vec<RefText>,
    pub rankings: Vec<RefRanking>,
    #[serde(default)]
    pub bad: Vec<String>,
}

pub fn reference(name: &str) -> Result<Reference, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(fixtures().join(name))?;
    Ok(serde_json::from_slice(&bytes)?)
}

pub fn read_f32(path: &Path) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb)) as f32
}

/// Checks that `ours` orders items like `theirs` (names with reference scores), allowing
/// swaps between items whose reference scores differ by less than `tie`.
pub fn same_ranking(ours: &[String], theirs: &[String], scores: &[f32], tie: f32) -> bool {
    if ours.len() != theirs.len() {
        return false;
    }
    let score_of = |name: &str| {
        theirs
            .iter()
            .position(|t| t == name)
            .and_then(|i| scores.get(i).copied())
    };
    ours.iter().zip(theirs).enumerate().all(|(i, (o, t))| {
        o == t
            || match (score_of(o), scores.get(i)) {
                (Some(so), Some(st)) => (so - st).abs() < tie && score_of(t).is_some(),
                _ => false,
            }
    })
}

/// Runs the `clipseek` binary: (exit status, stdout as JSON or null when empty, stderr).
pub fn clipseek(args: &[&str]) -> Result<(i32, Value, String), Box<dyn std::error::Error>> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clipseek"))
        .args(args)
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)?
    };
    Ok((
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8(out.stderr)?,
    ))
}
