//! Every WGSL kernel variant the engine can compile parses and validates with naga (the
//! shader compiler inside wgpu): no GPU needed, so this runs everywhere, including CI
//! without an adapter.

use clipseek::encode::gpu::kernels::all_sources;

#[test]
fn every_kernel_variant_validates() -> Result<(), String> {
    let sources = all_sources();
    assert!(sources.len() >= 20, "only {} variants", sources.len());
    let mut failures = Vec::new();
    for (source, needs_f16) in &sources {
        let module = match naga::front::wgsl::parse_str(&source.code) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!(
                    "{}: {}",
                    source.name,
                    e.emit_to_string(&source.code)
                ));
                continue;
            }
        };
        let caps = if *needs_f16 {
            naga::valid::Capabilities::SHADER_FLOAT16
        } else {
            naga::valid::Capabilities::empty()
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        if let Err(e) = validator.validate(&module) {
            failures.push(format!(
                "{}: {}",
                source.name,
                e.emit_to_string(&source.code)
            ));
            continue;
        }
        for entry in source.entry_points {
            if !module.entry_points.iter().any(|ep| ep.name == *entry) {
                failures.push(format!("{}: no entry point {entry}", source.name));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n\n"))
    }
}

#[test]
fn f16_variants_need_the_f16_capability() -> Result<(), String> {
    // The f16 sources really use f16: without the capability naga must refuse them.
    let (source, _) = all_sources()
        .into_iter()
        .find(|(_, f16)| *f16)
        .ok_or("no f16 variant")?;
    let module = naga::front::wgsl::parse_str(&source.code).map_err(|e| e.to_string())?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    );
    assert!(validator.validate(&module).is_err());
    Ok(())
}
