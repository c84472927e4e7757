//! The CPU engine's packed 8-bit weights kept beside the model they were made from: a
//! file of the model's own [`ChunkStore`] (named by `PackKey::file_name`, one per tower and
//! kernel), so that removing the model removes them too (`ChunkStore::remove_model`), and
//! written only while the model's weights are verified (`ChunkStore::put_derived`), so
//! they never outlive a removal that raced with the write.
//!
//! [`load_packed`] reads a file back only when its manifest and header name the same
//! [`PackKey`] (the weights' identity, the kernel and its layout version, the options) and
//! every part passes its length and checksum; [`save_packed`] writes one as a single blob
//! in one transaction (all or nothing), the engine's parts taken one at a time. Anything
//! absent, made for another key, or damaged is the caller's cue to build the engine from
//! the model again (and save it over). Reference: `encode::packed` (the bytes).

use super::chunker::ChunkLayout;
use super::download::DownloadError;
use super::reader::ChunkFile;
use super::store::{ChunkStore, FileManifest, FileState, StoreError, StoredChunk};
use crate::encode::cpu::CpuEncoder;
use crate::encode::packed::{
    header_range, PackError, PackKey, PackTable, PackWriter, Part, FOOTER_BYTES,
};
use crate::hub::WEIGHTS_FILE;

/// Why packed weights could not be read or kept (said on the console; the engine is
/// built from the model instead).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PackedError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Read(#[from] DownloadError),
    #[error("{0}")]
    Pack(#[from] PackError),
    #[error("the packed weights are stored as {chunks} chunk(s) of {bytes} bytes, not one of {expected}")]
    Layout {
        chunks: usize,
        bytes: u64,
        expected: u64,
    },
}

/// The packed parts of `key`, or `None` when none are kept for it (absent, or made for
/// another key: the weights changed, another kernel layout, other options).
pub async fn load_packed<S: ChunkStore>(
    store: &S,
    key: &PackKey,
) -> Result<Option<Vec<(String, Part)>>, PackedError> {
    let file = key.file_name();
    let Some(manifest) = store.manifest(&file).await? else {
        return Ok(None);
    };
    if manifest.state != FileState::Verified || manifest.etag.as_deref() != Some(&key.tag()) {
        return Ok(None);
    }
    let size = manifest.size_bytes;
    let chunks = store.chunks(&file).await?;
    let bytes: u64 = chunks.iter().map(|c| c.len).sum();
    let blob = match chunks.as_slice() {
        [only] if only.index == 0 && only.len == size && size >= FOOTER_BYTES => only.blob.clone(),
        _ => {
            return Err(PackedError::Layout {
                chunks: chunks.len(),
                bytes,
                expected: size,
            })
        }
    };
    let reader = ChunkFile::new(store.clone(), ChunkLayout::new(size, size), vec![blob]);
    let footer = reader.read(size - FOOTER_BYTES..size).await?;
    let (range, check) = header_range(&footer, size)?;
    let payload_end = range.start;
    let table = PackTable::parse(&reader.read(range).await?, check, key, payload_end)?;
    let mut parts = Vec::new();
    for (i, (name, range)) in table.ranges().enumerate() {
        let bytes = reader.read(range).await?;
        parts.push((name.to_owned(), table.decode(i, &bytes)?));
    }
    Ok(Some(parts))
}

