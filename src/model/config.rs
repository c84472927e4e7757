//! Model configuration: the Hugging Face `config.json` of a `CLIPModel` and its
//! `preprocessor_config.json` (`CLIPImageProcessor`).
//!
//! Every size comes from these files, never from constants, so any CLIP checkpoint in the
//! HF layout works (ViT-B/32, B/16, L/14, LAION, tiny test models). Missing fields take the
//! defaults of transformers' `CLIPTextConfig` / `CLIPVisionConfig` / `CLIPImageProcessor`,
//! which are the openai/clip-vit-base-patch32 values. No I/O happens here: callers pass bytes.

use serde::Deserialize;

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file} is not valid JSON for a CLIP model: {message}")]
    Json { file: &'static str, message: String },
    #[error("{file}: {field} is {value}, more than the {max} any CLIP model needs; the file is refused before anything is allocated from it")]
    TooLarge {
        file: &'static str,
        field: &'static str,
        value: usize,
        max: usize,
    },
    #[error(
        "config.json describes a model of {parameters} parameters, more than the {max} we can hold"
    )]
    TooManyParameters { parameters: u64, max: u64 },
    #[error("{file}: {field} is {value}, which cannot work: {reason}")]
    Invalid {
        file: &'static str,
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// The activation inside the MLP blocks (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`: the original OpenAI checkpoints.
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU: LAION / open_clip checkpoints.
    #[serde(rename = "gelu")]
    Gelu,
}

/// The text tower (`text_config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl Default for TextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

/// The vision tower (`vision_config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: Activation::QuickGelu,
            layer_norm_eps: 1e-5,
        }
    }
}

impl VisionConfig {
    /// Patches along one side of the (square) input.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens in the vision sequence: the class token plus one per patch.
    pub fn num_positions(&self) -> usize {
        self.patches_per_side() * self.patches_per_side() + 1
    }
}

/// `config.json` of a `CLIPModel`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipConfig {
    #[serde(default)]
    pub text_config: TextConfig,
    #[serde(default)]
    pub vision_config: VisionConfig,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
}

fn default_projection_dim() -> usize {
    512
}

/// Upper bounds on every size a configuration declares, checked before anything is
/// allocated from them. Each is well above the largest public CLIP (ViT-bigG/14: 48 vision
/// layers of width 1664, 32 text layers of width 1280, MLP 8192, 257 positions at 224 px
/// and patch 14; multilingual text towers have vocabularies of 250 002); a file past them
/// is a typo or an attack, and is refused with a sentence.
pub mod limits {
    /// Transformer layers in one tower.
    pub const MAX_LAYERS: usize = 256;
    /// `hidden_size` and `projection_dim`.
    pub const MAX_WIDTH: usize = 16_384;
    /// `intermediate_size`.
    pub const MAX_INTERMEDIATE: usize = 65_536;
    /// `num_attention_heads`.
    pub const MAX_HEADS: usize = 256;
    /// Text positions (`max_position_embeddings`); CLIP uses 77, Long-CLIP 248.
    pub const MAX_TEXT_POSITIONS: usize = 4_096;
    /// `vocab_size`.
    pub const MAX_VOCAB: usize = 1 << 20;
    /// `image_size`, and the resize and crop sizes of `preprocessor_config.json`.
    pub const MAX_IMAGE_SIZE: usize = 4_096;
    /// Vision tokens (patches plus the class token).
    pub const MAX_VISION_POSITIONS: usize = 16_385;
    /// Parameters of the whole model (f32: 4 bytes each), ViT-bigG/14 has 2.5 billion.
    pub const MAX_PARAMETERS: u64 = 4_000_000_000;
}

const CONFIG: &str = "config.json";
const PREPROCESSOR: &str = "preprocessor_config.json";

fn invalid(
    file: &'static str,
    field: &'static str,
    value: impl ToString,
    reason: &'static str,
) -> ConfigError {
    ConfigError::Invalid {
        file,
        field,
        value: value.to_string(),
        reason,
    }
}

