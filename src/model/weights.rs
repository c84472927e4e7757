//! `model.safetensors` → named f32 tensors, checked against the configuration.
//!
//! The file is never held whole: [`SafetensorsHeader::parse`] reads the table at the front,
//! [`expected_tensors`] says what a `CLIPModel` with this configuration must contain, and the
//! caller reads each tensor's byte range (a file seek natively, a Blob slice in the browser)
//! and hands it to [`WeightsBuilder::insert`], which converts f32 / f16 / bf16 to f32 at once.
//! Every expected tensor must exist with the expected shape before any data is read, and the
//! first one missing or wrong is named: nothing is ever silently filled with random values
//! (candle's own CLIP does that for a missing `class_embedding`). Names follow transformers'
//! `CLIPModel.state_dict()`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::config::ClipConfig;

/// The largest header we accept (the real ViT-L/14 header is ~40 KB).
const MAX_HEADER_BYTES: u64 = 64 << 20;

/// Why weights could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("model.safetensors is too short to be a safetensors file ({len_bytes} bytes)")]
    TooShort { len_bytes: u64 },
    #[error("model.safetensors has a header of {header_bytes} bytes, which does not fit in a file of {len_bytes} bytes")]
    BadHeaderLength { header_bytes: u64, len_bytes: u64 },
    #[error("model.safetensors has an unreadable header: {message}")]
    BadHeader { message: String },
    #[error("model.safetensors is truncated: tensor {tensor} needs bytes up to {end_bytes} but the file holds {len_bytes}")]
    Truncated {
        tensor: String,
        end_bytes: u64,
        len_bytes: u64,
    },
    #[error("model.safetensors: tensor {tensor} declares data offsets {begin_bytes}..{end_bytes}, which run past any file")]
    OffsetOverflow {
        tensor: String,
        begin_bytes: u64,
        end_bytes: u64,
    },
    #[error("model.safetensors: tensors {first} and {second} overlap (bytes {second_begin_bytes}..{first_end_bytes} of the data)")]
    Overlap {
        first: String,
        second: String,
        second_begin_bytes: u64,
        first_end_bytes: u64,
    },
    #[error("model.safetensors: tensor {tensor} has dtype {dtype}; only F32, F16 and BF16 are supported")]
    UnsupportedDtype { tensor: String, dtype: String },
    #[error("model.safetensors: tensor {tensor} declares shape {shape:?} but {size_bytes} bytes")]
    SizeMismatch {
        tensor: String,
        shape: Vec<usize>,
        size_bytes: u64,
    },
    #[error("model.safetensors has no tensor {tensor}, which this CLIP configuration needs")]
    Missing { tensor: String },
    #[error("model.safetensors: tensor {tensor} has shape {found:?}, the configuration needs {expected:?}")]
    WrongShape {
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error(
        "model.safetensors: tensor {tensor} was given {got_bytes} bytes, expected {expected_bytes}"
    )]
    WrongLength {
        tensor: String,
        expected_bytes: u64,
        got_bytes: u64,
    },
    #[error("model.safetensors: tensor {tensor} contains a non-finite value")]
    NonFinite { tensor: String },
}

/// Which towers a consumer needs: an image-encoding worker loads only the vision tower, a
/// query worker only the text tower, so neither holds the other's weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Towers {
    #[default]
    Both,
    Vision,
    Text,
}

impl Towers {
    pub fn vision(self) -> bool {
        matches!(self, Towers::Both | Towers::Vision)
    }

    pub fn text(self) -> bool {
        matches!(self, Towers::Both | Towers::Text)
    }

    /// Does the tensor `name` belong to a tower in this set?
    pub fn wants(self, name: &str) -> bool {
        let vision = name.starts_with("vision_model.") || name.starts_with("visual_projection");
        if vision {
            self.vision()
        } else {
            self.text()
        }
    }
}

/// Element types accepted in a checkpoint; all are converted to f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F16,
    Bf16,
}

