//! Writes every WGSL kernel variant the engine can compile (`kernels::all_sources`) into a
//! folder, one `.wgsl` file each, with `manifest.json` naming its entry points and whether it
//! needs `shader-f16`: the input of `tests/tint/check.mjs`, which compiles them with Tint
//! (Dawn's shader compiler, the one inside Chrome) — naga is not the only judge.
//!
//! Usage: `cargo run --release --example dump_wgsl -- OUT_DIR`

#[cfg(not(target_arch = "wasm32"))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use clipseek::encode::gpu::kernels::all_sources;
    let Some(out) = std::env::args_os().nth(1).map(std::path::PathBuf::from) else {
        return Err("usage: dump_wgsl OUT_DIR".into());
    };
    std::fs::create_dir_all(&out)?;
    let mut manifest = Vec::new();
    for (i, (source, needs_f16)) in all_sources().iter().enumerate() {
        let file = format!("{i:03}.wgsl");
        std::fs::write(out.join(&file), &source.code)?;
        manifest.push(serde_json::json!({
            "file": file,
            "name": source.name,
            "entry_points": source.entry_points,
            "f16": needs_f16,
        }));
    }
    std::fs::write(
        out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    eprintln!(
        "wrote {} kernel variants to {}",
        manifest.len(),
        out.display()
    );
    Ok(())
}

#[cfg(target_arch = "wasm32")]
fn main() {}