impl ClipConfig {
    /// Parses and checks `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let config: ClipConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json {
            file: CONFIG,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.text_config;
        let v = &self.vision_config;
        let positive = [
            ("text_config.vocab_size", t.vocab_size),
            ("text_config.hidden_size", t.hidden_size),
            ("text_config.intermediate_size", t.intermediate_size),
            ("text_config.num_attention_heads", t.num_attention_heads),
            (
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
            ),
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.intermediate_size", v.intermediate_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.num_channels", v.num_channels),
            ("vision_config.image_size", v.image_size),
            ("vision_config.patch_size", v.patch_size),
            ("projection_dim", self.projection_dim),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(invalid(CONFIG, field, value, "it must be at least 1"));
            }
        }
        use limits::*;
        let bounded = [
            ("text_config.vocab_size", t.vocab_size, MAX_VOCAB),
            ("text_config.hidden_size", t.hidden_size, MAX_WIDTH),
            (
                "text_config.intermediate_size",
                t.intermediate_size,
                MAX_INTERMEDIATE,
            ),
            (
                "text_config.num_hidden_layers",
                t.num_hidden_layers,
                MAX_LAYERS,
            ),
            (
                "text_config.num_attention_heads",
                t.num_attention_heads,
                MAX_HEADS,
            ),
            (
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
                MAX_TEXT_POSITIONS,
            ),
            ("vision_config.hidden_size", v.hidden_size, MAX_WIDTH),
            (
                "vision_config.intermediate_size",
                v.intermediate_size,
                MAX_INTERMEDIATE,
            ),
            (
                "vision_config.num_hidden_layers",
                v.num_hidden_layers,
                MAX_LAYERS,
            ),
            (
                "vision_config.num_attention_heads",
                v.num_attention_heads,
                MAX_HEADS,
            ),
            ("vision_config.image_size", v.image_size, MAX_IMAGE_SIZE),
            ("vision_config.patch_size", v.patch_size, MAX_IMAGE_SIZE),
            ("projection_dim", self.projection_dim, MAX_WIDTH),
        ];
        for (field, value, max) in bounded {
            if value > max {
                return Err(ConfigError::TooLarge {
                    file: CONFIG,
                    field,
                    value,
                    max,
                });
            }
        }
        if v.num_channels != 3 {
            return Err(invalid(
                CONFIG,
                "vision_config.num_channels",
                v.num_channels,
                "the preprocessor makes RGB images, so it must be 3",
            ));
        }
        for (field, eps) in [
            ("text_config.layer_norm_eps", t.layer_norm_eps),
            ("vision_config.layer_norm_eps", v.layer_norm_eps),
        ] {
            if !(eps.is_finite() && eps > 0.0 && eps < 1.0) {
                return Err(invalid(
                    CONFIG,
                    field,
                    eps,
                    "it must be a small positive number",
                ));
            }
        }
        if !t.hidden_size.is_multiple_of(t.num_attention_heads) {
            return Err(invalid(
                CONFIG,
                "text_config.num_attention_heads",
                t.num_attention_heads,
                "it must divide text_config.hidden_size",
            ));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(invalid(
                CONFIG,
                "vision_config.num_attention_heads",
                v.num_attention_heads,
                "it must divide vision_config.hidden_size",
            ));
        }
        if !v.image_size.is_multiple_of(v.patch_size) {
            return Err(invalid(
                CONFIG,
                "vision_config.patch_size",
                v.patch_size,
                "it must divide vision_config.image_size",
            ));
        }
        if t.max_position_embeddings < 2 {
            return Err(invalid(
                CONFIG,
                "text_config.max_position_embeddings",
                t.max_position_embeddings,
                "the start and end tokens need two positions",
            ));
        }
        // Each size is bounded above, so none of these products can overflow a u64.
        let positions = v.num_positions();
        if positions > MAX_VISION_POSITIONS {
            return Err(ConfigError::TooLarge {
                file: CONFIG,
                field: "vision_config.image_size / patch_size",
                value: positions,
                max: MAX_VISION_POSITIONS,
            });
        }
        let parameters = self.parameter_count();
        if parameters > MAX_PARAMETERS {
            return Err(ConfigError::TooManyParameters {
                parameters,
                max: MAX_PARAMETERS,
            });
        }
        Ok(())
    }

    /// The parameters `weights::expected_tensors` lists for this configuration, computed
    /// from the sizes alone; only called once every size is bounded, so nothing overflows.
    fn parameter_count(&self) -> u64 {
        let t = &self.text_config;
        let v = &self.vision_config;
        let n = |x: usize| x as u64;
        let layer = |hidden: u64, inner: u64| {
            // q, k, v, out (weights and biases), two layer norms, fc1 and fc2.
            4 * (hidden * hidden + hidden) + 4 * hidden + 2 * hidden * inner + inner + hidden
        };
        let text = n(t.vocab_size) * n(t.hidden_size)
            + n(t.max_position_embeddings) * n(t.hidden_size)
            + n(t.num_hidden_layers) * layer(n(t.hidden_size), n(t.intermediate_size))
            + 2 * n(t.hidden_size)
            + n(self.projection_dim) * n(t.hidden_size);
        let vision = n(v.hidden_size)
            + n(v.hidden_size) * n(v.num_channels) * n(v.patch_size) * n(v.patch_size)
            + n(v.num_positions()) * n(v.hidden_size)
            + 4 * n(v.hidden_size)
            + n(v.num_hidden_layers) * layer(n(v.hidden_size), n(v.intermediate_size))
            + n(self.projection_dim) * n(v.hidden_size);
        text.saturating_add(vision)
    }
}