impl Dtype {
    pub fn size_bytes(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte offset in the file.
    pub offset_bytes: u64,
    pub size_bytes: u64,
}

#[derive(Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [u64; 2],
}

/// The table at the front of a safetensors file.
#[derive(Debug, Clone)]
pub struct SafetensorsHeader {
    pub tensors: BTreeMap<String, TensorInfo>,
    /// The header's JSON text, for fingerprints.
    pub json: String,
}

impl SafetensorsHeader {
    /// How many bytes from the start of the file the header occupies, read from the
    /// first 8 bytes. Callers read that many bytes and pass them to [`Self::parse`].
    pub fn total_len(first8: &[u8], file_len_bytes: u64) -> Result<u64, WeightsError> {
        let Some(len) = first8.get(..8) else {
            return Err(WeightsError::TooShort {
                len_bytes: file_len_bytes,
            });
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(len);
        let header_bytes = u64::from_le_bytes(b);
        if header_bytes > MAX_HEADER_BYTES || header_bytes.saturating_add(8) > file_len_bytes {
            return Err(WeightsError::BadHeaderLength {
                header_bytes,
                len_bytes: file_len_bytes,
            });
        }
        Ok(8 + header_bytes)
    }

    /// Parses the header from the file's first `total_len` bytes (or more) and checks every
    /// tensor's extent against the file length.
    pub fn parse(front: &[u8], file_len_bytes: u64) -> Result<Self, WeightsError> {
        let total = Self::total_len(front, file_len_bytes)?;
        let json_bytes = front.get(8..total as usize).ok_or(WeightsError::TooShort {
            len_bytes: front.len() as u64,
        })?;
        let json = std::str::from_utf8(json_bytes)
            .map_err(|e| WeightsError::BadHeader {
                message: e.to_string(),
            })?
            .to_owned();
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(&json).map_err(|e| WeightsError::BadHeader {
                message: e.to_string(),
            })?;
        let mut tensors = BTreeMap::new();
        // Every declared byte range, read or not, to refuse overlaps once all are known.
        let mut ranges: Vec<(u64, u64, String)> = Vec::new();
        for (name, value) in raw {
            if name == "__metadata__" {
                continue;
            }
            let info: RawInfo =
                serde_json::from_value(value).map_err(|e| WeightsError::BadHeader {
                    message: format!("tensor {name}: {e}"),
                })?;
            let [begin, end] = info.data_offsets;
            if end < begin {
                return Err(WeightsError::BadHeader {
                    message: format!("tensor {name} ends before it begins"),
                });
            }
            // Offsets count from the end of the header; both ends must land in the file
            // without wrapping (a wrapped offset would point back into the header).
            let (Some(offset_bytes), Some(end_bytes)) =
                (total.checked_add(begin), total.checked_add(end))
            else {
                return Err(WeightsError::OffsetOverflow {
                    tensor: name,
                    begin_bytes: begin,
                    end_bytes: end,
                });
            };
            if end_bytes > file_len_bytes {
                return Err(WeightsError::Truncated {
                    tensor: name,
                    end_bytes,
                    len_bytes: file_len_bytes,
                });
            }
            ranges.push((begin, end, name.clone()));
            let dtype = match info.dtype.as_str() {
                "F32" => Dtype::F32,
                "F16" => Dtype::F16,
                "BF16" => Dtype::Bf16,
                _ => {
                    // Tolerate tensors we never read (e.g. int64 position_ids buffers),
                    // but keep them out of the table.
                    continue;
                }
            };
            let size_bytes = end - begin;
            let numel = info
                .shape
                .iter()
                .try_fold(1u64, |acc, d| acc.checked_mul(*d as u64));
            if numel.and_then(|n| n.checked_mul(dtype.size_bytes())) != Some(size_bytes) {
                return Err(WeightsError::SizeMismatch {
                    tensor: name,
                    shape: info.shape,
                    size_bytes,
                });
            }
            tensors.insert(
                name,
                TensorInfo {
                    dtype,
                    shape: info.shape,
                    offset_bytes,
                    size_bytes,
                },
            );
        }
        refuse_overlaps(ranges)?;
        Ok(Self { tensors, json })
    }

    /// Checks that every tensor this configuration needs is present with the right shape,
    /// and returns them in loading order. Names the first missing or misshapen tensor.
    pub fn plan(
        &self,
        config: &ClipConfig,
        towers: Towers,
    ) -> Result<Vec<(String, TensorInfo)>, WeightsError> {
        let mut plan = Vec::new();
        for (name, expected) in expected_tensors(config) {
            if !towers.wants(&name) {
                continue;
            }
            let info = self
                .tensors
                .get(&name)
                .ok_or_else(|| WeightsError::Missing {
                    tensor: name.clone(),
                })?;
            if info.shape != expected {
                return Err(WeightsError::WrongShape {
                    tensor: name,
                    expected,
                    found: info.shape.clone(),
                });
            }
            plan.push((name, info.clone()));
        }
        Ok(plan)
    }
}

/// Refuses two tensors whose (non-empty) byte ranges share a byte: one write would
/// change the other, and a loader reading both would see the same bytes twice.
fn refuse_overlaps(mut ranges: Vec<(u64, u64, String)>) -> Result<(), WeightsError> {
    ranges.retain(|(begin, end, _)| end > begin);
    ranges.sort_unstable();
    let mut furthest: Option<&(u64, u64, String)> = None;
    for range in &ranges {
        if let Some(first) = furthest {
            if range.0 < first.1 {
                return Err(WeightsError::Overlap {
                    first: first.2.clone(),
                    second: range.2.clone(),
                    second_begin_bytes: range.0,
                    first_end_bytes: first.1,
                });
            }
        }
        if furthest.is_none_or(|f| range.1 > f.1) {
            furthest = Some(range);
        }
    }
    Ok(())
}

/// Every tensor a `CLIPModel` with this configuration needs, with its shape, in
/// transformers' names. `logit_scale` and `position_ids` buffers are not needed.
pub fn expected_tensors(config: &ClipConfig) -> Vec<(String, Vec<usize>)> {
    let t = &config.text_config;
    let v = &config.vision_config;
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| out.push((name, shape));
    push(
        "text_model.embeddings.token_embedding.weight".into(),
        vec![t.vocab_size, t.hidden_size],
    );
    push(
        "text_model.embeddings.position_embedding.weight".into(),
        vec![t.max_position_embeddings, t.hidden_size],
    );
    layers(
        &mut push,
        "text_model.encoder.layers",
        t.num_hidden_layers,
        t.hidden_size,
        t.intermediate_size,
    );
    push(
        "text_model.final_layer_norm.weight".into(),
        vec![t.hidden_size],
    );
    push(
        "text_model.final_layer_norm.bias".into(),
        vec![t.hidden_size],
    );
    push(
        "text_projection.weight".into(),
        vec![config.projection_dim, t.hidden_size],
    );
    push(
        "vision_model.embeddings.class_embedding".into(),
        vec![v.hidden_size],
    );
    push(
        "vision_model.embeddings.patch_embedding.weight".into(),
        vec![v.hidden_size, v.num_channels, v.patch_size, v.patch_size],
    );
    push(
        "vision_model.embeddings.position_embedding.weight".into(),
        vec![v.num_positions(), v.hidden_size],
    );
    push(
        "vision_model.pre_layrnorm.weight".into(),
        vec![v.hidden_size],
    );
    push("vision_model.pre_layrnorm.bias".into(), vec![v.hidden_size]);
    layers(
        &mut push,
        "vision_model.encoder.layers",
        v.num_hidden_layers,
        v.hidden_size,
        v.intermediate_size,
    );
    push(
        "vision_model.post_layernorm.weight".into(),
        vec![v.hidden_size],
    );
    push(
        "vision_model.post_layernorm.bias".into(),
        vec![v.hidden_size],
    );
    push(
        "visual_projection.weight".into(),
        vec![config.projection_dim, v.hidden_size],
    );
    out
}

fn layers(
    push: &mut impl FnMut(String, Vec<usize>),
    prefix: &str,
    count: usize,
    hidden: usize,
    intermediate: usize,
) {
    for i in 0..count {
        let p = format!("{prefix}.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            push(format!("{p}.self_attn.{proj}.weight"), vec![hidden, hidden]);
            push(format!("{p}.self_attn.{proj}.bias"), vec![hidden]);
        }
        for ln in ["layer_norm1", "layer_norm2"] {
            push(format!("{p}.{ln}.weight"), vec![hidden]);
            push(format!("{p}.{ln}.bias"), vec![hidden]);
        }
        push(format!("{p}.mlp.fc1.weight"), vec![intermediate, hidden]);
        push(format!("{p}.mlp.fc1.bias"), vec![intermediate]);
        push(format!("{p}.mlp.fc2.weight"), vec![hidden, intermediate]);
        push(format!("{p}.mlp.fc2.bias"), vec![hidden]);
    }
}

/// One tensor converted to f32, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// All weights of a CLIP model, f32, checked.
#[derive(Debug, Clone)]
pub struct ClipWeights {
    tensors: BTreeMap<String, F32Tensor>,
    towers: Towers,
}

impl ClipWeights {
    /// The towers these weights hold.
    pub fn towers(&self) -> Towers {
        self.towers
    }

