//! Resampling: the semantics of Pillow's `ImagingResample` for 8-bit RGB images with the
//! bicubic filter (a = -0.5), written from its documented behaviour (two separable passes,
//! 22-bit fixed-point coefficients, a uint8 image between the passes, Pillow 13's pass
//! order). Bit-exact with Pillow 13.0 on the checksum cases in [`super`]'s tests; it must
//! not trade that exactness for speed. Pure computation on in-memory pixels.

use image::RgbImage;

/// Fixed-point precision of the filter coefficients (Pillow's `PRECISION_BITS`).
pub(super) const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights of its window.
pub(super) struct Coefficients {
    /// (first input index, number of taps) per output index.
    pub(super) bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output index (unused tail zero).
    pub(super) weights: Vec<i32>,
    pub(super) ksize: usize,
}

impl Coefficients {
    /// The input range `[first, end)` that the window's outputs read.
    fn input_span(&self) -> (usize, usize) {
        let first = self.bounds.first().map_or(0, |b| b.0);
        let end = self.bounds.iter().map(|b| b.0 + b.1).max().unwrap_or(first);
        (first, end)
    }
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for box `[0, in_size)` resized
/// to `out_size`, for the `count` output indices from `first` on (each output index's
/// weights depend on nothing else, so a window of the output is exact).
#[cfg(test)]
pub(super) fn coefficients(in_size: u32, out_size: u64, first: u64, count: usize) -> Coefficients {
    // Pillow computes `in1 - in0` in single precision (the box is `float[4]`).
    box_coefficients(in_size, f64::from(in_size as f32), out_size, first, count)
}

/// [`coefficients`] for the box `[0, extent)` of an input of `in_size` pixels (Pillow's
/// `resize(box=...)`): `extent` may be fractional, and below `in_size` when the last input
/// pixel only partly belongs to the picture (a reduced-scale JPEG decode); taps stay inside
/// `[0, in_size)`.
fn box_coefficients(
    in_size: u32,
    extent: f64,
    out_size: u64,
    first: u64,
    count: usize,
) -> Coefficients {
    const SUPPORT: f64 = 2.0;
    let scale = extent / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let one = f64::from(1u32 << PRECISION_BITS);
    let mut bounds = Vec::with_capacity(count);
    let mut weights = vec![0i32; count * ksize];
    let mut window = vec![0.0f64; ksize];
    for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
        let center = ((first + i as u64) as f64 + 0.5) * scale;
        // `(int)` truncates toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
        let taps = usize::try_from(xmax - xmin).unwrap_or(0).min(ksize);
        let mut total = 0.0;
        for (x, w) in window.iter_mut().take(taps).enumerate() {
            *w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            total += *w;
        }
        for (k, w) in row.iter_mut().zip(window.iter().take(taps)) {
            let w = if total != 0.0 { w / total } else { *w };
            *k = if w < 0.0 {
                (-0.5 + w * one) as i32
            } else {
                (0.5 + w * one) as i32
            };
        }
        bounds.push((usize::try_from(xmin).unwrap_or(0), taps));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes like `PIL.Image.resize((width, height), Image.BICUBIC)` on an RGB image.
/// See [`resize_window`].
pub fn resize_bicubic(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    resize_window(
        src,
        (u64::from(width), u64::from(height)),
        (0, 0),
        (width as usize, height as usize),
    )
}

/// The `size` window at `origin` of `src` resized to `out` (width, height) like
/// `PIL.Image.resize(out, Image.BICUBIC)`, computing only the pixels inside the window
/// (so a centre crop of a very long resized image costs no more than the crop).
///
/// Two separable passes, each rounding to 8 bits, each skipped when its dimension does not
/// change. Pillow 13 runs the horizontal pass first (over only the rows the vertical pass
/// reads) unless the height shrinks by more than twice as many pixels as the width does,
/// in which case the vertical pass runs first. The order changes the result, so it is
/// mirrored exactly (checked against Pillow 13.0 on thousands of random sizes).
/// The window must lie inside the resized image.
pub fn resize_window(
    src: &RgbImage,
    out: (u64, u64),
    origin: (u64, u64),
    size: (usize, usize),
) -> RgbImage {
    let extent = (
        f64::from(src.width() as f32),
        f64::from(src.height() as f32),
    );
    resize_box_window(src, extent, out, origin, size)
}

/// [`resize_window`] of the box `(0, 0, extent.0, extent.1)` of `src` instead of all of it
/// (Pillow's `resize(out, BICUBIC, box)`): for a reduced-scale decode whose last row and
/// column stand for less than a whole pixel of the picture, `extent` is the picture's
/// size at that scale, `full size / reduction`, so the resized geometry is the full-scale
/// one. With `extent` equal to `src`'s size this is [`resize_window`] exactly.
pub(super) fn resize_box_window(
    src: &RgbImage,
    extent: (f64, f64),
    out: (u64, u64),
    origin: (u64, u64),
    size: (usize, usize),
) -> RgbImage {
    let (in_w, in_h) = (src.width(), src.height());
    let ((out_w, out_h), (x0, y0), (w, h)) = (out, origin, size);
    let blank = || RgbImage::new(w as u32, h as u32);
    let fits =
        |o: u64, s: usize, total: u64| o.checked_add(s as u64).is_some_and(|end| end <= total);
    if in_w == 0 || in_h == 0 || w == 0 || h == 0 || !fits(x0, w, out_w) || !fits(y0, h, out_h) {
        return blank();
    }
    let whole = |e: f64, n: u32| e == f64::from(n as f32);
    let need_h = out_w != u64::from(in_w) || !whole(extent.0, in_w);
    let need_v = out_h != u64::from(in_h) || !whole(extent.1, in_h);
    let vertical_first = out_h < u64::from(in_h)
        && 2 * (i128::from(in_w) - i128::from(out_w)) < i128::from(in_h) - i128::from(out_h);
    let raw = src.as_raw().as_slice();
    let (stride, x0, y0) = (in_w as usize * 3, x0 as usize, y0 as usize);
    let data = if !need_h && !need_v {
        (0..h)
            .flat_map(|y| &raw[(y0 + y) * stride + x0 * 3..(y0 + y) * stride + (x0 + w) * 3])
            .copied()
            .collect()
    } else if vertical_first {
        // Vertical pass over the columns the horizontal pass reads, then horizontal.
        let vert = box_coefficients(in_h, extent.1, out_h, y0 as u64, h);
        let (cols, first_col) = if need_h {
            let horiz = box_coefficients(in_w, extent.0, out_w, x0 as u64, w);
            let (first, end) = horiz.input_span();
            (Some(horiz), first..end)
        } else {
            (None, x0..x0 + w)
        };
        let width = first_col.len();
        let tmp = resample_vertical(raw, stride, first_col.start * 3, width, &vert, 0);
        match cols {
            Some(horiz) => resample_horizontal(&tmp, width, &horiz, first_col.start),
            None => tmp,
        }
    } else {
        // Horizontal pass over the rows the vertical pass reads, then vertical.
        let vert = need_v.then(|| box_coefficients(in_h, extent.1, out_h, y0 as u64, h));
        let rows = match &vert {
            Some(v) => {
                let (first, end) = v.input_span();
                first..end
            }
            None => y0..y0 + h,
        };
        let tmp = if need_h {
            let horiz = box_coefficients(in_w, extent.0, out_w, x0 as u64, w);
            resample_horizontal(
                &raw[rows.start * stride..rows.end * stride],
                in_w as usize,
                &horiz,
                0,
            )
        } else {
            (rows.clone())
                .flat_map(|y| &raw[y * stride + x0 * 3..y * stride + (x0 + w) * 3])
                .copied()
                .collect()
        };
        match &vert {
            Some(v) => resample_vertical(&tmp, w * 3, 0, w, v, rows.start),
            None => tmp,
        }
    };
    // Lengths match by construction; fall back to black rather than panic.
    RgbImage::from_raw(w as u32, h as u32, data).unwrap_or_else(blank)
}

/// Horizontal pass over whole rows of `src` (`in_w` pixels each, starting at input column
/// `col_offset`), one output pixel per entry of `c`.
fn resample_horizontal(src: &[u8], in_w: usize, c: &Coefficients, col_offset: usize) -> Vec<u8> {
    let out_w = c.bounds.len();
    let rows = src.len() / (in_w * 3).max(1);
    let mut out = vec![0u8; rows * out_w * 3];
    for (src_row, out_row) in src
        .chunks_exact(in_w * 3)
        .zip(out.chunks_exact_mut(out_w * 3))
    {
        for ((px, &(xmin, taps)), k) in out_row
            .chunks_exact_mut(3)
            .zip(&c.bounds)
            .zip(c.weights.chunks_exact(c.ksize))
        {
            let (mut r, mut g, mut b) = (HALF, HALF, HALF);
            let start = (xmin - col_offset) * 3;
            let window = &src_row[start..start + taps * 3];
            for (p, &w) in window.chunks_exact(3).zip(&k[..taps]) {
                r += i32::from(p[0]) * w;
                g += i32::from(p[1]) * w;
                b += i32::from(p[2]) * w;
            }
            px[0] = clip8(r);
            px[1] = clip8(g);
            px[2] = clip8(b);
        }
    }
    out
}

/// Vertical pass: for each entry of `c`, one output row of `width` pixels read from rows of
/// `src` (`stride` bytes each, starting at byte `col_byte` of a row); `src` row 0 is input
/// row `row_offset`.
fn resample_vertical(
    src: &[u8],
    stride: usize,
    col_byte: usize,
    width: usize,
    c: &Coefficients,
    row_offset: usize,
) -> Vec<u8> {
    let row_bytes = width * 3;
    let mut out = vec![0u8; c.bounds.len() * row_bytes];
    let mut acc = vec![0i32; row_bytes];
    for ((out_row, &(ymin, taps)), k) in out
        .chunks_exact_mut(row_bytes)
        .zip(&c.bounds)
        .zip(c.weights.chunks_exact(c.ksize))
    {
        acc.fill(HALF);
        for (dy, &w) in k[..taps].iter().enumerate() {
            let at = (ymin - row_offset + dy) * stride + col_byte;
            for (a, &v) in acc.iter_mut().zip(&src[at..at + row_bytes]) {
                *a += i32::from(v) * w;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    out
}
