//! The browser's own image decoder, for the photos ours refuse by their format (AVIF in
//! every current browser, HEIC where the browser reads it): `createImageBitmap(blob)` in
//! the worker (EXIF / `irot` orientation applied, alpha not premultiplied), drawn on an
//! `OffscreenCanvas` and read back as RGBA, then RGB. The picture then takes our own
//! resize, crop and normalisation, so only the decode is not PIL-exact.
//!
//! The pixel bound is ours (`page::browser_decode`): the size the file declares is checked
//! before the browser decodes it, the decoded size before any canvas or buffer exists.
//! It must not decide when to be used (that is `page::browser_decode::try_browser`).
//! Reference: the HTML standard's `createImageBitmap` and `OffscreenCanvas`.

use image::RgbImage;
use js_sys::Promise;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, ImageBitmap, ImageBitmapOptions, ImageOrientation, OffscreenCanvas,
    OffscreenCanvasRenderingContext2d, PremultiplyAlpha, WorkerGlobalScope,
};

use crate::page::browser_decode::{check_size, declared_size, rgba_to_rgb};
use crate::web::describe_js;

/// Decodes `file` (whose bytes are `bytes`) with the browser, refusing pictures of more
/// than `max_pixels` pixels; the error is the browser's words (or our bound's sentence).
pub(super) async fn decode(file: &Blob, bytes: &[u8], max_pixels: u64) -> Result<RgbImage, String> {
    if let Some((width, height)) = declared_size(bytes) {
        check_size(width, height, max_pixels)?;
    }
    let bitmap = bitmap_of(file).await?;
    let (width, height) = (bitmap.width(), bitmap.height());
    let rgba = check_size(width, height, max_pixels).and_then(|()| rgba_of(&bitmap));
    bitmap.close();
    let rgb = rgba_to_rgb(&rgba?);
    RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| "the browser's pixels do not fill the picture".to_owned())
}

async fn bitmap_of(file: &Blob) -> Result<ImageBitmap, String> {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let options = ImageBitmapOptions::new();
    options.set_image_orientation(ImageOrientation::FromImage);
    options.set_premultiply_alpha(PremultiplyAlpha::None);
    let promise: Promise = scope
        .create_image_bitmap_with_blob_and_image_bitmap_options(file, &options)
        .map_err(|e| describe_js(&e))?;
    let value = JsFuture::from(promise).await.map_err(|e| describe_js(&e))?;
    value
        .dyn_into::<ImageBitmap>()
        .map_err(|_| "the browser answered with something other than a picture".to_owned())
}

fn rgba_of(bitmap: &ImageBitmap) -> Result<Vec<u8>, String> {
    let (width, height) = (bitmap.width(), bitmap.height());
    let canvas = OffscreenCanvas::new(width, height).map_err(|e| describe_js(&e))?;
    let context: OffscreenCanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(|e| describe_js(&e))?
        .ok_or_else(|| "the browser offers no 2D canvas in workers".to_owned())?
        .dyn_into()
        .map_err(|_| "the browser's 2D canvas is not one".to_owned())?;
    context
        .draw_image_with_image_bitmap(bitmap, 0.0, 0.0)
        .map_err(|e| describe_js(&e))?;
    let data = context
        .get_image_data(0.0, 0.0, f64::from(width), f64::from(height))
        .map_err(|e| describe_js(&e))?;
    Ok(data.data().0)
}
