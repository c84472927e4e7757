//! A multilingual query encoder in the sentence-transformers layout (as
//! sentence-transformers/clip-ViT-B-32-multilingual-v1 publishes it): `modules.json` naming
//! a Transformer (a DistilBERT, `config.json`), a mean Pooling (`1_Pooling/config.json`) and
//! Dense layers (`2_Dense/config.json` + weights), `sentence_bert_config.json`
//! (`max_seq_length`) and a WordPiece `tokenizer.json`; weights as `model.safetensors` or a
//! PyTorch `pytorch_model.bin` (read by `model::torch_bin`, never executed).
//!
//! Only that pipeline is accepted: any other module type, pooling mode or activation is
//! refused with a sentence naming the file and field. Sizes come from the files and are
//! bounded as CLIP's are (`config::limits`). Tokenization follows sentence-transformers'
//! `Transformer.tokenize`: the text is stripped of surrounding whitespace (Python's
//! `str.strip`), then the fast tokenizer adds `[CLS]` … `[SEP]` and truncates to
//! `max_seq_length`. No I/O: callers pass bytes.

use serde::Deserialize;
use tokenizers::Tokenizer;

use super::config::{limits, Activation};
use super::torch_bin::TorchBinError;

/// Why a sentence-transformers folder could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SentenceError {
    #[error("{file} is not valid JSON for this model: {message}")]
    Json { file: String, message: String },
    #[error("{file}: {field} is {value}, which clipseek cannot use: {reason}")]
    Unsupported {
        file: String,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("tokenizer.json could not be read: {message}")]
    Tokenizer { message: String },
    #[error("{file}: {message}")]
    Weights { file: String, message: String },
    #[error(transparent)]
    Torch(#[from] TorchBinError),
    #[error("{file} has no tensor {tensor}, which this model needs")]
    Missing { file: String, tensor: String },
    #[error("{file}: tensor {tensor} has shape {found:?}, the configuration needs {expected:?}")]
    WrongShape {
        file: String,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{file}: tensor {tensor} contains a non-finite value")]
    NonFinite { file: String, tensor: String },
}

fn json<T: serde::de::DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T, SentenceError> {
    serde_json::from_slice(bytes).map_err(|e| SentenceError::Json {
        file: file.into(),
        message: e.to_string(),
    })
}

fn unsupported(
    file: &str,
    field: &'static str,
    value: impl ToString,
    reason: &'static str,
) -> SentenceError {
    SentenceError::Unsupported {
        file: file.into(),
        field,
        value: value.to_string(),
        reason,
    }
}

#[derive(Deserialize)]
struct Module {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

/// What `modules.json` says: where the Transformer, the Pooling and the Dense layers live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Folder of the Transformer relative to the model folder (`""` for the root).
    pub transformer: String,
    pub pooling: String,
    pub dense: Vec<String>,
    /// A `Normalize` module at the end (the embeddings are normalised either way).
    pub normalize: bool,
}

const MODULES: &str = "modules.json";

impl Layout {
    pub fn from_modules_json(bytes: &[u8]) -> Result<Self, SentenceError> {
        let modules: Vec<Module> = json(MODULES, bytes)?;
        let kind = |m: &Module| m.kind.rsplit('.').next().unwrap_or_default().to_owned();
        let mut it = modules.iter().peekable();
        let mut next_of = |want: &str| it.next_if(|m| kind(m) == want).map(|m| m.path.clone());
        let transformer = next_of("Transformer");
        let pooling = next_of("Pooling");
        let (Some(transformer), Some(pooling)) = (transformer, pooling) else {
            return Err(unsupported(
                MODULES,
                "the module list",
                modules.iter().map(kind).collect::<Vec<_>>().join(", "),
                "it must start with a Transformer and a Pooling module",
            ));
        };
        let mut dense = Vec::new();
        while let Some(p) = next_of("Dense") {
            dense.push(p);
        }
        let normalize = next_of("Normalize").is_some();
        if let Some(extra) = it.next() {
            return Err(unsupported(
                MODULES,
                "a module",
                &extra.kind,
                "only Transformer, Pooling, Dense and Normalize modules are supported",
            ));
        }
        for path in std::iter::once(&transformer)
            .chain(std::iter::once(&pooling))
            .chain(&dense)
        {
            if path
                .split('/')
                .any(|part| part == ".." || part.starts_with('.'))
                || path.starts_with('/')
            {
                return Err(unsupported(
                    MODULES,
                    "a module path",
                    path,
                    "module folders must lie inside the model folder",
                ));
            }
        }
        Ok(Self {
            transformer,
            pooling,
            dense,
            normalize,
        })
    }

    /// `file` inside the folder of a module (`""` is the model folder).
    pub fn file(folder: &str, file: &str) -> String {
        if folder.is_empty() {
            file.to_owned()
        } else {
            format!("{}/{file}", folder.trim_end_matches('/'))
        }
    }
}

/// The DistilBERT's `config.json` (transformers' `DistilBertConfig`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DistilBertConfig {
    #[serde(default)]
    pub model_type: String,
    pub vocab_size: usize,
    pub dim: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub hidden_dim: usize,
    pub max_position_embeddings: usize,
    pub activation: Activation,
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

/// DistilBERT's layer norms use a fixed epsilon (transformers' `modeling_distilbert`).
pub const LAYER_NORM_EPS: f64 = 1e-12;

#[derive(Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: usize,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

/// One Dense module (`<folder>/config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DenseConfig {
    pub in_features: usize,
    pub out_features: usize,
    #[serde(default = "yes")]
    pub bias: bool,
    #[serde(default = "identity")]
    pub activation_function: String,
}