    /// Removes and returns a tensor (the engines take ownership to avoid copies).
    pub fn take(&mut self, name: &str) -> Result<F32Tensor, WeightsError> {
        self.tensors
            .remove(name)
            .ok_or_else(|| WeightsError::Missing {
                tensor: name.to_owned(),
            })
    }

    pub fn get(&self, name: &str) -> Option<&F32Tensor> {
        self.tensors.get(name)
    }

    /// Total parameters held.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }
}

/// Where an engine takes its tensors from, by name (it owns what it takes).
pub trait TensorSource {
    fn take(&mut self, name: &str) -> Result<F32Tensor, WeightsError>;
}

impl TensorSource for ClipWeights {
    fn take(&mut self, name: &str) -> Result<F32Tensor, WeightsError> {
        ClipWeights::take(self, name)
    }
}

/// Checked tensors of any other model (the multilingual text encoder).
pub type NamedTensors = BTreeMap<String, F32Tensor>;

impl TensorSource for NamedTensors {
    fn take(&mut self, name: &str) -> Result<F32Tensor, WeightsError> {
        self.remove(name).ok_or_else(|| WeightsError::Missing {
            tensor: name.to_owned(),
        })
    }
}

/// Collects tensors one at a time, converting each to f32 as it arrives.
pub struct WeightsBuilder {
    plan: Vec<(String, TensorInfo)>,
    tensors: BTreeMap<String, F32Tensor>,
    towers: Towers,
}

impl WeightsBuilder {
    /// Checks the header against the configuration; fails before any tensor data is read.
    pub fn new(header: &SafetensorsHeader, config: &ClipConfig) -> Result<Self, WeightsError> {
        Self::for_towers(header, config, Towers::Both)
    }

