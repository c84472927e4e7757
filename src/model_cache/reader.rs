//! Reading a verified model back from its [`ChunkStore`]: the small JSON files whole, the
//! weights by byte range ([`ChunkFile`]) without ever holding the file whole, and
//! [`load_weights`], which converts one tensor at a time.
//!
//! Only files whose manifest says `verified` are read ([`open_verified`]); this module
//! never writes. Reference: the safetensors format (`SafetensorsHeader`).

use std::ops::Range;

use super::chunker::ChunkLayout;
use super::download::DownloadError;
use super::store::{ChunkStore, FileState};
use sha2::{Digest, Sha256};

use crate::hub::{to_hex, WEIGHTS_FILE};
use crate::model::config::ClipConfig;
use crate::model::weights::{ClipWeights, SafetensorsHeader, Towers, WeightsBuilder, WeightsError};

/// A file stored as chunks, read by byte range.
#[derive(Clone)]
pub struct ChunkFile<S: ChunkStore> {
    store: S,
    layout: ChunkLayout,
    blobs: Vec<S::Blob>,
}

fn bad_weights(message: String) -> DownloadError {
    DownloadError::BadFile {
        file: WEIGHTS_FILE.into(),
        message,
    }
}

fn bad_header(e: WeightsError) -> DownloadError {
    bad_weights(e.to_string())
}

impl<S: ChunkStore> ChunkFile<S> {
    /// `blobs[i]` holds chunk `i` of `layout`.
    pub fn new(store: S, layout: ChunkLayout, blobs: Vec<S::Blob>) -> Self {
        Self {
            store,
            layout,
            blobs,
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.layout.size_bytes
    }

    /// The bytes in `range`, read from the chunks it spans.
    pub async fn read(&self, range: Range<u64>) -> Result<Vec<u8>, DownloadError> {
        if range.end > self.layout.size_bytes || range.start > range.end {
            return Err(bad_weights(format!(
                "bytes {}..{} lie outside the file of {} bytes",
                range.start, range.end, self.layout.size_bytes
            )));
        }
        let covering = self.layout.covering(range.clone());
        // Most tensors lie inside one chunk: its bytes are the answer, not copied again.
        let mut out = if covering.end - covering.start > 1 {
            Vec::with_capacity((range.end - range.start) as usize)
        } else {
            Vec::new()
        };
        for index in covering {
            let chunk = self.layout.range(index);
            let blob = self
                .blobs
                .get(index as usize)
                .ok_or_else(|| bad_weights(format!("chunk {index} is missing")))?;
            let start = range.start.max(chunk.start) - chunk.start;
            let end = range.end.min(chunk.end) - chunk.start;
            let bytes = self
                .store
                .read(blob, start..end)
                .await
                .map_err(|e| bad_weights(format!("it could not be read back: {e}")))?;
            if out.is_empty() {
                out = bytes;
            } else {
                out.extend_from_slice(&bytes);
            }
        }
        if out.len() as u64 != range.end - range.start {
            return Err(bad_weights(format!(
                "reading {} bytes gave {}",
                range.end - range.start,
                out.len()
            )));
        }
        Ok(out)
    }

    /// Reads and checks the safetensors header (every tensor must fit in the file).
    pub async fn header(&self) -> Result<SafetensorsHeader, DownloadError> {
        let size = self.layout.size_bytes;
        let first8 = self.read(0..8.min(size)).await?;
        let total = SafetensorsHeader::total_len(&first8, size).map_err(bad_header)?;
        let front = self.read(0..total).await?;
        SafetensorsHeader::parse(&front, size).map_err(bad_header)
    }
}

/// A verified model, ready to be loaded.
pub struct VerifiedModel<S: ChunkStore> {
    store: S,
    pub config_json: Vec<u8>,
    pub preprocessor_json: Vec<u8>,
    pub weights: ChunkFile<S>,
    /// What the weights are, by content: `sha256:HEX` of the file as the hub published it,
    /// else `chunks:HEX`, the SHA-256 of its chunks' hashes (recorded as they arrived).
    pub weights_identity: String,
}

impl<S: ChunkStore> VerifiedModel<S> {
    /// `tokenizer.json` (3.6 MB for CLIP: read only by those who tokenize).
    pub async fn tokenizer_json(&self) -> Result<Vec<u8>, DownloadError> {
        read_small(&self.store, "tokenizer.json").await
    }
}

/// Reads a verified small file whole.
pub async fn read_small<S: ChunkStore>(store: &S, file: &str) -> Result<Vec<u8>, DownloadError> {
    match store.manifest(file).await? {
        Some(m) if m.state == FileState::Verified => {}
        _ => return Err(DownloadError::NotVerified),
    }
    let chunk = store
        .chunks(file)
        .await?
        .into_iter()
        .next()
        .ok_or(DownloadError::NotVerified)?;
    Ok(store.read(&chunk.blob, 0..chunk.len).await?)
}

/// The model's files, once every one of them is verified.
pub async fn open_verified<S: ChunkStore>(store: &S) -> Result<VerifiedModel<S>, DownloadError> {
    let config_json = read_small(store, "config.json").await?;
    let preprocessor_json = read_small(store, "preprocessor_config.json").await?;
    let manifest = match store.manifest(WEIGHTS_FILE).await? {
        Some(m) if m.state == FileState::Verified => m,
        _ => return Err(DownloadError::NotVerified),
    };
    let layout = ChunkLayout::new(manifest.size_bytes, manifest.chunk_bytes);
    let chunks = store.chunks(WEIGHTS_FILE).await?;
    if chunks.len() as u64 != layout.count()
        || chunks.iter().enumerate().any(|(i, c)| c.index != i as u64)
    {
        return Err(DownloadError::NotVerified);
    }
    let weights_identity = match &manifest.sha256 {
        Some(hex) => format!("sha256:{hex}"),
        None => {
            let mut h = Sha256::new();
            for c in &chunks {
                h.update(c.sha256.as_bytes());
            }
            format!("chunks:{}", to_hex(&h.finalize()))
        }
    };
    Ok(VerifiedModel {
        store: store.clone(),
        config_json,
        preprocessor_json,
        weights_identity,
        weights: ChunkFile::new(
            store.clone(),
            layout,
            chunks.into_iter().map(|c| c.blob).collect(),
        ),
    })
}

/// Loads the weights of `towers` tensor by tensor (one tensor's bytes in memory at a
/// time, converted to f32 at once), reporting the fraction done.
pub async fn load_weights<S: ChunkStore>(
    file: &ChunkFile<S>,
    header: &SafetensorsHeader,
    config: &ClipConfig,
    towers: Towers,
    on_progress: impl FnMut(f64),
) -> Result<ClipWeights, DownloadError> {
    Ok(
        load_weights_timed(file, header, config, towers, on_progress, || 0.0)
            .await?
            .0,
    )
}

/// Where [`load_weights_timed`] spent its time, by the clock it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReadTimes {
    /// Reading the tensors' bytes from the store.
    pub read_ms: f64,
    /// Converting them to checked f32 tensors.
    pub convert_ms: f64,
}

