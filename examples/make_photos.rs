//! Writes `COUNT` distinct photo-like JPEGs of `WIDTH` x `HEIGHT` pixels
//! (`model::synthetic::varied_photo_jpeg`, seeds 1..=COUNT) into `OUT_DIR` as
//! `photo-01.jpg`, `photo-02.jpg`, …: the 12 MP folders the browser measurements index
//! (tests/e2e/look-and-measure.e2e.mjs), drawn without any image tool outside this crate.
//!
//! Native only: the body is compiled out on wasm32 (it needs a file system).
//!
//! Usage: `cargo run --release --example make_photos -- OUT_DIR COUNT [WIDTH HEIGHT]`

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: make_photos OUT_DIR COUNT [WIDTH HEIGHT]";
    let (Some(out), Some(count)) = (args.first(), args.get(1)) else {
        return Err(usage.into());
    };
    let count: u64 = count.parse().map_err(|_| usage)?;
    let dim = |i: usize, default: u32| -> Result<u32, &str> {
        args.get(i)
            .map_or(Ok(default), |v| v.parse().map_err(|_| usage))
    };
    let (width, height) = (dim(2, 4000)?, dim(3, 3000)?);
    let out = std::path::Path::new(out);
    std::fs::create_dir_all(out)?;
    for seed in 1..=count {
        let jpeg = clipseek::model::synthetic::varied_photo_jpeg(width, height, seed)?;
        std::fs::write(out.join(format!("photo-{seed:02}.jpg")), jpeg)?;
    }
    eprintln!("wrote {count} {width}x{height} JPEGs in {}", out.display());
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn main() {}
