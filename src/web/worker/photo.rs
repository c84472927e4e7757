//! A vision worker's photos: each read, hashed (a known hash is answered `Duplicate`
//! without decoding), decoded at the model's size (large JPEGs at a reduced DCT scale;
//! the EXIF date taken read on the way), thumbnailed, and the batch encoded in one forward pass. A photo that fails yields its
//! own sentence and never stops the batch.
//!
//! It must not touch the DOM or rank. Reference: `model::preprocess`, `model::thumbnail`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::JsValue;
use web_sys::Blob;

use super::engine::{compute, now_ms, Engine, Input};
use super::{WorkerState, THUMB_QUALITY, THUMB_SIDE};
use crate::encode::Embeddings;
use crate::model::preprocess::ModelImage;
use crate::model::thumbnail::thumbnail_jpeg;
use crate::page::browser_decode::{both_failed, try_browser};
use crate::page::protocol::{ItemOut, Photo, WorkTotals};

/// Reads, hashes, decodes, thumbnails and encodes a batch of photos, each step's time
/// added to the worker's totals (`WorkerState::work`).
pub(super) async fn encode(
    state: &Rc<RefCell<WorkerState>>,
    keys: &[u32],
    files: &[Blob],
    thumbnails: bool,
    dedupe: bool,
) -> (Vec<ItemOut>, Vec<Option<ArrayBuffer>>) {
    let mut work = std::mem::take(&mut state.borrow_mut().work);
    let out = encode_timed(state, keys, files, (thumbnails, dedupe), &mut work).await;
    state.borrow_mut().work = work;
    out
}

async fn encode_timed(
    state: &Rc<RefCell<WorkerState>>,
    keys: &[u32],
    files: &[Blob],
    (thumbnails, dedupe): (bool, bool),
    work: &mut WorkTotals,
) -> (Vec<ItemOut>, Vec<Option<ArrayBuffer>>) {
    let mut items = Vec::with_capacity(keys.len());
    let mut thumbs = Vec::with_capacity(keys.len());
    let mut pixels: Vec<f32> = Vec::new();
    let mut to_encode: Vec<usize> = Vec::new();
    for (position, &key) in keys.iter().enumerate() {
        let (result, thumb) = match files.get(position) {
            None => (Err("The file was not received.".to_owned()), None),
            Some(file) => {
                let read = read_photo(state, file, (thumbnails, dedupe), work).await;
                match read {
                    Read::Pixels {
                        hash,
                        px,
                        thumb,
                        browser,
                        taken_ms,
                    } => {
                        pixels.extend_from_slice(&px);
                        to_encode.push(position);
                        let result = Ok(Photo::Embedded {
                            hash,
                            embedding: Vec::new(),
                            thumb: thumb.is_some(),
                            browser,
                            taken_ms,
                        });
                        (result, thumb)
                    }
                    Read::Duplicate(hash) => (Ok(Photo::Duplicate { hash }), None),
                    Read::Failed(e) => (Err(e), None),
                }
            }
        };
        items.push(ItemOut { key, result });
        thumbs.push(thumb);
    }
    if to_encode.is_empty() {
        return (items, thumbs);
    }
    let input = Input::Images {
        pixels: std::mem::take(&mut pixels),
        count: to_encode.len(),
    };
    let t = now_ms();
    let result = compute(state, &input).await;
    work.add("model", now_ms() - t);
    work.add("photos", to_encode.len() as f64);
    fill_embeddings(&result, &to_encode, &mut items, &mut thumbs);
    (items, thumbs)
}

/// Puts each encoded row in its photo's answer, or the encoder's error.
fn fill_embeddings(
    result: &Result<Embeddings, String>,
    to_encode: &[usize],
    items: &mut [ItemOut],
    thumbs: &mut [Option<ArrayBuffer>],
) {
    for (row, &position) in to_encode.iter().enumerate() {
        let Some(item) = items.get_mut(position) else {
            continue;
        };
        match (result, &mut item.result) {
            (Ok(embeddings), Ok(Photo::Embedded { embedding, .. })) => {
                *embedding = embeddings.row(row).to_vec();
            }
            (Err(e), _) => {
                item.result = Err(format!("The photo could not be encoded: {e}"));
                if let Some(t) = thumbs.get_mut(position) {
                    *t = None;
                }
            }
            _ => {}
        }
    }
}