fn yes() -> bool {
    true
}

fn identity() -> String {
    "torch.nn.modules.linear.Identity".into()
}

#[derive(Deserialize)]
struct SbertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

/// The JSON files of a sentence-transformers folder, read by the caller after [`Layout`].
pub struct SentenceJson<'a> {
    pub config: &'a [u8],
    /// `sentence_bert_config.json`, if the folder has one.
    pub sbert: Option<&'a [u8]>,
    pub pooling: &'a [u8],
    /// One `config.json` per Dense module, in order.
    pub dense: Vec<&'a [u8]>,
}

/// Everything known before any weight is read.
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceSpec {
    pub layout: Layout,
    pub config: DistilBertConfig,
    pub max_seq_length: usize,
    pub dense: Vec<DenseConfig>,
}

impl SentenceSpec {
    pub fn parse(layout: Layout, files: &SentenceJson<'_>) -> Result<Self, SentenceError> {
        let config_file = Layout::file(&layout.transformer, "config.json");
        let config: DistilBertConfig = json(&config_file, files.config)?;
        check_config(&config_file, &config)?;
        let sbert: Option<SbertConfig> = files
            .sbert
            .map(|b| json("sentence_bert_config.json", b))
            .transpose()?;
        if sbert.as_ref().is_some_and(|s| s.do_lower_case) {
            return Err(unsupported(
                "sentence_bert_config.json",
                "do_lower_case",
                true,
                "lower-casing outside the tokenizer is not supported",
            ));
        }
        let max_seq_length = sbert
            .and_then(|s| s.max_seq_length)
            .unwrap_or(config.max_position_embeddings);
        if max_seq_length < 2 || max_seq_length > config.max_position_embeddings {
            return Err(unsupported(
                "sentence_bert_config.json",
                "max_seq_length",
                max_seq_length,
                "it must hold [CLS] and [SEP] and fit the position embeddings",
            ));
        }
        check_pooling(&layout, files.pooling, config.dim)?;
        let dense = check_dense(&layout, &files.dense, config.dim)?;
        Ok(Self {
            layout,
            config,
            max_seq_length,
            dense,
        })
    }

    /// The embedding size: the last Dense layer's output (or the transformer's width).
    pub fn embedding_dim(&self) -> usize {
        self.dense
            .last()
            .map_or(self.config.dim, |d| d.out_features)
    }
}

fn check_pooling(layout: &Layout, bytes: &[u8], width: usize) -> Result<(), SentenceError> {
    let pooling_file = Layout::file(&layout.pooling, "config.json");
    let pooling: PoolingConfig = json(&pooling_file, bytes)?;
    let others = [
        pooling.pooling_mode_cls_token,
        pooling.pooling_mode_max_tokens,
        pooling.pooling_mode_mean_sqrt_len_tokens,
        pooling.pooling_mode_weightedmean_tokens,
        pooling.pooling_mode_lasttoken,
    ];
    if !pooling.pooling_mode_mean_tokens || others.iter().any(|m| *m) {
        return Err(unsupported(
            &pooling_file,
            "the pooling mode",
            "not mean alone",
            "only mean pooling over the tokens is supported",
        ));
    }
    if pooling.word_embedding_dimension != width {
        return Err(unsupported(
            &pooling_file,
            "word_embedding_dimension",
            pooling.word_embedding_dimension,
            "it must equal the transformer's dim",
        ));
    }
    Ok(())
}

fn check_config(file: &str, c: &DistilBertConfig) -> Result<(), SentenceError> {
    if !c.model_type.is_empty() && c.model_type != "distilbert" {
        return Err(unsupported(
            file,
            "model_type",
            &c.model_type,
            "only DistilBERT query encoders are supported",
        ));
    }
    if c.sinusoidal_pos_embds {
        return Err(unsupported(
            file,
            "sinusoidal_pos_embds",
            true,
            "only learned position embeddings are supported",
        ));
    }
    let bounds = [
        ("vocab_size", c.vocab_size, limits::MAX_VOCAB),
        ("dim", c.dim, limits::MAX_WIDTH),
        ("n_layers", c.n_layers, limits::MAX_LAYERS),
        ("n_heads", c.n_heads, limits::MAX_HEADS),
        ("hidden_dim", c.hidden_dim, limits::MAX_INTERMEDIATE),
        (
            "max_position_embeddings",
            c.max_position_embeddings,
            limits::MAX_TEXT_POSITIONS,
        ),
    ];
    for (field, value, max) in bounds {
        if value == 0 || value > max {
            return Err(unsupported(
                file,
                field,
                value,
                "it is zero or beyond any such model",
            ));
        }
    }
    if !c.dim.is_multiple_of(c.n_heads) {
        return Err(unsupported(
            file,
            "n_heads",
            c.n_heads,
            "dim must be a multiple of it",
        ));
    }
    Ok(())
}

