//! The CPU engine's parts as bytes, so that an 8-bit engine built once (quantised and
//! packed for this build's kernel) can be kept beside the model and read back on the next
//! start instead of being built again (`model_cache::packed` stores it).
//!
//! A packed file is the parts one after another (an f32 tensor: its values; an 8-bit
//! linear layer: its scales, its bias, then its packed weights exactly as the kernel reads
//! them), then a JSON header naming every part with its place, length and checksum, then a
//! fixed footer: the header's length and checksum and [`MAGIC`]. The header is written
//! last so that the file can be produced part by part, never whole in memory. It carries
//! the [`PackKey`] it was made for (the weights' identity, the kernel and its layout
//! version, the quantisation options): a file made for anything else is not read.
//! Every part is checked (length and a 64-bit checksum, [`check64`]) as it is read.
//!
//! It must not do I/O or decide when to pack; it knows nothing of the model's layers
//! beyond the names `encode::cpu` gives. Reference: the safetensors layout (a named table
//! of byte ranges), here with the table at the end.

use std::ops::Range;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::cpu::QuantOptions;
use super::quant::{kernels, PackedWeights, QuantLinear, KERNEL};
use crate::model::weights::{F32Tensor, Towers};

/// The last bytes of every packed file.
pub const MAGIC: &[u8; 8] = b"CSKPACK1";
/// Bytes of the footer: header length, header checksum, [`MAGIC`].
pub const FOOTER_BYTES: u64 = 24;
/// The version of this file format.
pub const FORMAT_VERSION: u32 = 2;

/// Why a packed file cannot be used (the caller builds the engine from the model instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PackError {
    #[error("the packed weights end without their footer")]
    NoFooter,
    #[error("the packed weights' header is damaged: {0}")]
    Header(String),
    #[error("the packed weights were made for {found}, not {wanted}")]
    OtherKey { wanted: String, found: String },
    #[error("the packed part {name} is damaged ({why})")]
    Part { name: String, why: &'static str },
    #[error("the engine could not be packed: {0}")]
    Engine(String),
}

/// What a packed engine was made for: a file is read only by the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackKey {
    /// The weights' identity (`sha256:HEX` of the model file, or of its chunks' hashes).
    pub weights: String,
    pub towers: Towers,
    pub options: QuantOptions,
}

impl PackKey {
    fn tower_name(&self) -> &'static str {
        match self.towers {
            Towers::Vision => "vision",
            Towers::Text => "text",
            Towers::Both => "both",
        }
    }

    /// The file the packed engine is kept as, beside the model's own files: one per tower
    /// and kernel, so that a new key replaces the old file instead of adding one.
    pub fn file_name(&self) -> String {
        format!("clipseek-packed/{}-{KERNEL}.bin", self.tower_name())
    }

    /// Everything the packed bytes depend on, in one line.
    pub fn tag(&self) -> String {
        let o = &self.options;
        format!(
            "format {FORMAT_VERSION}; kernel {KERNEL} layout {}; {} tower; weights {:?} \
             activations {:?} patch {} projections {} token embedding f16 {}; {}",
            kernels::LAYOUT_VERSION,
            self.tower_name(),
            o.weights,
            o.activations,
            o.patch,
            o.projections,
            o.token_embedding_f16,
            self.weights
        )
    }
}

/// A 64-bit checksum of `bytes` (four multiply-rotate lanes over 8-byte words, then the
/// tail and the length): catches damaged or truncated storage, fast enough to run over
/// every byte read. Not a defence against anyone forging data.
pub fn check64(bytes: &[u8]) -> u64 {
    const P: [u64; 4] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
    ];
    let mix = |h: u64, w: u64, p: u64| (h ^ w).wrapping_mul(p).rotate_left(29);
    let mut lanes = P;
    let (blocks, tail) = bytes.as_chunks::<32>();
    for block in blocks {
        let (words, _) = block.as_chunks::<8>();
        for (i, w) in words.iter().enumerate() {
            lanes[i] = mix(lanes[i], u64::from_le_bytes(*w), P[i]);
        }
    }
    let mut h = bytes.len() as u64;
    for (lane, p) in lanes.iter().zip(P) {
        h = mix(h, *lane, p);
    }
    for (i, b) in tail.iter().enumerate() {
        h = mix(h, u64::from(*b) << (8 * (i % 8)), P[i % 4]);
    }
    h ^ (h >> 31)
}