/// One photo read for encoding.
enum Read {
    /// Its pixels as the model reads them, its thumbnail and its EXIF date taken.
    Pixels {
        hash: [u8; 32],
        px: Vec<f32>,
        thumb: Option<ArrayBuffer>,
        /// Decoded by the browser, not by our decoders.
        browser: bool,
        /// When the photo was taken, from its EXIF (ms since the epoch).
        taken_ms: Option<i64>,
    },
    Duplicate([u8; 32]),
    Failed(String),
}

/// Reads, hashes and decodes one photo (and makes its thumbnail). A file whose format our
/// decoders refuse is decoded by the browser (`browser`), then prepared as ours are.
async fn read_photo(
    state: &Rc<RefCell<WorkerState>>,
    file: &Blob,
    (thumbnails, dedupe): (bool, bool),
    work: &mut WorkTotals,
) -> Read {
    let mut t = now_ms();
    let mut lap = |step: &'static str| {
        let now = now_ms();
        work.add(step, now - t);
        t = now;
    };
    let bytes = match crate::web::read_blob(file).await {
        Ok(b) => b,
        Err(e) => return Read::Failed(crate::web::unreadable_sentence(&e, false)),
    };
    lap("read");
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    lap("hash");
    if dedupe && state.borrow().known.contains(&hash) {
        return Read::Duplicate(hash);
    }
    let (decoded, max_pixels) = match &state.borrow().engine {
        Engine::Vision { preprocessor, .. } => (
            preprocessor.decode_for_model(&bytes),
            preprocessor.max_pixels(),
        ),
        _ => return Read::Failed("The photo encoder is not loaded.".into()),
    };
    // Large JPEGs arrive decoded at a reduced DCT scale (still >= 2x the model's input):
    // the thumbnail is made from that smaller image too.
    let (image, browser) = match decoded {
        Ok(image) => (image, false),
        Err(e) if try_browser(&e) => match super::browser::decode(file, &bytes, max_pixels).await {
            Ok(rgb) => (ModelImage::full_scale(rgb), true),
            Err(why) => return Read::Failed(both_failed(&e, &why)),
        },
        Err(e) => return Read::Failed(e.to_string()),
    };
    lap("decode");
    drop(bytes);
    match prepare(state, &image, thumbnails, &mut lap) {
        Ok((px, thumb)) => Read::Pixels {
            hash,
            px,
            thumb,
            browser,
            taken_ms: image.taken_ms,
        },
        Err(e) => Read::Failed(e),
    }
}

/// The model's pixels of a decoded photo, and its thumbnail; `lap` times each step.
fn prepare(
    state: &Rc<RefCell<WorkerState>>,
    image: &ModelImage,
    thumbnails: bool,
    lap: &mut impl FnMut(&'static str),
) -> Result<(Vec<f32>, Option<ArrayBuffer>), String> {
    let s = state.borrow();
    let Engine::Vision {
        preprocessor,
        encoder,
    } = &s.engine
    else {
        return Err("The photo encoder is not loaded.".into());
    };
    let px = preprocessor.model_pixels(image);
    lap("pixels");
    let want: usize = encoder.image_shape().iter().product();
    if px.len() != want {
        return Err(format!(
            "The photo gave {} pixel values where the model reads {want}.",
            px.len()
        ));
    }
    let mut thumb = None;
    if thumbnails {
        match thumbnail_jpeg(&image.rgb, THUMB_SIDE, THUMB_QUALITY) {
            Ok(jpeg) => thumb = Some(Uint8Array::from(jpeg.as_slice()).buffer()),
            Err(e) => web_sys::console::warn_1(&JsValue::from_str(&e.to_string())),
        }
        lap("thumb");
    }
    Ok((px, thumb))
}
