//! Reads file paths (one a line) on stdin and prints, for each, `ok\tPATH\tWxH` when the
//! model's preprocessing (`Preprocessor::preprocess` at 64 px, the tiny fixture's
//! settings) accepts it, or `refused\tPATH\tSENTENCE` with the error it shows. Used by
//! `scripts/decode_vs_pillow.py`, which compares these answers with Pillow's.
//!
//! Native only: the body is compiled out on wasm32 (it needs a file system).
//!
//! Usage: `cargo run --release --example decode_check < paths.txt`

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use std::io::{BufRead, Write};

    use clipseek::model::config::PreprocessConfig;
    use clipseek::model::preprocess::Preprocessor;

    let config = PreprocessConfig::from_json(include_bytes!(
        "../tests/fixtures/tiny-clip/preprocessor_config.json"
    ))?;
    let pre = Preprocessor::new(config);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let path = line?;
        let answer = match std::fs::read(&path) {
            Err(e) => format!("refused\t{path}\tunreadable: {e}"),
            Ok(bytes) => match pre
                .decode(&bytes)
                .and_then(|rgb| pre.preprocess(&bytes).map(|_| rgb.dimensions()))
            {
                Ok((w, h)) => format!("ok\t{path}\t{w}x{h}"),
                Err(e) => format!("refused\t{path}\t{e}"),
            },
        };
        writeln!(out, "{answer}")?;
    }
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn main() {}