    /// Like [`Self::new`], but plans only the tensors of `towers`.
    pub fn for_towers(
        header: &SafetensorsHeader,
        config: &ClipConfig,
        towers: Towers,
    ) -> Result<Self, WeightsError> {
        Ok(Self {
            plan: header.plan(config, towers)?,
            tensors: BTreeMap::new(),
            towers,
        })
    }

    /// The towers this builder loads.
    pub fn towers(&self) -> Towers {
        self.towers
    }

    /// The tensors to read, in order: name and byte range in the file.
    pub fn plan(&self) -> &[(String, TensorInfo)] {
        &self.plan
    }

    /// Converts the raw bytes of the tensor `name` (exactly its byte range) and keeps it.
    pub fn insert(&mut self, name: &str, bytes: &[u8]) -> Result<(), WeightsError> {
        let info = self
            .plan
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
            .ok_or_else(|| WeightsError::Missing {
                tensor: name.to_owned(),
            })?;
        if bytes.len() as u64 != info.size_bytes {
            return Err(WeightsError::WrongLength {
                tensor: name.to_owned(),
                expected_bytes: info.size_bytes,
                got_bytes: bytes.len() as u64,
            });
        }
        let data = to_f32(info.dtype, bytes);
        if data.iter().any(|v| !v.is_finite()) {
            return Err(WeightsError::NonFinite {
                tensor: name.to_owned(),
            });
        }
        self.tensors.insert(
            name.to_owned(),
            F32Tensor {
                shape: info.shape.clone(),
                data,
            },
        );
        Ok(())
    }