/// [`load_weights`], timing the reads and the conversions apart with `now_ms`.
pub async fn load_weights_timed<S: ChunkStore>(
    file: &ChunkFile<S>,
    header: &SafetensorsHeader,
    config: &ClipConfig,
    towers: Towers,
    mut on_progress: impl FnMut(f64),
    now_ms: impl Fn() -> f64,
) -> Result<(ClipWeights, ReadTimes), DownloadError> {
    let mut builder = WeightsBuilder::for_towers(header, config, towers).map_err(bad_header)?;
    let plan = builder.plan().to_vec();
    let total: u64 = plan.iter().map(|(_, i)| i.size_bytes).sum::<u64>().max(1);
    let mut done = 0u64;
    let mut times = ReadTimes::default();
    for (name, info) in plan {
        let t0 = now_ms();
        let bytes = file
            .read(info.offset_bytes..info.offset_bytes + info.size_bytes)
            .await?;
        let t1 = now_ms();
        builder.insert(&name, &bytes).map_err(bad_header)?;
        times.read_ms += t1 - t0;
        times.convert_ms += now_ms() - t1;
        done += info.size_bytes;
        on_progress(done as f64 / total as f64);
    }
    Ok((builder.finish().map_err(bad_header)?, times))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_cache::store::MemoryChunkStore;
    use crate::model_cache::testing::block_on;

    #[test]
    fn ranges_across_chunks_read_back_exactly_and_outside_the_file_is_an_error(
    ) -> Result<(), String> {
        let data: Vec<u8> = (0..103u8).collect();
        let layout = ChunkLayout::new(103, 10);
        let store = MemoryChunkStore::new("m");
        let blobs = data
            .chunks(10)
            .map(|c| store.blob(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let file = ChunkFile::new(store, layout, blobs);
        for r in [0..103u64, 0..1, 9..11, 5..95, 100..103, 40..40] {
            let got = block_on(file.read(r.clone()))?.map_err(|e| e.to_string())?;
            assert_eq!(got, data[r.start as usize..r.end as usize], "{r:?}");
        }
        assert!(matches!(
            block_on(file.read(100..104))?,
            Err(DownloadError::BadFile { .. })
        ));
        // A missing chunk is said, not read as zeros.
        let short = ChunkFile::new(file.store.clone(), layout, file.blobs[..5].to_vec());
        assert!(matches!(
            block_on(short.read(45..55))?,
            Err(DownloadError::BadFile { message, .. }) if message.contains("chunk 5")
        ));
        Ok(())
    }
}