/// `size` and `crop_size` come either as a number or as an object.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Square(u32),
    Map {
        shortest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
    },
}

#[derive(Debug, Clone, Deserialize)]
struct RawPreprocess {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<SizeSpec>,
    #[serde(default = "bicubic")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "default_rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<Vec<f32>>,
    image_std: Option<Vec<f32>>,
    #[serde(default = "yes")]
    do_convert_rgb: bool,
}

fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}

/// PIL's resampling filter numbers as they appear in `resample`.
pub const PIL_BICUBIC: u32 = 3;

/// What `CLIPImageProcessor` does to an image, from `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreprocessConfig {
    pub do_resize: bool,
    /// The shortest edge is resized to this (aspect ratio kept).
    pub shortest_edge: u32,
    /// PIL filter number; only bicubic (3) is supported.
    pub resample: u32,
    pub do_center_crop: bool,
    pub crop_height: u32,
    pub crop_width: u32,
    pub do_rescale: bool,
    /// Kept in f64: transformers multiplies by the Python float.
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub do_convert_rgb: bool,
}

// The mean and std are openai's published values, written as they appear in their config.
#[allow(clippy::excessive_precision)]
impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            do_resize: true,
            shortest_edge: 224,
            resample: PIL_BICUBIC,
            do_center_crop: true,
            crop_height: 224,
            crop_width: 224,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
            image_std: [0.268_629_54, 0.261_302_58, 0.275_777_11],
            do_convert_rgb: true,
        }
    }
}

fn three(
    field: &'static str,
    v: Option<Vec<f32>>,
    default: [f32; 3],
) -> Result<[f32; 3], ConfigError> {
    match v {
        None => Ok(default),
        Some(v) => match v.as_slice() {
            [a, b, c] => Ok([*a, *b, *c]),
            [a] => Ok([*a, *a, *a]),
            _ => Err(invalid(
                PREPROCESSOR,
                field,
                format!("{v:?}"),
                "it needs one value per RGB channel",
            )),
        },
    }
}