    /// All tensors, once every planned one was inserted.
    pub fn finish(self) -> Result<ClipWeights, WeightsError> {
        for (name, _) in &self.plan {
            if !self.tensors.contains_key(name) {
                return Err(WeightsError::Missing {
                    tensor: name.clone(),
                });
            }
        }
        Ok(ClipWeights {
            tensors: self.tensors,
            towers: self.towers,
        })
    }
}

pub(crate) fn to_f32(dtype: Dtype, bytes: &[u8]) -> Vec<f32> {
    match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::Bf16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// Loads weights from a whole safetensors buffer (small models and tests; large models
/// should be read tensor by tensor through [`WeightsBuilder`]).
pub fn from_bytes(
    bytes: &[u8],
    config: &ClipConfig,
) -> Result<(ClipWeights, SafetensorsHeader), WeightsError> {
    from_bytes_for(bytes, config, Towers::Both)
}

/// [`from_bytes`] for some towers only.
pub fn from_bytes_for(
    bytes: &[u8],
    config: &ClipConfig,
    towers: Towers,
) -> Result<(ClipWeights, SafetensorsHeader), WeightsError> {
    let header = SafetensorsHeader::parse(bytes, bytes.len() as u64)?;
    let mut builder = WeightsBuilder::for_towers(&header, config, towers)?;
    for (name, info) in builder.plan().to_vec() {
        let end_bytes = info.offset_bytes.saturating_add(info.size_bytes);
        let slice = usize::try_from(info.offset_bytes)
            .ok()
            .zip(usize::try_from(end_bytes).ok())
            .and_then(|(start, end)| bytes.get(start..end))
            .ok_or(WeightsError::Truncated {
                tensor: name.clone(),
                end_bytes,
                len_bytes: bytes.len() as u64,
            })?;
        builder.insert(&name, slice)?;
    }
    Ok((builder.finish()?, header))
}

/// The front of an all-f32 safetensors file (length prefix and JSON table, padded to 8
/// bytes) for tensors written back to back in the given order.
pub fn f32_safetensors_front(tensors: &[(&str, &[usize])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let len = shape.iter().product::<usize>() as u64 * 4;
        header.insert(
            (*name).to_owned(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut json = serde_json::Value::Object(header).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut front = (json.len() as u64).to_le_bytes().to_vec();
    front.extend_from_slice(&json);
    front
}

/// Writes a safetensors file (f32) — used by tests and the random-model generator.
pub fn write_f32_safetensors(
    tensors: &[(String, Vec<usize>, &[f32])],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let table: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|(n, s, _)| (n.as_str(), s.as_slice()))
        .collect();
    out.write_all(&f32_safetensors_front(&table))?;
    for (_, _, data) in tensors {
        let mut buf = Vec::with_capacity(data.len() * 4);
        for v in *data {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        out.write_all(&buf)?;
    }
    Ok(())
}
