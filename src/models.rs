//! The models clipseek offers, as plain data: hub repository, pinned revision, the files
//! to fetch and their download sizes. The page's model picker and `clipseek models` read
//! this list; nothing here does I/O.
//!
//! Revisions: each one is a revision that publishes `model.safetensors`, found on the hub
//! (PR refs and commits as the hub lists them), or `main` where no such pin could be
//! confirmed from here (see each entry's `revision_note`). Sizes are the hub's listing (to
//! about 0.1 MB) and are shown to people before a download; the page's download checks the
//! real size in the hub's answer, so a wrong figure here changes a label, never a file.

/// One file of a model as the hub serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubFile {
    pub path: &'static str,
    /// The hub's listed size, to about 0.1 MB.
    pub approx_bytes: u64,
}

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A CLIP model: it indexes photos and encodes queries; each has its own index.
    Clip,
    /// A query encoder distilled into the text space of the CLIP model keyed `for_model`:
    /// it ranks that model's image embeddings, so it needs no index of its own.
    QueryEncoder { for_model: &'static str },
}

/// One entry of the picker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelEntry {
    /// Short stable key (URL parameter, storage names).
    pub key: &'static str,
    /// `owner/name` on the hub.
    pub repo: &'static str,
    /// Decoded (`refs/pr/15`); encoded only in URLs.
    pub revision: &'static str,
    pub revision_note: &'static str,
    /// What the picker says.
    pub label: &'static str,
    pub role: Role,
    /// Every file to fetch, JSON first, weights last.
    pub files: &'static [HubFile],
}

impl ModelEntry {
    /// Bytes to download for this model.
    pub fn download_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.approx_bytes).sum()
    }

    /// The weights file (the largest).
    pub fn weights(&self) -> Option<&HubFile> {
        self.files.iter().max_by_key(|f| f.approx_bytes)
    }
}

const MB: u64 = 1_000_000;
const KB: u64 = 1_000;

const CLIP_JSON: [HubFile; 3] = [
    HubFile {
        path: "config.json",
        approx_bytes: 4_200,
    },
    HubFile {
        path: "preprocessor_config.json",
        approx_bytes: 316,
    },
    HubFile {
        path: "tokenizer.json",
        approx_bytes: 2_220 * KB,
    },
];

const fn clip_files(weights_bytes: u64) -> [HubFile; 4] {
    [
        CLIP_JSON[0],
        CLIP_JSON[1],
        CLIP_JSON[2],
        HubFile {
            path: "model.safetensors",
            approx_bytes: weights_bytes,
        },
    ]
}

const OPENAI_B32_FILES: [HubFile; 4] = clip_files(605_200 * KB);
const LAION_B32_FILES: [HubFile; 4] = clip_files(605_200 * KB);
const OPENAI_B16_FILES: [HubFile; 4] = clip_files(598_600 * KB);
const MULTILINGUAL_FILES: [HubFile; 10] = [
    HubFile {
        path: "modules.json",
        approx_bytes: 341,
    },
    HubFile {
        path: "sentence_bert_config.json",
        approx_bytes: 53,
    },
    HubFile {
        path: "config.json",
        approx_bytes: 572,
    },
    HubFile {
        path: "tokenizer.json",
        approx_bytes: 1_960 * KB,
    },
    HubFile {
        path: "1_Pooling/config.json",
        approx_bytes: 190,
    },
    HubFile {
        path: "2_Dense/config.json",
        approx_bytes: 116,
    },
    HubFile {
        path: "2_Dense/model.safetensors",
        approx_bytes: 1_573 * KB,
    },
    HubFile {
        path: "special_tokens_map.json",
        approx_bytes: 112,
    },
    HubFile {
        path: "tokenizer_config.json",
        approx_bytes: 371,
    },
    HubFile {
        path: "model.safetensors",
        approx_bytes: 539 * MB,
    },
];

/// The default model's key.
pub const DEFAULT_KEY: &str = "openai-b32";

/// Every model offered, the default first.
pub const MODELS: [ModelEntry; 4] = [
    ModelEntry {
        key: DEFAULT_KEY,
        repo: "openai/clip-vit-base-patch32",
        revision: "refs/pr/15",
        revision_note: "main has only pytorch_model.bin; refs/pr/15 adds model.safetensors \
                        (the revision candle's CLIP example pins)",
        label: "CLIP ViT-B/32 (OpenAI)",
        role: Role::Clip,
        files: &OPENAI_B32_FILES,
    },
    ModelEntry {
        key: "laion-b32",
        repo: "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        revision: "main",
        revision_note: "no revision publishing model.safetensors could be confirmed from here; \
                        main is kept and a missing model.safetensors is said as such",
        label: "CLIP ViT-B/32 (LAION-2B): same cost, better retrieval",
        role: Role::Clip,
        files: &LAION_B32_FILES,
    },
    ModelEntry {
        key: "openai-b16",
        repo: "openai/clip-vit-base-patch16",
        revision: "main",
        revision_note: "no revision publishing model.safetensors could be confirmed from here; \
                        main is kept and a missing model.safetensors is said as such",
        label: "CLIP ViT-B/16 (OpenAI): finer detail, about 4x the compute per photo",
        role: Role::Clip,
        files: &OPENAI_B16_FILES,
    },
    ModelEntry {
        key: "multilingual-b32",
        repo: "sentence-transformers/clip-ViT-B-32-multilingual-v1",
        revision: "238402c12a26c6cb9d823b90bc8a4d32a27e434c",
        revision_note: "the first commit listing model.safetensors and 2_Dense/model.safetensors \
                        (PR #7); earlier ones hold only pytorch_model.bin, which \
                        model::torch_bin also reads",
        label: "Search in other languages (50+), for CLIP ViT-B/32 (OpenAI)",
        role: Role::QueryEncoder {
            for_model: DEFAULT_KEY,
        },
        files: &MULTILINGUAL_FILES,
    },
];

