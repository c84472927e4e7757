//! The multilingual query encoder's files read from any folder-like store by path and byte
//! range ([`FolderReader`]): a folder on disk (`files::load_query_model_dir`) and the
//! page's model cache in IndexedDB (`model_cache::sentence`) load it through the same
//! steps. The configuration files are read whole; the weights tensor by tensor, each one's
//! bytes held only while it is converted, from `model.safetensors` (its header first) or,
//! where a folder has only PyTorch's `pytorch_model.bin`, through
//! [`torch_bin::read_table_ranged`] (the zip's directory and `data.pkl`, never a whole
//! storage), each tensor then checked against its member's CRC-32. No I/O happens here.

use std::collections::BTreeMap;
use std::future::Future;
use std::ops::Range;

use super::sentence::{
    dense_tensors, transformer_tensors, Layout, SentenceError, SentenceJson, SentenceSpec,
    SentenceTokenizer,
};
use super::torch_bin::{self, TorchTable};
use super::weights::{to_f32, F32Tensor, NamedTensors, SafetensorsHeader, TensorInfo};

/// A folder of files, read by path (`/`-separated, relative to the model folder).
pub trait FolderReader {
    /// The size of `path` in bytes, `None` when the folder has no such file.
    fn size(&self, path: &str) -> impl Future<Output = Result<Option<u64>, String>>;
    /// Exactly the bytes `range` of `path`.
    fn read(&self, path: &str, range: Range<u64>) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// Everything the encoder is built from, checked.
pub struct SentenceParts {
    pub spec: SentenceSpec,
    pub tokenizer: SentenceTokenizer,
    pub transformer: NamedTensors,
    pub dense: Vec<NamedTensors>,
}

/// The weights files a sentence-transformers folder may hold, per module folder, in the
/// order they are looked for.
pub const WEIGHTS_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

fn unreadable(file: &str, message: String) -> SentenceError {
    SentenceError::Weights {
        file: file.into(),
        message: format!("could not be read: {message}"),
    }
}

/// `path` whole, `None` when it is not there.
async fn read_whole<R: FolderReader>(r: &R, path: &str) -> Result<Option<Vec<u8>>, SentenceError> {
    let Some(size) = r.size(path).await.map_err(|e| unreadable(path, e))? else {
        return Ok(None);
    };
    r.read(path, 0..size)
        .await
        .map(Some)
        .map_err(|e| unreadable(path, e))
}

async fn required<R: FolderReader>(r: &R, path: &str) -> Result<Vec<u8>, SentenceError> {
    read_whole(r, path)
        .await?
        .ok_or_else(|| SentenceError::Weights {
            file: path.into(),
            message: "is missing from the model folder".into(),
        })
}

/// The configuration files, parsed and checked.
pub async fn read_spec<R: FolderReader>(r: &R) -> Result<SentenceSpec, SentenceError> {
    let layout = Layout::from_modules_json(&required(r, "modules.json").await?)?;
    let config = required(r, &Layout::file(&layout.transformer, "config.json")).await?;
    let sbert = read_whole(r, "sentence_bert_config.json").await?;
    let pooling = required(r, &Layout::file(&layout.pooling, "config.json")).await?;
    let mut dense = Vec::new();
    for d in &layout.dense {
        dense.push(required(r, &Layout::file(d, "config.json")).await?);
    }
    let files = SentenceJson {
        config: &config,
        sbert: sbert.as_deref(),
        pooling: &pooling,
        dense: dense.iter().map(Vec::as_slice).collect(),
    };
    SentenceSpec::parse(layout, &files)
}

/// The whole encoder's parts: configuration, tokenizer and every tensor it needs.
pub async fn read_parts<R: FolderReader>(r: &R) -> Result<SentenceParts, SentenceError> {
    let spec = read_spec(r).await?;
    let tokenizer_path = Layout::file(&spec.layout.transformer, "tokenizer.json");
    let tokenizer = SentenceTokenizer::from_json(
        &required(r, &tokenizer_path).await?,
        spec.max_seq_length,
        spec.config.vocab_size,
    )?;
    let transformer = read_module(
        r,
        &spec.layout.transformer,
        &transformer_tensors(&spec.config),
    )
    .await?;
    let mut dense = Vec::new();
    for (folder, d) in spec.layout.dense.iter().zip(&spec.dense) {
        dense.push(read_module(r, folder, &dense_tensors(d)).await?);
    }
    Ok(SentenceParts {
        spec,
        tokenizer,
        transformer,
        dense,
    })
}

/// The table of one weights file of `size` bytes, and the checkpoint's CRCs when it is one.
async fn table<R: FolderReader>(
    r: &R,
    path: &str,
    size: u64,
) -> Result<(BTreeMap<String, TensorInfo>, Option<TorchTable>), SentenceError> {
    let read = |range: Range<u64>| r.read(path, range);
    if path.ends_with(".safetensors") {
        let bad = |e: super::weights::WeightsError| SentenceError::Weights {
            file: path.into(),
            message: e.to_string(),
        };
        let first8 = read(0..8.min(size))
            .await
            .map_err(|e| unreadable(path, e))?;
        let total = SafetensorsHeader::total_len(&first8, size).map_err(bad)?;
        let front = read(0..total).await.map_err(|e| unreadable(path, e))?;
        let header = SafetensorsHeader::parse(&front, size).map_err(bad)?;
        return Ok((header.tensors, None));
    }
    let t = torch_bin::read_table_ranged(size, path, read).await?;
    Ok((t.tensors.clone(), Some(t)))
}

/// The `expected` tensors of the module in `folder`, read one at a time. A name may carry
/// a `distilbert.` prefix (checkpoints saved from a model with a head).
pub async fn read_module<R: FolderReader>(
    r: &R,
    folder: &str,
    expected: &[(String, Vec<usize>)],
) -> Result<NamedTensors, SentenceError> {
    let mut found = None;
    for name in WEIGHTS_FILES {
        let path = Layout::file(folder, name);
        if let Some(size) = r.size(&path).await.map_err(|e| unreadable(&path, e))? {
            found = Some((path, size));
            break;
        }
    }
    let (file, size) = found.ok_or_else(|| SentenceError::Weights {
        file: Layout::file(folder, WEIGHTS_FILES[0]),
        message: "is missing from the model folder (nor is there a pytorch_model.bin)".into(),
    })?;
    let file = file.as_str();
    let (tensors, torch) = table(r, file, size).await?;
    let mut out = NamedTensors::new();
    for (name, shape) in expected {
        let (key, info) = tensors
            .get_key_value(name)
            .or_else(|| tensors.get_key_value(&format!("distilbert.{name}")))
            .ok_or_else(|| SentenceError::Missing {
                file: file.into(),
                tensor: name.clone(),
            })?;
        if &info.shape != shape {
            return Err(SentenceError::WrongShape {
                file: file.into(),
                tensor: name.clone(),
                expected: shape.clone(),
                found: info.shape.clone(),
            });
        }
        let range = info.offset_bytes..info.offset_bytes + info.size_bytes;
        let bytes = r.read(file, range).await.map_err(|e| unreadable(file, e))?;
        if let Some(t) = &torch {
            t.check(key, &bytes, file)?;
        }
        let data = to_f32(info.dtype, &bytes);
        if data.iter().any(|v| !v.is_finite()) {
            return Err(SentenceError::NonFinite {
                file: file.into(),
                tensor: name.clone(),
            });
        }
        let tensor = F32Tensor {
            shape: shape.clone(),
            data,
        };
        out.insert(name.clone(), tensor);
    }
    Ok(out)
}
