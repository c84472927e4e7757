//! `clipseek`: the native command line over the same core as the browser app.
//!
//! `index` embeds image files and folders into an index file, `search` ranks an index (or
//! an export archive) against compound queries (`dog -leash`, `beach + sunset`,
//! `2:golden retriever`, `@PATH`), `embed` prints embeddings, `duplicates` lists groups of
//! near-identical photos, `export` and `import` write and read the page's export archive.
//! The contract (arguments, `--json` shapes, exit status) is in DESIGN.md. A bad image
//! never stops a run: it is reported under `skipped`. Exit status 1 only when nothing could
//! be done (bad model folder, unreadable index), with one line on stderr. `index` never
//! replaces an index file it cannot read (it says so and stops), keeps what an interrupted
//! run finished (a journal beside the index file, appended and synced per batch, replayed
//! by the next run), and syncs the new index file and its folder around the atomic rename.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::Instant;

    use clap::{Args, Parser, Subcommand, ValueEnum};
    use clipseek::clip::Clip;
    use clipseek::encode::cpu::QuantOptions;
    use clipseek::encode::Embeddings;
    use clipseek::files::{load_model_dir, load_query_model_dir};
    use clipseek::index::journal::{journal_record, journal_start, read_journal};
    use clipseek::index::{dupes, export, query, EmbeddingIndex, EntryMeta, Match};
    use indicatif::{ProgressBar, ProgressStyle};
    use rayon::prelude::*;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    #[derive(Parser)]
    #[command(
        name = "clipseek",
        version,
        about = "Search photos by text with CLIP, locally."
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Embed image files and folders (recursively) into an index file.
        Index(IndexArgs),
        /// Rank an index against text queries.
        Search(SearchArgs),
        /// Print embeddings of images or texts.
        Embed(EmbedArgs),
        /// List groups of near-duplicate photos in an index.
        Duplicates(DuplicatesArgs),
        /// Write an index as an export archive (embeddings.npy + manifest.json in a zip).
        Export(ExportArgs),
        /// Read an export archive into an index file.
        Import(ImportArgs),
    }

    /// The numbers the CPU engine computes its linear layers in.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
    enum Precision {
        /// 32-bit floats throughout.
        F32,
        /// 8-bit weights (per-channel scales), activations quantised per token.
        Int8,
    }

    #[derive(Args)]
    struct IndexArgs {
        /// Model folder in the Hugging Face layout.
        #[arg(long)]
        model: PathBuf,
        /// Numbers of the linear layers.
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
        /// Images encoded together.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        batch: u32,
        /// One JSON document on stdout.
        #[arg(long)]
        json: bool,
        /// Index file to write (updated in place when it was made with the same model).
        #[arg(long)]
        out: PathBuf,
        /// Image files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    }

    #[derive(Args)]
    #[command(group = clap::ArgGroup::new("encoder").required(true).multiple(true).args(["model", "query_model"]))]
    struct SearchArgs {
        /// Model folder the index was made with: the index is checked against it, and it
        /// encodes the queries unless --query-model is given.
        #[arg(long)]
        model: Option<PathBuf>,
        /// A multilingual query encoder (sentence-transformers layout, such as
        /// clip-ViT-B-32-multilingual-v1) whose embeddings live in the index model's text
        /// space; it encodes the text of every query.
        #[arg(long)]
        query_model: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
        #[arg(long)]
        index: PathBuf,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        queries: Vec<String>,
    }

    #[derive(Args)]
    #[command(group = clap::ArgGroup::new("input").required(true).args(["image", "text"]))]
    struct EmbedArgs {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, value_enum, default_value_t = Precision::F32)]
        precision: Precision,
        #[arg(long)]
        json: bool,
        #[arg(long, num_args = 1..)]
        image: Vec<PathBuf>,
        #[arg(long, num_args = 1..)]
        text: Vec<String>,
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let result = match cli.command {
            Command::Index(a) => index(a),
            Command::Search(a) => search(a),
            Command::Embed(a) => embed(a),
            Command::Duplicates(a) => duplicates(a),
            Command::Export(a) => export_cmd(a),
            Command::Import(a) => import_cmd(a),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("clipseek: {message}");
                ExitCode::FAILURE
            }
        }
    }

    fn load(model: &Path, precision: Precision) -> Result<Clip, String> {
        let mut clip = load_model_dir(model).map_err(|e| e.to_string())?;
        if precision == Precision::Int8 {
            clip.encoder = clip
                .encoder
                .quantized(QuantOptions::default())
                .map_err(|e| e.to_string())?;
        }
        Ok(clip)
    }

    fn print_json(v: &Value) -> Result<(), String> {
        let text = serde_json::to_string(v).map_err(|e| e.to_string())?;
        println!("{text}");
        Ok(())
    }

    const IMAGE_EXTENSIONS: &[&str] = &[
        "jpg", "jpeg", "jpe", "jfif", "png", "webp", "gif", "bmp", "dib",
    ];

    /// Lists the files to index: given files as they are; folders walked recursively,
    /// keeping files that look like images by name or by their first bytes. Sorted.
    fn collect(paths: &[PathBuf], skipped: &mut Vec<(String, String)>) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for p in paths {
            match std::fs::metadata(p) {
                Ok(m) if m.is_dir() => walk(p, &mut out, skipped),
                Ok(_) => out.push(p.clone()),
                Err(e) => skipped.push((p.display().to_string(), e.to_string())),
            }
        }
        out
    }

    fn walk(dir: &Path, out: &mut Vec<PathBuf>, skipped: &mut Vec<(String, String)>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                skipped.push((dir.display().to_string(), e.to_string()));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        children.sort();
        for child in children {
            if child.is_dir() {
                walk(&child, out, skipped);
            } else if looks_like_image(&child) {
                out.push(child);
            }
        }
    }

    fn looks_like_image(path: &Path) -> bool {
        let by_name = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            .unwrap_or(false);
        if by_name {
            return true;
        }
        let mut head = [0u8; 16];
        let n = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        image::guess_format(&head[..n]).is_ok()
    }

    struct Prepared {
        path: String,
        meta: EntryMeta,
        pixels: Vec<f32>,
    }

    fn prepare(clip: &Clip, path: &Path) -> Result<Prepared, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
        let (pixels, taken_ms) = clip
            .preprocessor
            .preprocess_dated(&bytes)
            .map_err(|e| e.to_string())?;
        let display = path.display().to_string();
        Ok(Prepared {
            meta: EntryMeta {
                path: display.clone(),
                size_bytes: meta.len(),
                modified_ms: modified_ms(&meta),
                content_hash: Sha256::digest(&bytes).into(),
                taken_ms,
            },
            path: display,
            pixels,
        })
    }

    fn modified_ms(meta: &std::fs::Metadata) -> i64 {
        meta.modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn progress(total: u64) -> ProgressBar {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} images ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
        bar
    }

    fn index(a: IndexArgs) -> Result<(), String> {
        let started = Instant::now();
        let clip = load(&a.model, a.precision)?;
        let mut skipped: Vec<(String, String)> = Vec::new();
        let files = collect(&a.paths, &mut skipped);
        let mut idx = existing_index(&a.out, &clip)?;
        let mut journal = Journal::open(&a.out, &clip, &mut idx)?;
        let mut indexed = 0usize;
        let mut todo = Vec::new();
        for f in files {
            let shown = f.display().to_string();
            let unchanged = std::fs::metadata(&f)
                .ok()
                .and_then(|m| idx.unchanged(&shown, m.len(), modified_ms(&m)));
            if unchanged.is_some() {
                indexed += 1;
            } else {
                todo.push(f);
            }
        }
        let bar = progress(todo.len() as u64);
        let per_image = clip.encoder_image_len();
        for chunk in todo.chunks(a.batch as usize) {
            let prepared: Vec<(PathBuf, Result<Prepared, String>)> = chunk
                .par_iter()
                .map(|p| (p.clone(), prepare(&clip, p)))
                .collect();
            let mut ok = Vec::new();
            for (p, r) in prepared {
                match r {
                    Ok(x) => ok.push(x),
                    Err(e) => skipped.push((p.display().to_string(), e)),
                }
            }
            if !ok.is_empty() {
                let mut pixels = Vec::with_capacity(ok.len() * per_image);
                for x in &ok {
                    pixels.extend_from_slice(&x.pixels);
                }
                match clip.embed_pixels(&pixels, ok.len()) {
                    Ok(emb) => {
                        let mut records = Vec::new();
                        for (i, x) in ok.into_iter().enumerate() {
                            let record = journal_record(&x.meta, emb.row(i));
                            match idx.upsert(x.meta, emb.row(i)) {
                                Ok(_) => {
                                    indexed += 1;
                                    records.extend(record);
                                }
                                Err(e) => skipped.push((x.path, e.to_string())),
                            }
                        }
                        journal.append(&records)?;
                    }
                    Err(e) => {
                        for x in ok {
                            skipped.push((x.path, e.to_string()));
                        }
                    }
                }
            }
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        write_atomically(&a.out, &idx.to_bytes())?;
        journal.finish()?;
        let seconds = started.elapsed().as_secs_f64();
        if a.json {
            let skipped: Vec<Value> = skipped
                .iter()
                .map(|(p, e)| json!({"path": p, "error": e}))
                .collect();
            print_json(&json!({"indexed": indexed, "skipped": skipped, "seconds": seconds}))
        } else {
            for (p, e) in &skipped {
                println!("skipped {p}: {e}");
            }
            println!(
                "indexed {indexed} images into {} in {seconds:.1} s ({} skipped)",
                a.out.display(),
                skipped.len()
            );
            Ok(())
        }
    }

    /// The index in `out`, or a new one when there is no such file. A file that cannot be
    /// read, is not a clipseek index or was made with another model is refused, never
    /// replaced: it may be someone's only copy.
    fn existing_index(out: &Path, clip: &Clip) -> Result<EmbeddingIndex, String> {
        let bytes = match std::fs::read(out) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(EmbeddingIndex::new(
                    clip.model_id.clone(),
                    clip.embedding_dim(),
                ))
            }
            Err(e) => return Err(format!("cannot read {}: {e}", out.display())),
        };
        EmbeddingIndex::from_bytes(&bytes, Some(&clip.model_id)).map_err(|e| {
            format!(
                "{} is left as it is: {e}. Give another --out, or move that file away to start a new index there.",
                out.display()
            )
        })
    }

    /// `PATH` with `suffix` appended to its file name.
    fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// The journal beside the index file (`OUT.journal`, see `clipseek::index::journal`):
    /// what an interrupted run finished is replayed from it; each batch is appended and
    /// synced; it is removed once the index file holding it is in place.
    struct Journal {
        path: PathBuf,
        file: std::fs::File,
    }

    impl Journal {
        fn open(out: &Path, clip: &Clip, idx: &mut EmbeddingIndex) -> Result<Self, String> {
            use std::io::{Seek, SeekFrom, Write};
            let path = with_suffix(out, ".journal");
            let fail = |e: std::io::Error| format!("cannot use {}: {e}", path.display());
            let mut keep = 0u64;
            match std::fs::read(&path) {
                Ok(bytes) => match read_journal(&bytes, &clip.model_id) {
                    Ok(replay) => {
                        let n = replay.records.len();
                        for (meta, embedding) in replay.records {
                            let shown = meta.path.clone();
                            if let Err(e) = idx.upsert(meta, &embedding) {
                                eprintln!("clipseek: {shown} from an interrupted run: {e}");
                            }
                        }
                        if n > 0 {
                            eprintln!(
                                "clipseek: resuming an interrupted run: {n} images from {} kept",
                                path.display()
                            );
                        }
                        keep = replay.valid_bytes as u64;
                    }
                    Err(e) => eprintln!(
                        "clipseek: not using {} ({e}); starting it again",
                        path.display()
                    ),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(fail(e)),
            }
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(fail)?;
            if keep == 0 {
                file.set_len(0).map_err(fail)?;
                file.write_all(&journal_start(&clip.model_id, clip.embedding_dim()))
                    .map_err(fail)?;
            } else {
                // Drop a record cut short by the interruption, then append after the rest.
                file.set_len(keep).map_err(fail)?;
                file.seek(SeekFrom::Start(keep)).map_err(fail)?;
            }
            file.sync_all().map_err(fail)?;
            sync_dir(&path).map_err(fail)?;
            Ok(Self { path, file })
        }

        /// Appends records and syncs them: once this returns they survive a kill.
        fn append(&mut self, records: &[u8]) -> Result<(), String> {
            use std::io::Write;
            if records.is_empty() {
                return Ok(());
            }
            self.file
                .write_all(records)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
        }

        /// The index file holds everything: the journal goes.
        fn finish(self) -> Result<(), String> {
            drop(self.file);
            std::fs::remove_file(&self.path)
                .and_then(|()| sync_dir(&self.path))
                .map_err(|e| format!("cannot remove {}: {e}", self.path.display()))
        }
    }

    /// Syncs the folder holding `path`, so that a rename or removal in it is durable.
    fn sync_dir(path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    }

    /// Writes `bytes` to a temporary file beside `path`, syncs it, renames it over `path`
    /// and syncs the folder: after a crash `path` is the old file or the new one, whole.
    fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let tmp = with_suffix(path, ".tmp");
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, path))
            .and_then(|()| sync_dir(path));
        written.map_err(|e| format!("cannot write {}: {e}", path.display()))
    }

    fn search(a: SearchArgs) -> Result<(), String> {
        let clip = a
            .model
            .as_deref()
            .map(|m| load(m, a.precision))
            .transpose()?;
        let query_model = a
            .query_model
            .as_deref()
            .map(|d| load_query_model_dir(d).map_err(|e| e.to_string()))
            .transpose()?;
        let idx = read_index_or_archive(&a.index, clip.as_ref().map(|c| c.model_id.as_str()))?;
        let embed: Box<TextEmbedder<'_>> = match (&query_model, &clip) {
            (Some(q), _) if q.embedding_dim() != idx.dim() => {
                return Err(format!(
                    "the query model gives {}-dimensional embeddings but the index holds {}-dimensional ones: it was not made for this index's model",
                    q.embedding_dim(),
                    idx.dim()
                ))
            }
            (Some(q), _) => Box::new(|t: &[&str]| q.embed_texts(t).map_err(|e| e.to_string())),
            (None, Some(c)) => Box::new(|t: &[&str]| c.embed_texts(t).map_err(|e| e.to_string())),
            (None, None) => return Err("give --model or --query-model".into()),
        };
        let mut results = Vec::new();
        for q in &a.queries {
            match compound_search(&*embed, &idx, q, a.top_k) {
                Ok(matches) => {
                    let m: Vec<Value> = matches
                        .iter()
                        .filter_map(|m| {
                            idx.entry(m.id)
                                .map(|e| json!({"path": e.path, "score": m.score}))
                        })
                        .collect();
                    results.push(json!({"query": q, "matches": m}));
                }
                Err(e) => results.push(json!({"query": q, "matches": [], "error": e})),
            }
        }
        if a.json {
            return print_json(&json!({ "queries": results }));
        }
        for r in &results {
            println!("{}", r["query"].as_str().unwrap_or_default());
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                println!("  error: {e}");
            }
            for m in r["matches"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                println!(
                    "  {:.4}  {}",
                    m["score"].as_f64().unwrap_or(0.0),
                    m["path"].as_str().unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    fn embed(a: EmbedArgs) -> Result<(), String> {
        let clip = load(&a.model, a.precision)?;
        let mut images = Vec::new();
        let mut skipped = Vec::new();
        for p in &a.image {
            let r = std::fs::read(p)
                .map_err(|e| e.to_string())
                .and_then(|b| clip.embed_image_bytes(&b).map_err(|e| e.to_string()));
            match r {
                Ok(e) => images.push(json!({"path": p.display().to_string(), "embedding": e})),
                Err(e) => skipped.push(json!({"path": p.display().to_string(), "error": e})),
            }
        }
        let mut texts = Vec::new();
        if !a.text.is_empty() {
            let refs: Vec<&str> = a.text.iter().map(String::as_str).collect();
            let emb = clip.embed_texts(&refs).map_err(|e| e.to_string())?;
            for (i, t) in a.text.iter().enumerate() {
                texts.push(json!({"text": t, "embedding": emb.row(i)}));
            }
        }
        if a.json {
            return print_json(&json!({"images": images, "texts": texts, "skipped": skipped}));
        }
        for v in images.iter().chain(texts.iter()) {
            let name = v
                .get("path")
                .or_else(|| v.get("text"))
                .cloned()
                .unwrap_or(Value::Null);
            println!("{name}: {}", v["embedding"]);
        }
        for s in &skipped {
            println!("skipped {}: {}", s["path"], s["error"]);
        }
        Ok(())
    }

    /// Texts to normalised embeddings: the CLIP text tower or a multilingual query model.
    type TextEmbedder<'a> = dyn Fn(&[&str]) -> Result<Embeddings, String> + 'a;

    /// Ranks `idx` against one compound query (`index::query`): its distinct texts are
    /// encoded in one batch, its photos (`@PATH`, `@#ID`) looked up in the index.
    fn compound_search(
        embed: &TextEmbedder<'_>,
        idx: &EmbeddingIndex,
        text: &str,
        top_k: usize,
    ) -> Result<Vec<Match>, String> {
        let parsed = query::parse(text).map_err(|e| e.to_string())?;
        let texts = parsed.texts();
        let embedded = if texts.is_empty() {
            None
        } else {
            Some(embed(&texts)?)
        };
        let lookup = |t: &str| {
            let i = texts.iter().position(|x| *x == t)?;
            embedded.as_ref().map(|e| e.row(i).to_vec())
        };
        query::search(idx, &parsed, lookup, top_k).map_err(|e| e.to_string())
    }

    /// Reads an index file, or an export archive (told apart by their first bytes).
    fn read_index_or_archive(
        path: &Path,
        expected_model: Option<&str>,
    ) -> Result<EmbeddingIndex, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if export::is_archive(&bytes) {
            export::import(&bytes, expected_model)
                .map(|i| i.index)
                .map_err(|e| format!("{}: {e}", path.display()))
        } else {
            EmbeddingIndex::from_bytes(&bytes, expected_model)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }

    #[derive(Args)]
    struct DuplicatesArgs {
        /// Index file or export archive.
        #[arg(long)]
        index: PathBuf,
        /// Cosine similarity at or above which two photos are duplicates.
        #[arg(long, default_value_t = 0.95)]
        threshold: f32,
        #[arg(long)]
        json: bool,
    }

    fn duplicates(a: DuplicatesArgs) -> Result<(), String> {
        let idx = read_index_or_archive(&a.index, None)?;
        let started = Instant::now();
        let (groups, stats) = dupes::duplicates(&idx, a.threshold).map_err(|e| e.to_string())?;
        let seconds = started.elapsed().as_secs_f64();
        let path = |p: usize| {
            idx.entries()
                .get(p)
                .map_or_else(String::new, |e| e.path.clone())
        };
        if a.json {
            let groups: Vec<Value> = groups
                .iter()
                .map(|g| {
                    let others: Vec<String> = g.others.iter().map(|&p| path(p)).collect();
                    json!({"keep": path(g.keep), "others": others})
                })
                .collect();
            return print_json(&json!({
                "threshold": a.threshold,
                "groups": groups,
                "seconds": seconds,
                "lsh": {
                    "bits": stats.plan.bits,
                    "tables": stats.plan.tables,
                    "pair_recall": stats.plan.pair_recall,
                    "candidate_pairs": stats.candidate_pairs,
                    "verified_pairs": stats.verified_pairs,
                },
            }));
        }
        for g in &groups {
            println!("keep {}", path(g.keep));
            for &p in &g.others {
                println!("  also {}", path(p));
            }
        }
        let extra: usize = groups.iter().map(|g| g.others.len()).sum();
        println!(
            "{} groups of duplicates at cosine >= {} ({extra} photos besides the one kept), {:.2} s",
            groups.len(),
            a.threshold,
            seconds
        );
        Ok(())
    }

    #[derive(Args)]
    struct ExportArgs {
        /// Index file to export.
        #[arg(long)]
        index: PathBuf,
        /// Archive to write (a zip).
        #[arg(long)]
        out: PathBuf,
        /// The model revision to record in the manifest.
        #[arg(long)]
        revision: Option<String>,
        #[arg(long)]
        json: bool,
    }

    fn export_cmd(a: ExportArgs) -> Result<(), String> {
        let idx = read_index_or_archive(&a.index, None)?;
        let bytes = export::export(&idx, a.revision.as_deref()).map_err(|e| e.to_string())?;
        write_atomically(&a.out, &bytes)?;
        if a.json {
            return print_json(&json!({
                "exported": idx.len(),
                "out": a.out.display().to_string(),
                "bytes": bytes.len(),
            }));
        }
        println!(
            "exported {} photos to {} ({} bytes)",
            idx.len(),
            a.out.display(),
            bytes.len()
        );
        Ok(())
    }

    #[derive(Args)]
    struct ImportArgs {
        /// Export archive to read.
        #[arg(long)]
        archive: PathBuf,
        /// Index file to write; an existing index of the same model takes the archive's
        /// photos in (same path: replaced), one of another model is refused.
        #[arg(long)]
        out: PathBuf,
        /// Refuse an archive made with another model than this one.
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    }

    fn import_cmd(a: ImportArgs) -> Result<(), String> {
        let expected = match &a.model {
            Some(dir) => Some(load(dir, Precision::F32)?.model_id),
            None => None,
        };
        let bytes = std::fs::read(&a.archive)
            .map_err(|e| format!("cannot read {}: {e}", a.archive.display()))?;
        let imported = export::import(&bytes, expected.as_deref())
            .map_err(|e| format!("{}: {e}", a.archive.display()))?;
        let archive_index = imported.index;
        let out = match std::fs::read(&a.out) {
            Ok(existing) => {
                let mut idx = EmbeddingIndex::from_bytes(&existing, Some(archive_index.model_id()))
                    .map_err(|e| {
                        format!(
                            "{} exists and cannot take the archive in ({e}); choose another --out",
                            a.out.display()
                        )
                    })?;
                for (entry, row) in archive_index.entries().iter().zip(
                    archive_index
                        .matrix()
                        .chunks_exact(archive_index.dim().max(1)),
                ) {
                    idx.upsert(entry.meta(), row).map_err(|e| e.to_string())?;
                }
                idx
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => archive_index.clone(),
            Err(e) => return Err(format!("cannot read {}: {e}", a.out.display())),
        };
        write_atomically(&a.out, &out.to_bytes())?;
        if a.json {
            return print_json(&json!({
                "imported": archive_index.len(),
                "total": out.len(),
                "out": a.out.display().to_string(),
                "model": out.model_id(),
            }));
        }
        println!(
            "imported {} photos into {} ({} in all)",
            archive_index.len(),
            a.out.display(),
            out.len()
        );
        Ok(())
    }
}