/// Packs `encoder` for `key` and keeps it beside the model. Returns the bytes written, or
/// `None` when the model's weights are no longer verified (removed meanwhile): nothing is
/// written then.
pub async fn save_packed<S: ChunkStore>(
    store: &S,
    key: &PackKey,
    encoder: &CpuEncoder,
) -> Result<Option<u64>, PackedError> {
    let file = key.file_name();
    let mut writer = PackWriter::new(key, encoder.parts());
    let mut len = 0u64;
    let blob = store.blob_of_parts(&mut writer.by_ref().inspect(|p| len += p.len() as u64))?;
    if let Some(e) = writer.error() {
        return Err(e.clone().into());
    }
    let chunk = StoredChunk {
        index: 0,
        blob,
        // The parts carry their own checksums (`encode::packed`).
        sha256: String::new(),
        len,
    };
    let manifest = FileManifest {
        url: format!("clipseek:{file}"),
        size_bytes: len,
        etag: Some(key.tag()),
        sha256: None,
        chunk_bytes: len.max(1),
        state: FileState::Verified,
        refetched: false,
    };
    let wrote = store
        .put_derived(&file, &chunk, &manifest, WEIGHTS_FILE)
        .await?;
    Ok(wrote.then_some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::cpu::{CpuPrecision, Packed, QuantOptions};
    use crate::encode::packed::check64;
    use crate::encode::quant::ActivationBits;
    use crate::encode::Encoder;
    use crate::model::config::ClipConfig;
    use crate::model::tokenizer::TokenIds;
    use crate::model::weights::{from_bytes_for, Towers};
    use crate::model_cache::store::MemoryChunkStore;
    use crate::model_cache::testing::block_on;

    type R = Result<(), Box<dyn std::error::Error>>;

    fn tiny() -> Result<(ClipConfig, Vec<u8>), Box<dyn std::error::Error>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-clip");
        let config = ClipConfig::from_json(&std::fs::read(dir.join("config.json"))?)?;
        Ok((config, std::fs::read(dir.join("model.safetensors"))?))
    }

    fn engine(
        config: &ClipConfig,
        bytes: &[u8],
        towers: Towers,
    ) -> Result<CpuEncoder, Box<dyn std::error::Error>> {
        let (weights, _) = from_bytes_for(bytes, config, towers)?;
        Ok(CpuEncoder::new_with(config, weights, CpuPrecision::Int8)?)
    }

    fn key(towers: Towers) -> PackKey {
        PackKey {
            weights: "sha256:00ff".into(),
            towers,
            options: QuantOptions::default(),
        }
    }

    /// A store holding a verified weights manifest, as a downloaded model has.
    fn store_with_model() -> Result<MemoryChunkStore, Box<dyn std::error::Error>> {
        let s = MemoryChunkStore::new("hub|test/tiny|main");
        let m = FileManifest {
            url: "u".into(),
            size_bytes: 1,
            etag: None,
            sha256: None,
            chunk_bytes: 1,
            state: FileState::Verified,
            refetched: false,
        };
        block_on(s.put_manifest(WEIGHTS_FILE, &m))??;
        Ok(s)
    }

    fn pixels(config: &ClipConfig) -> Vec<f32> {
        let v = &config.vision_config;
        let n = 2 * v.num_channels * v.image_size * v.image_size;
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
            .collect()
    }

    fn texts() -> Vec<TokenIds> {
        vec![
            TokenIds {
                ids: [49406, 320, 1125, 539, 49407]
                    .into_iter()
                    .chain([49407; 72])
                    .collect(),
                eos_position: 4,
            },
            TokenIds {
                ids: [49406, 2368, 49407]
                    .into_iter()
                    .chain([49407; 74])
                    .collect(),
                eos_position: 2,
            },
        ]
    }

    #[test]
    fn a_packed_engine_reads_back_and_computes_the_same_numbers() -> R {
        let (config, bytes) = tiny()?;
        let s = store_with_model()?;
        for towers in [Towers::Vision, Towers::Text] {
            let built = engine(&config, &bytes, towers)?;
            let k = key(towers);
            let written = block_on(save_packed(&s, &k, &built))??;
            assert!(
                written.is_some_and(|n| n > FOOTER_BYTES),
                "{towers:?}: {written:?}"
            );
            let parts = block_on(load_packed(&s, &k))??.ok_or("nothing read back")?;
            let back = CpuEncoder::from_packed(&config, towers, k.options, Packed::new(parts))?;
            assert_eq!(back.precision(), CpuPrecision::Int8);
            if towers == Towers::Vision {
                let p = pixels(&config);
                assert_eq!(
                    built.encode_images(&p, 2)?.data,
                    back.encode_images(&p, 2)?.data
                );
            } else {
                assert_eq!(
                    built.encode_texts(&texts())?.data,
                    back.encode_texts(&texts())?.data
                );
            }
        }
        // One file per tower (and kernel), all of them gone with the model.
        let files = [
            key(Towers::Vision).file_name(),
            key(Towers::Text).file_name(),
        ];
        assert_ne!(files[0], files[1]);
        block_on(s.remove_model())??;
        for f in &files {
            assert!(block_on(s.manifest(f))??.is_none());
            assert!(block_on(s.chunks(f))??.is_empty());
        }
        Ok(())
    }

    #[test]
    fn building_in_8_bits_directly_equals_quantising_the_f32_engine() -> R {
        let (config, bytes) = tiny()?;
        let direct = engine(&config, &bytes, Towers::Vision)?;
        let (weights, _) = from_bytes_for(&bytes, &config, Towers::Vision)?;
        let later = CpuEncoder::new(&config, weights)?.quantized(QuantOptions::default())?;
        let p = pixels(&config);
        assert_eq!(
            direct.encode_images(&p, 2)?.data,
            later.encode_images(&p, 2)?.data
        );
        Ok(())
    }

    #[test]
    fn the_token_embedding_is_rounded_to_f16_alike_and_packed_in_half_the_bytes() -> R {
        let (config, bytes) = tiny()?;
        let direct = engine(&config, &bytes, Towers::Text)?;
        let (weights, _) = from_bytes_for(&bytes, &config, Towers::Text)?;
        let later = CpuEncoder::new(&config, weights)?.quantized(QuantOptions::default())?;
        assert_eq!(
            direct.encode_texts(&texts())?.data,
            later.encode_texts(&texts())?.data
        );
        let wide = QuantOptions {
            token_embedding_f16: false,
            ..QuantOptions::default()
        };
        let (weights, _) = from_bytes_for(&bytes, &config, Towers::Text)?;
        let f32_table = CpuEncoder::new(&config, weights)?.quantized(wide)?;
        let s = store_with_model()?;
        let narrow_bytes = block_on(save_packed(&s, &key(Towers::Text), &direct))??;
        let parts = block_on(load_packed(&s, &key(Towers::Text)))??.ok_or("nothing read")?;
        let back = CpuEncoder::from_packed(
            &config,
            Towers::Text,
            QuantOptions::default(),
            Packed::new(parts),
        )?;
        let wide_key = PackKey {
            options: wide,
            ..key(Towers::Text)
        };
        let wide_bytes = block_on(save_packed(&s, &wide_key, &f32_table))??;
        let t = &config.text_config;
        let table = (t.vocab_size * t.hidden_size) as u64;
        let saved = wide_bytes.ok_or("not kept")? - narrow_bytes.ok_or("not kept")?;
        assert!(
            saved.abs_diff(2 * table) < 1024,
            "saved {saved} bytes, the f16 table saves {}",
            2 * table
        );
        // Rounded, the texts move a little; the packed copy computes the same as its source.
        let (a, b) = (
            direct.encode_texts(&texts())?.data,
            f32_table.encode_texts(&texts())?.data,
        );
        assert_ne!(a, b);
        assert_eq!(back.encode_texts(&texts())?.data, a);
        Ok(())
    }

    #[test]
    fn packed_weights_of_another_key_are_not_read() -> R {
        let (config, bytes) = tiny()?;
        let s = store_with_model()?;
        let built = engine(&config, &bytes, Towers::Vision)?;
        let k = key(Towers::Vision);
        block_on(save_packed(&s, &k, &built))??;
        let other_weights = PackKey {
            weights: "sha256:0100".into(),
            ..k.clone()
        };
        let other_options = PackKey {
            options: QuantOptions {
                activations: ActivationBits::Eight,
                ..k.options
            },
            ..k.clone()
        };
        for other in [other_weights, other_options] {
            assert_eq!(
                other.file_name(),
                k.file_name(),
                "a new key replaces the file"
            );
            assert_ne!(other.tag(), k.tag());
            assert!(block_on(load_packed(&s, &other))??.is_none());
        }
        // Nothing kept: nothing read.
        assert!(block_on(load_packed(&s, &key(Towers::Text)))??.is_none());
        assert!(k.tag().contains(crate::encode::quant::KERNEL));
        assert!(k.tag().contains(&format!(
            "layout {}",
            crate::encode::quant::kernels::LAYOUT_VERSION
        )));
        Ok(())
    }

    /// The stored blob with `edit` applied (same length kept by the caller or not).
    fn tamper(s: &MemoryChunkStore, k: &PackKey, edit: impl Fn(&mut Vec<u8>)) -> R {
        let file = k.file_name();
        let chunk = block_on(s.chunks(&file))??.pop().ok_or("no chunk")?;
        let mut bytes = chunk.blob.to_vec();
        edit(&mut bytes);
        let len = bytes.len() as u64;
        let mut m = block_on(s.manifest(&file))??.ok_or("no manifest")?;
        m.size_bytes = len;
        let c = StoredChunk {
            blob: s.blob(&bytes)?,
            len,
            ..chunk
        };
        block_on(s.put_whole(&file, &c, &m))??;
        Ok(())
    }

    #[test]
    fn damaged_or_truncated_packed_weights_are_refused() -> R {
        let (config, bytes) = tiny()?;
        let built = engine(&config, &bytes, Towers::Vision)?;
        let k = key(Towers::Vision);
        type Edit = Box<dyn Fn(&mut Vec<u8>)>;
        let edits: [(&str, Edit); 4] = [
            (
                "a flipped bit in a part",
                Box::new(|b: &mut Vec<u8>| b[100] ^= 4),
            ),
            (
                "a flipped bit in the header",
                Box::new(|b: &mut Vec<u8>| {
                    let at = b.len() - 40;
                    b[at] ^= 1;
                }),
            ),
            (
                "cut short",
                Box::new(|b: &mut Vec<u8>| b.truncate(b.len() / 2)),
            ),
            ("no footer", Box::new(|b: &mut Vec<u8>| b.truncate(10))),
        ];
        for (what, edit) in edits {
            let s = store_with_model()?;
            block_on(save_packed(&s, &k, &built))??;
            tamper(&s, &k, edit)?;
            let got = block_on(load_packed(&s, &k))?;
            assert!(
                got.is_err(),
                "{what}: read back as {:?}",
                got.map(|p| p.map(|p| p.len()))
            );
        }
        Ok(())
    }

    #[test]
    fn nothing_is_kept_once_the_model_is_gone() -> R {
        let (config, bytes) = tiny()?;
        let built = engine(&config, &bytes, Towers::Text)?;
        let s = MemoryChunkStore::new("removed");
        let k = key(Towers::Text);
        assert_eq!(block_on(save_packed(&s, &k, &built))??, None);
        assert!(block_on(s.manifest(&k.file_name()))??.is_none());
        Ok(())
    }

    #[test]
    fn the_checksum_sees_every_byte_and_the_length() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let base = check64(&data);
        for at in [0, 31, 32, 500, 990, 999] {
            let mut d = data.clone();
            d[at] ^= 0x10;
            assert_ne!(check64(&d), base, "byte {at}");
        }
        assert_ne!(check64(&data[..999]), base);
        let zeros = check64(&[0u8; 64]);
        assert_ne!(zeros, check64(&[0u8; 65]));
        assert_ne!(check64(&[]), check64(&[0]));
    }
}