/// The entry with this key or hub repository.
pub fn find(key_or_repo: &str) -> Option<&'static ModelEntry> {
    MODELS
        .iter()
        .find(|m| m.key == key_or_repo || m.repo == key_or_repo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::ClipConfig;
    use crate::model::weights::expected_tensors;

    /// f32 bytes of a CLIPModel with the given config.json, by our own tensor list.
    fn clip_f32_bytes(config: &str) -> u64 {
        let Ok(c) = ClipConfig::from_json(config.as_bytes()) else {
            panic!("config {config}");
        };
        let values: usize = expected_tensors(&c)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        values as u64 * 4
    }

    #[test]
    fn keys_and_repos_are_unique_and_the_default_comes_first() {
        assert_eq!(MODELS[0].key, DEFAULT_KEY);
        assert_eq!(MODELS[0].repo, crate::hub::DEFAULT_MODEL);
        assert_eq!(MODELS[0].revision, crate::hub::DEFAULT_REVISION);
        for (i, a) in MODELS.iter().enumerate() {
            for b in &MODELS[i + 1..] {
                assert!(a.key != b.key && a.repo != b.repo, "{} / {}", a.key, b.key);
            }
            assert_eq!(find(a.key), Some(a));
            assert_eq!(find(a.repo), Some(a));
            assert!(!a.revision.is_empty() && !a.revision_note.is_empty());
        }
        assert_eq!(find("nope"), None);
    }

    #[test]
    fn every_clip_model_fetches_the_hub_layout_and_query_encoders_name_theirs() {
        for m in &MODELS {
            let paths: Vec<&str> = m.files.iter().map(|f| f.path).collect();
            match m.role {
                Role::Clip => {
                    let mut want = crate::hub::JSON_FILES.to_vec();
                    want.push(crate::hub::WEIGHTS_FILE);
                    assert_eq!(paths, want, "{}", m.key);
                }
                Role::QueryEncoder { for_model } => {
                    assert_eq!(find(for_model).map(|t| t.role), Some(Role::Clip));
                    for f in [
                        "modules.json",
                        "config.json",
                        "tokenizer.json",
                        "1_Pooling/config.json",
                        "2_Dense/config.json",
                        "2_Dense/model.safetensors",
                        "model.safetensors",
                    ] {
                        assert!(paths.contains(&f), "{} lacks {f}", m.key);
                    }
                }
            }
            assert_eq!(
                m.weights().map(|w| w.path),
                Some("model.safetensors"),
                "{}",
                m.key
            );
        }
    }

    /// The listed weight sizes agree with the parameters of each architecture (f32): the
    /// figures shown before a download are not off by a model.
    #[test]
    fn listed_sizes_match_the_architectures() {
        let b32 = clip_f32_bytes("{}");
        let b16 = clip_f32_bytes(r#"{"vision_config": {"patch_size": 16}}"#);
        // DistilBERT-multilingual: 119,547 x 768 words, 512 positions, 6 blocks, 2 norms.
        let block = 4 * (768 * 768 + 768) + 2 * 3072 * 768 + 3072 + 768 + 4 * 768;
        let bert = (4 * (119_547 * 768 + 512 * 768 + 2 * 768 + 6 * block)) as u64;
        let dense: u64 = 4 * 512 * 768;
        let weights = |key: &str, file: &str| {
            find(key)
                .and_then(|m| m.files.iter().find(|f| f.path == file))
                .map_or(0, |f| f.approx_bytes)
        };
        for (key, file, want) in [
            ("openai-b32", "model.safetensors", b32),
            ("laion-b32", "model.safetensors", b32),
            ("openai-b16", "model.safetensors", b16),
            ("multilingual-b32", "model.safetensors", bert),
            ("multilingual-b32", "2_Dense/model.safetensors", dense),
        ] {
            let got = weights(key, file);
            let off = (got as f64 - want as f64).abs() / want as f64;
            assert!(off < 2e-3, "{key} {file}: listed {got}, parameters {want}");
        }
        let total: Vec<u64> = MODELS.iter().map(ModelEntry::download_bytes).collect();
        assert!(
            total.iter().all(|t| *t > 500 * MB && *t < 620 * MB),
            "{total:?}"
        );
    }
}
