//! Writes `COUNT` distinct photo-like JPEGs (`model::synthetic::varied_photo_jpeg`, seeds
//! 1..=COUNT) into `OUT_DIR` as `photo-01.jpg`, `photo-02.jpg`, …, their sizes taken in
//! turn from `SIZES` (`WIDTHxHEIGHT`, comma-separated; default `4000x3000`): the 12 MP
//! folders the browser measurements index (tests/e2e/look-and-measure.e2e.mjs) and the
//! mixed-size folder of the page benchmark (scripts/bench_page.mjs), drawn without any
//! image tool outside this crate.
//!
//! Native only: the body is compiled out on wasm32 (it needs a file system).
//!
//! Usage: `cargo run --release --example make_photos -- OUT_DIR COUNT [SIZES]`

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: make_photos OUT_DIR COUNT [WIDTHxHEIGHT,...]";
    let (Some(out), Some(count)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let count: u64 = count.parse().map_err(|_| usage)?;
    let sizes = args
        .get(2)
        .map_or("4000x3000", String::as_str)
        .split(',')
        .map(|s| {
            let (w, h) = s.split_once('x').ok_or(usage)?;
            Ok((w.parse().map_err(|_| usage)?, h.parse().map_err(|_| usage)?))
        })
        .collect::<Result<Vec<(u32, u32)>, &str>>()?;
    let out = std::path::Path::new(out);
    std::fs::create_dir_all(out)?;
    for (seed, (width, height)) in (1..=count).zip(sizes.iter().cycle()) {
        let jpeg = clipseek::model::synthetic::varied_photo_jpeg(*width, *height, seed)?;
        std::fs::write(out.join(format!("photo-{seed:02}.jpg")), jpeg)?;
    }
    eprintln!(
        "wrote {count} JPEGs ({}) in {}",
        args.get(2).map_or("4000x3000", String::as_str),
        out.display()
    );
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn main() {}