fn check_dense(
    layout: &Layout,
    files: &[&[u8]],
    width: usize,
) -> Result<Vec<DenseConfig>, SentenceError> {
    if files.len() != layout.dense.len() {
        return Err(unsupported(
            MODULES,
            "the Dense modules",
            layout.dense.len(),
            "each needs its config.json",
        ));
    }
    let mut out = Vec::new();
    let mut width = width;
    for (folder, bytes) in layout.dense.iter().zip(files) {
        let file = Layout::file(folder, "config.json");
        let d: DenseConfig = json(&file, bytes)?;
        if d.in_features != width {
            return Err(unsupported(
                &file,
                "in_features",
                d.in_features,
                "it must equal the width of what comes before",
            ));
        }
        if d.out_features == 0 || d.out_features > limits::MAX_WIDTH {
            return Err(unsupported(
                &file,
                "out_features",
                d.out_features,
                "it is zero or beyond any such model",
            ));
        }
        if !d.activation_function.ends_with(".Identity") {
            return Err(unsupported(
                &file,
                "activation_function",
                &d.activation_function,
                "only the identity is supported",
            ));
        }
        width = d.out_features;
        out.push(d);
    }
    Ok(out)
}

/// The tensors the Transformer must hold (DistilBertModel's state dict names and shapes).
pub fn transformer_tensors(c: &DistilBertConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f) = (c.dim, c.hidden_dim);
    let mut v = vec![
        (
            "embeddings.word_embeddings.weight".to_owned(),
            vec![c.vocab_size, d],
        ),
        (
            "embeddings.position_embeddings.weight".to_owned(),
            vec![c.max_position_embeddings, d],
        ),
        ("embeddings.LayerNorm.weight".to_owned(), vec![d]),
        ("embeddings.LayerNorm.bias".to_owned(), vec![d]),
    ];
    for i in 0..c.n_layers {
        let p = format!("transformer.layer.{i}");
        for lin in ["q_lin", "k_lin", "v_lin", "out_lin"] {
            v.push((format!("{p}.attention.{lin}.weight"), vec![d, d]));
            v.push((format!("{p}.attention.{lin}.bias"), vec![d]));
        }
        for ln in ["sa_layer_norm", "output_layer_norm"] {
            v.push((format!("{p}.{ln}.weight"), vec![d]));
            v.push((format!("{p}.{ln}.bias"), vec![d]));
        }
        v.push((format!("{p}.ffn.lin1.weight"), vec![f, d]));
        v.push((format!("{p}.ffn.lin1.bias"), vec![f]));
        v.push((format!("{p}.ffn.lin2.weight"), vec![d, f]));
        v.push((format!("{p}.ffn.lin2.bias"), vec![d]));
    }
    v
}

/// The tensors of one Dense module (`linear.weight`, and `linear.bias` with a bias).
pub fn dense_tensors(d: &DenseConfig) -> Vec<(String, Vec<usize>)> {
    let mut v = vec![(
        "linear.weight".to_owned(),
        vec![d.out_features, d.in_features],
    )];
    if d.bias {
        v.push(("linear.bias".to_owned(), vec![d.out_features]));
    }
    v
}

/// The query tokenizer: WordPiece from `tokenizer.json`, framed and truncated as
/// sentence-transformers does.
pub struct SentenceTokenizer {
    inner: Tokenizer,
    vocab_size: usize,
}

impl SentenceTokenizer {
    pub fn from_json(
        bytes: &[u8],
        max_seq_length: usize,
        vocab_size: usize,
    ) -> Result<Self, SentenceError> {
        let err = |e: tokenizers::Error| SentenceError::Tokenizer {
            message: e.to_string(),
        };
        let mut inner = Tokenizer::from_bytes(bytes).map_err(err)?;
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: max_seq_length,
                ..Default::default()
            }))
            .map_err(err)?;
        inner.with_padding(None);
        let largest = inner.get_vocab_size(true);
        if largest > vocab_size {
            return Err(SentenceError::Tokenizer {
                message: format!(
                    "it has {largest} tokens but the model's vocabulary holds {vocab_size}"
                ),
            });
        }
        Ok(Self { inner, vocab_size })
    }

    /// The ids of one query, `[CLS]` … `[SEP]`, at most `max_seq_length` of them.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, SentenceError> {
        let text = text.trim_matches(python_space);
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| SentenceError::Tokenizer {
                message: e.to_string(),
            })?;
        let ids = enc.get_ids().to_vec();
        if let Some(bad) = ids.iter().find(|id| **id as usize >= self.vocab_size) {
            return Err(SentenceError::Tokenizer {
                message: format!("token id {bad} is beyond the vocabulary"),
            });
        }
        Ok(ids)
    }
}

/// Python's `str.isspace` (what `str.strip` removes): Unicode White_Space plus the
/// information separators U+001C..U+001F.
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