/// A part as it is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind {
    F32 {
        shape: Vec<usize>,
    },
    /// f32 values that are f16 values, stored in 16 bits.
    F16 {
        shape: Vec<usize>,
    },
    Quant {
        outputs: usize,
        inputs: usize,
        limit: i16,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entry {
    name: String,
    #[serde(flatten)]
    kind: Kind,
    offset: u64,
    len: u64,
    check: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    key: String,
    parts: Vec<Entry>,
}

/// A part of an engine to pack, borrowed from it.
pub enum PartRef<'a> {
    Tensor(&'a Tensor),
    /// A tensor whose values are f16 values (rounded so at build): packed in 16 bits.
    F16(&'a Tensor),
    Quant(&'a QuantLinear),
}

/// A part read back.
#[derive(Debug)]
pub enum Part {
    Tensor(F32Tensor),
    Quant(QuantLinear),
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect()
}

/// Little-endian f16 values widened to f32, exactly, without a branchy conversion per
/// value (the packed token embedding has 25 M of them): shifts, a multiply and a select.
fn f16s(bytes: &[u8]) -> Vec<f32> {
    // The magnitude's bits moved into f32's place read 2^-112 times the value (normal or
    // subnormal alike); infinities and NaNs (exponent all ones) keep their f32 pattern.
    let scale = f32::from_bits(0x7780_0000); // 2^112
    bytes
        .chunks_exact(2)
        .map(|c| {
            let h = u32::from(u16::from_le_bytes([c[0], c[1]]));
            let sign = (h & 0x8000) << 16;
            let mag = h & 0x7fff;
            let finite = (f32::from_bits(mag << 13) * scale).to_bits();
            let special = 0x7f80_0000 | ((mag & 0x3ff) << 13);
            f32::from_bits(sign | if mag >= 0x7c00 { special } else { finite })
        })
        .collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Produces a packed file part by part: an iterator over its bytes (the parts, then the
/// header and footer). A part that cannot be read out of the engine ends the file early
/// and is said by [`Self::error`]: check it before keeping what was produced.
pub struct PackWriter<'a> {
    parts: std::vec::IntoIter<(String, PartRef<'a>)>,
    entries: Vec<Entry>,
    offset: u64,
    key: String,
    finished: bool,
    error: Option<PackError>,
}

impl<'a> PackWriter<'a> {
    pub fn new(key: &PackKey, parts: Vec<(String, PartRef<'a>)>) -> Self {
        Self {
            parts: parts.into_iter(),
            entries: Vec::new(),
            offset: 0,
            key: key.tag(),
            finished: false,
            error: None,
        }
    }

    /// Why the file ended early, if it did.
    pub fn error(&self) -> Option<&PackError> {
        self.error.as_ref()
    }

    fn part_bytes(part: &PartRef<'_>) -> Result<(Kind, Vec<u8>), PackError> {
        Ok(match part {
            PartRef::Tensor(t) | PartRef::F16(t) => {
                let values = t
                    .flatten_all()
                    .and_then(|v| v.to_vec1::<f32>())
                    .map_err(|e| PackError::Engine(e.to_string()))?;
                let shape = t.dims().to_vec();
                if matches!(part, PartRef::F16(_)) {
                    (Kind::F16 { shape }, f16_bytes(&values))
                } else {
                    (Kind::F32 { shape }, f32_bytes(&values))
                }
            }
            PartRef::Quant(q) => {
                let (weights, scales, bias, limit) = q.parts();
                let mut bytes = f32_bytes(scales);
                bytes.extend(f32_bytes(bias));
                bytes.extend_from_slice(weights.as_bytes());
                let kind = Kind::Quant {
                    outputs: weights.outputs(),
                    inputs: weights.inputs(),
                    limit,
                };
                (kind, bytes)
            }
        })
    }

    fn footer(&mut self) -> Result<Vec<u8>, PackError> {
        let header = Header {
            format: FORMAT_VERSION,
            key: std::mem::take(&mut self.key),
            parts: std::mem::take(&mut self.entries),
        };
        let mut bytes =
            serde_json::to_vec(&header).map_err(|e| PackError::Header(e.to_string()))?;
        let (len, check) = (bytes.len() as u64, check64(&bytes));
        bytes.extend(len.to_le_bytes());
        bytes.extend(check.to_le_bytes());
        bytes.extend(MAGIC);
        Ok(bytes)
    }
}

impl Iterator for PackWriter<'_> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if self.finished || self.error.is_some() {
            return None;
        }
        let step = match self.parts.next() {
            Some((name, part)) => Self::part_bytes(&part).map(|(kind, bytes)| {
                let len = bytes.len() as u64;
                self.entries.push(Entry {
                    name,
                    kind,
                    offset: self.offset,
                    len,
                    check: check64(&bytes),
                });
                self.offset += len;
                bytes
            }),
            None => {
                self.finished = true;
                self.footer()
            }
        };
        match step {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

/// The byte range of the header, from the file's last [`FOOTER_BYTES`] bytes.
pub fn header_range(footer: &[u8], file_len: u64) -> Result<(Range<u64>, u64), PackError> {
    let Some((fields, magic)) = footer.split_last_chunk::<8>() else {
        return Err(PackError::NoFooter);
    };
    let (Some((len, rest)), true) = (fields.split_first_chunk::<8>(), magic == MAGIC) else {
        return Err(PackError::NoFooter);
    };
    let check = rest
        .first_chunk::<8>()
        .map(|c| u64::from_le_bytes(*c))
        .ok_or(PackError::NoFooter)?;
    let len = u64::from_le_bytes(*len);
    let end = file_len
        .checked_sub(FOOTER_BYTES)
        .ok_or(PackError::NoFooter)?;
    let start = end
        .checked_sub(len)
        .ok_or_else(|| PackError::Header(format!("{len} bytes do not fit in the file")))?;
    Ok((start..end, check))
}

/// The table of a packed file, checked against its checksum and the key wanted.
#[derive(Debug)]
pub struct PackTable {
    parts: Vec<Entry>,
}

impl PackTable {
    /// `bytes`: the header (`header_range`), `check` its checksum from the footer; every
    /// part must lie before `payload_end` (where the header starts).
    pub fn parse(
        bytes: &[u8],
        check: u64,
        key: &PackKey,
        payload_end: u64,
    ) -> Result<Self, PackError> {
        if check64(bytes) != check {
            return Err(PackError::Header("its checksum does not match".into()));
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| PackError::Header(e.to_string()))?;
        let wanted = key.tag();
        if header.format != FORMAT_VERSION || header.key != wanted {
            return Err(PackError::OtherKey {
                wanted,
                found: header.key,
            });
        }
        if let Some(e) = header.parts.iter().find(|e| {
            e.offset
                .checked_add(e.len)
                .is_none_or(|end| end > payload_end)
        }) {
            return Err(PackError::Header(format!(
                "{} lies outside the file",
                e.name
            )));
        }
        Ok(Self {
            parts: header.parts,
        })
    }

    /// The parts in file order: name and byte range.
    pub fn ranges(&self) -> impl Iterator<Item = (&str, Range<u64>)> {
        self.parts
            .iter()
            .map(|e| (e.name.as_str(), e.offset..e.offset + e.len))
    }

    /// Part `index` from its bytes, checked.
    pub fn decode(&self, index: usize, bytes: &[u8]) -> Result<Part, PackError> {
        let e = self
            .parts
            .get(index)
            .ok_or(PackError::Header("a part is missing".into()))?;
        let bad = |why| PackError::Part {
            name: e.name.clone(),
            why,
        };
        if bytes.len() as u64 != e.len {
            return Err(bad("wrong length"));
        }
        if check64(bytes) != e.check {
            return Err(bad("checksum mismatch"));
        }
        match &e.kind {
            Kind::F32 { shape } => {
                if shape.iter().product::<usize>() * 4 != bytes.len() {
                    return Err(bad("its shape does not match its length"));
                }
                Ok(Part::Tensor(F32Tensor {
                    shape: shape.clone(),
                    data: f32s(bytes),
                }))
            }
            Kind::F16 { shape } => {
                if shape.iter().product::<usize>() * 2 != bytes.len() {
                    return Err(bad("its shape does not match its length"));
                }
                Ok(Part::Tensor(F32Tensor {
                    shape: shape.clone(),
                    data: f16s(bytes),
                }))
            }
            Kind::Quant {
                outputs,
                inputs,
                limit,
            } => {
                let (scales, rest) = bytes
                    .split_at_checked(outputs * 4)
                    .ok_or_else(|| bad("too short"))?;
                let (bias, weights) = rest
                    .split_at_checked(outputs * 4)
                    .ok_or_else(|| bad("too short"))?;
                let weights = PackedWeights::from_bytes(*outputs, *inputs, weights)
                    .ok_or_else(|| bad("its weights do not match its shape"))?;
                QuantLinear::from_packed(weights, f32s(scales), f32s(bias), *limit)
                    .map(Part::Quant)
                    .map_err(|_| bad("its scales or limit do not match its shape"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_widens_as_half_widens_it() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        for (h, got) in (0..=u16::MAX).zip(f16s(&bytes)) {
            let want = half::f16::from_bits(h).to_f32();
            if want.is_nan() {
                assert!(got.is_nan(), "{h:#06x}: {got}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{h:#06x}");
            }
        }
    }
}
