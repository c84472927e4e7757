//! Native model loading from a folder in the Hugging Face layout (`config.json`,
//! `preprocessor_config.json`, `tokenizer.json`, `model.safetensors` or, for a revision
//! without it, `pytorch_model.bin`).
//!
//! The weights file is read tensor by tensor with seeks into one reused buffer, never
//! as a second whole-file copy. Not compiled for wasm32: the browser reads the same files
//! from IndexedDB in `web`.

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::clip::{model_id, Clip, ClipError, ModelJson, ModelSpec};
use crate::encode::sentence::SentenceModel;
use crate::hub::{PYTORCH_FILE, WEIGHTS_FILE};
use crate::model::config::ClipConfig;
use crate::model::sentence::SentenceError;
use crate::model::sentence_load::{self, FolderReader};
use crate::model::torch_bin::{self, TorchBinError, TorchTable};
use crate::model::weights::{
    ClipWeights, SafetensorsHeader, TensorInfo, WeightsBuilder, WeightsError,
};
use crate::zip;

/// Why a model folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelDirError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Checkpoint {
        path: PathBuf,
        source: TorchBinError,
    },
    #[error("{path}: {source}")]
    Model { path: PathBuf, source: ClipError },
}

fn read(path: &Path) -> Result<Vec<u8>, ModelDirError> {
    std::fs::read(path).map_err(|source| ModelDirError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Loads and checks a model folder: weights from `model.safetensors`, else from PyTorch's
/// `pytorch_model.bin` (its table read by seeks through [`torch_bin::read_table_ranged`],
/// each tensor CRC-checked as it is read).
pub fn load_model_dir(dir: &Path) -> Result<Clip, ModelDirError> {
    let config = read(&dir.join("config.json"))?;
    let preprocessor = read(&dir.join("preprocessor_config.json"))?;
    let tokenizer = read(&dir.join("tokenizer.json"))?;
    let model_err = |source: ClipError| ModelDirError::Model {
        path: dir.to_owned(),
        source,
    };
    let spec = ModelSpec::parse(&ModelJson {
        config: &config,
        preprocessor: &preprocessor,
        tokenizer: &tokenizer,
    })
    .map_err(model_err)?;
    let mut weights = WeightsFile::open(dir)?;
    let mut builder =
        WeightsBuilder::new(&weights.header, &spec.config).map_err(|e| weights.error(e))?;
    let mut buf = Vec::new();
    for (name, info) in builder.plan().to_vec() {
        weights.read_into(&info, &mut buf)?;
        if let Some(table) = &weights.torch {
            table
                .check(&name, &buf, PYTORCH_FILE)
                .map_err(|e| weights.checkpoint_error(e))?;
        }
        builder.insert(&name, &buf).map_err(|e| weights.error(e))?;
    }
    let finished = builder.finish().map_err(|e| weights.error(e));
    let id = model_id(&spec.config, &config, &weights.header);
    Clip::new(spec, finished?, id).map_err(model_err)
}

/// A model folder's weights file, open for reads by seek, with its table of tensors.
struct WeightsFile {
    path: PathBuf,
    file: File,
    /// The safetensors header, or the checkpoint's table in its form (the `json` then
    /// lists each tensor's name, dtype, shape, place and CRC-32, for the model's id).
    header: SafetensorsHeader,
    torch: Option<TorchTable>,
}

impl WeightsFile {
    fn open(dir: &Path) -> Result<Self, ModelDirError> {
        let st_path = dir.join(WEIGHTS_FILE);
        let bin_path = dir.join(PYTORCH_FILE);
        let path = if !st_path.exists() && bin_path.exists() {
            bin_path
        } else {
            st_path
        };
        let io = |source: std::io::Error| ModelDirError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let len_bytes = file.metadata().map_err(io)?.len();
        let mut this = Self {
            header: SafetensorsHeader {
                tensors: Default::default(),
                json: String::new(),
            },
            torch: None,
            path: path.clone(),
            file,
        };
        if path.ends_with(PYTORCH_FILE) {
            let read = |r: Range<u64>| {
                std::future::ready(read_range(&this.file, r).map_err(|e| e.to_string()))
            };
            let table =
                zip::now_or_never(torch_bin::read_table_ranged(len_bytes, PYTORCH_FILE, read))
                    .unwrap_or_else(|| {
                        Err(TorchBinError::NotZip {
                            file: PYTORCH_FILE.into(),
                        })
                    })
                    .map_err(|e| this.checkpoint_error(e))?;
            this.header.json = table
                .tensors
                .iter()
                .map(|(name, i)| {
                    let crc = table.crcs.get(name).copied().unwrap_or_default();
                    format!(
                        "{name} {:?} {:?} {} {} {crc:08x}\n",
                        i.dtype, i.shape, i.offset_bytes, i.size_bytes
                    )
                })
                .collect();
            this.header.tensors = table.tensors.clone();
            this.torch = Some(table);
        } else {
            let first8 = read_range(&this.file, 0..8.min(len_bytes)).map_err(io)?;
            let total =
                SafetensorsHeader::total_len(&first8, len_bytes).map_err(|e| this.error(e))?;
            let front = read_range(&this.file, 0..total).map_err(io)?;
            this.header = SafetensorsHeader::parse(&front, len_bytes).map_err(|e| this.error(e))?;
        }
        Ok(this)
    }

    fn error(&self, e: WeightsError) -> ModelDirError {
        ModelDirError::Model {
            path: self.path.clone(),
            source: ClipError::Weights(e),
        }
    }

    fn checkpoint_error(&self, source: TorchBinError) -> ModelDirError {
        ModelDirError::Checkpoint {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads one tensor's bytes into `buf` (reused across tensors).
    fn read_into(&mut self, info: &TensorInfo, buf: &mut Vec<u8>) -> Result<(), ModelDirError> {
        buf.resize(info.size_bytes as usize, 0);
        let io = |source: std::io::Error| ModelDirError::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .seek(SeekFrom::Start(info.offset_bytes))
            .map_err(io)?;
        self.file.read_exact(buf).map_err(io)
    }
}

/// Bytes `range` of `file`, exactly.
fn read_range(mut file: &File, range: Range<u64>) -> std::io::Result<Vec<u8>> {
    let mut out = vec![0u8; range.end.saturating_sub(range.start) as usize];
    file.seek(SeekFrom::Start(range.start))?;
    file.read_exact(&mut out)?;
    Ok(out)
}

/// The synthetic model described by `spec_dir/spec.json` and `spec_dir/config.json`,
/// generated in memory: its configuration and checked weights (both towers), for the GPU
/// tests and benchmarks that need the full-size ViT-B/32 without a model folder.
pub fn synthetic_weights(
    spec_dir: &Path,
) -> Result<(ClipConfig, ClipWeights), Box<dyn std::error::Error + Send + Sync>> {
    use crate::model::synthetic::{write_safetensors, Spec};
    let config = ClipConfig::from_json(&std::fs::read(spec_dir.join("config.json"))?)?;
    let spec = Spec::from_json(&std::fs::read(spec_dir.join("spec.json"))?)?;
    let mut bytes = Vec::new();
    write_safetensors(&spec, &mut bytes)?;
    let (weights, _) = crate::model::weights::from_bytes(&bytes, &config)?;
    Ok((config, weights))
}

/// Writes the full-size synthetic model described by `spec_dir/spec.json` (plus its
/// `config.json` and `preprocessor_config.json`, and the given `tokenizer.json`) into
/// `out_dir`: the slow tests and the benchmarks use it instead of a downloaded checkpoint.
pub fn write_synthetic_model(
    spec_dir: &Path,
    tokenizer_json: &Path,
    out_dir: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use crate::model::synthetic::{write_safetensors, Spec};
    let spec = Spec::from_json(&std::fs::read(spec_dir.join("spec.json"))?)?;
    for f in ["config.json", "preprocessor_config.json"] {
        std::fs::copy(spec_dir.join(f), out_dir.join(f))?;
    }
    std::fs::copy(tokenizer_json, out_dir.join("tokenizer.json"))?;
    let file = File::create(out_dir.join("model.safetensors"))?;
    let mut out = std::io::BufWriter::new(file);
    write_safetensors(&spec, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// Why a query-model folder (sentence-transformers layout) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum QueryModelDirError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir}: {source}")]
    Model { dir: PathBuf, source: SentenceError },
    #[error("{dir}: {source}")]
    Encode {
        dir: PathBuf,
        source: crate::encode::EncodeError,
    },
}

/// A model folder on disk as a [`FolderReader`] (reads that never wait).
struct DirReader<'a>(&'a Path);

impl FolderReader for DirReader<'_> {
    fn size(&self, path: &str) -> impl Future<Output = Result<Option<u64>, String>> {
        let got = match std::fs::metadata(self.0.join(path)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        };
        std::future::ready(got)
    }

    fn read(&self, path: &str, range: Range<u64>) -> impl Future<Output = Result<Vec<u8>, String>> {
        let got = File::open(self.0.join(path)).and_then(|f| read_range(&f, range));
        std::future::ready(got.map_err(|e| e.to_string()))
    }
}

/// Loads a multilingual query encoder in the sentence-transformers layout
/// (`modules.json`, …): weights from `model.safetensors`, else `pytorch_model.bin`, per
/// module folder, tensor by tensor ([`sentence_load`]).
pub fn load_query_model_dir(dir: &Path) -> Result<SentenceModel, QueryModelDirError> {
    let parts = zip::now_or_never(sentence_load::read_parts(&DirReader(dir)))
        .ok_or_else(|| QueryModelDirError::Model {
            dir: dir.to_owned(),
            source: SentenceError::Weights {
                file: dir.display().to_string(),
                message: "a read waited".into(),
            },
        })?
        .map_err(|source| QueryModelDirError::Model {
            dir: dir.to_owned(),
            source,
        })?;
    SentenceModel::from_parts(parts).map_err(|source| QueryModelDirError::Encode {
        dir: dir.to_owned(),
        source,
    })
}