impl PreprocessConfig {
    /// Parses and checks `preprocessor_config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let raw: RawPreprocess = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json {
            file: PREPROCESSOR,
            message: e.to_string(),
        })?;
        let d = PreprocessConfig::default();
        let shortest_edge =
            match raw.size {
                None => d.shortest_edge,
                Some(SizeSpec::Square(s)) => s,
                Some(SizeSpec::Map {
                    shortest_edge: Some(s),
                    ..
                }) => s,
                Some(SizeSpec::Map { height, width, .. }) => return Err(invalid(
                    PREPROCESSOR,
                    "size",
                    format!("{height:?}x{width:?}"),
                    "CLIP resizes by the shortest edge; a fixed height and width is not supported",
                )),
            };
        let (crop_height, crop_width) = match raw.crop_size {
            None => (d.crop_height, d.crop_width),
            Some(SizeSpec::Square(s)) => (s, s),
            Some(SizeSpec::Map {
                height: Some(h),
                width: Some(w),
                ..
            }) => (h, w),
            Some(SizeSpec::Map { shortest_edge, .. }) => {
                let s = shortest_edge.unwrap_or(d.crop_height);
                (s, s)
            }
        };
        let config = PreprocessConfig {
            do_resize: raw.do_resize,
            shortest_edge,
            resample: raw.resample,
            do_center_crop: raw.do_center_crop,
            crop_height,
            crop_width,
            do_rescale: raw.do_rescale,
            rescale_factor: raw.rescale_factor,
            do_normalize: raw.do_normalize,
            image_mean: three("image_mean", raw.image_mean, d.image_mean)?,
            image_std: three("image_std", raw.image_std, d.image_std)?,
            do_convert_rgb: raw.do_convert_rgb,
        };
        if config.resample != PIL_BICUBIC {
            return Err(invalid(
                PREPROCESSOR,
                "resample",
                config.resample,
                "only bicubic (3), which every CLIP checkpoint uses, is supported",
            ));
        }
        if config.shortest_edge == 0 || config.crop_height == 0 || config.crop_width == 0 {
            return Err(invalid(
                PREPROCESSOR,
                "size",
                format!("{shortest_edge} / {crop_height}x{crop_width}"),
                "sizes must be at least 1",
            ));
        }
        let max = limits::MAX_IMAGE_SIZE;
        for (field, value) in [
            ("size", config.shortest_edge),
            ("crop_size", config.crop_height),
            ("crop_size", config.crop_width),
        ] {
            if value as usize > max {
                return Err(ConfigError::TooLarge {
                    file: PREPROCESSOR,
                    field,
                    value: value as usize,
                    max,
                });
            }
        }
        if !(config.rescale_factor.is_finite() && config.rescale_factor > 0.0) {
            return Err(invalid(
                PREPROCESSOR,
                "rescale_factor",
                config.rescale_factor,
                "it must be finite and positive",
            ));
        }
        if config.image_mean.iter().any(|m| !m.is_finite()) {
            return Err(invalid(
                PREPROCESSOR,
                "image_mean",
                format!("{:?}", config.image_mean),
                "a mean must be finite",
            ));
        }
        if config.image_std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return Err(invalid(
                PREPROCESSOR,
                "image_std",
                format!("{:?}", config.image_std),
                "a standard deviation must be finite and non-zero",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_means_vit_b32() -> Result<(), ConfigError> {
        let c = ClipConfig::from_json(b"{}")?;
        assert_eq!(c.vision_config.num_positions(), 50);
        assert_eq!(c.text_config.vocab_size, 49408);
        assert_eq!(c.projection_dim, 512);
        Ok(())
    }

    #[test]
    fn gelu_and_sizes_are_read() -> Result<(), ConfigError> {
        let c = ClipConfig::from_json(
            br#"{"projection_dim": 24, "text_config": {"hidden_size": 32, "hidden_act": "gelu", "num_attention_heads": 4},
                 "vision_config": {"hidden_size": 32, "image_size": 64, "patch_size": 8, "num_attention_heads": 4, "extra": 1}}"#,
        )?;
        assert_eq!(c.text_config.hidden_act, Activation::Gelu);
        assert_eq!(c.vision_config.hidden_act, Activation::QuickGelu);
        assert_eq!(c.vision_config.num_positions(), 65);
        Ok(())
    }

    #[test]
    fn bad_configs_name_the_field() {
        let e = ClipConfig::from_json(
            br#"{"vision_config": {"hidden_size": 30, "num_attention_heads": 4}}"#,
        );
        assert!(matches!(
            e,
            Err(ConfigError::Invalid {
                field: "vision_config.num_attention_heads",
                ..
            })
        ));
        let e = ClipConfig::from_json(br#"{"text_config": {"hidden_act": "relu"}}"#);
        assert!(matches!(e, Err(ConfigError::Json { .. })));
        assert!(ClipConfig::from_json(b"not json").is_err());
    }

    #[test]
    fn preprocessor_forms() -> Result<(), ConfigError> {
        let p = PreprocessConfig::from_json(
            br#"{"size": {"shortest_edge": 64}, "crop_size": {"height": 64, "width": 64}}"#,
        )?;
        assert_eq!((p.shortest_edge, p.crop_height, p.crop_width), (64, 64, 64));
        let p = PreprocessConfig::from_json(br#"{"size": 224, "crop_size": 224}"#)?;
        assert_eq!(p, PreprocessConfig::default());
        assert!(PreprocessConfig::from_json(br#"{"resample": 2}"#).is_err());
        assert!(PreprocessConfig::from_json(br#"{"image_std": [0, 1, 1]}"#).is_err());
        Ok(())
    }
}
