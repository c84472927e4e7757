//! Importing an export archive (`index::export`, the CLI's format) into the page's index:
//! the archive is checked whole and refused with one sentence (another model's archive
//! included), and its photos become stored records — except those whose path the index
//! already holds, which are kept as they are (an import never replaces a photo).
//!
//! It must not touch storage or the DOM: `web::filters` reads the file, saves the records
//! and loads them into the core. Reference: issue 11 item 5; DESIGN.md "Contract: native CLI"
//! (export/import).

use super::run::Stored;
use crate::index::export::import;
use crate::index::EmbeddingIndex;

/// What an archive adds to `index`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportPlan {
    /// New photos, in the archive's order, numbered from the `first_seq` given.
    pub records: Vec<Stored>,
    /// Photos of the archive whose path the index already holds (left as they are).
    pub kept: usize,
}

/// Reads `bytes` as an archive for `index`'s model. Records are numbered from `first_seq`
/// (after every stored photo's number).
pub fn plan_import(
    bytes: &[u8],
    index: &EmbeddingIndex,
    first_seq: f64,
) -> Result<ImportPlan, String> {
    let imported = import(bytes, Some(index.model_id()))
        .map_err(|e| format!("The archive cannot be imported: {e}."))?;
    let from = &imported.index;
    let mut records = Vec::new();
    let mut kept = 0;
    for entry in from.entries() {
        if index.entry_by_path(&entry.path).is_some() {
            kept += 1;
            continue;
        }
        let Some(embedding) = from.embedding(entry.id) else {
            continue;
        };
        records.push(Stored {
            path: entry.path.clone(),
            size_bytes: entry.size_bytes,
            modified_ms: entry.modified_ms,
            content_hash: entry.content_hash,
            taken_ms: entry.taken_ms,
            model_id: index.model_id().to_owned(),
            seq: first_seq + records.len() as f64,
            embedding: embedding.to_vec(),
            browser_decoded: imported.by_browser.contains(&entry.path),
        });
    }
    Ok(ImportPlan { records, kept })
}

/// The sentence after an import.
pub fn import_line(added: usize, kept: usize) -> String {
    let s = |n: usize| if n == 1 { "" } else { "s" };
    let mut line = format!("Imported {added} photo{} from the archive", s(added));
    if kept > 0 {
        line.push_str(&format!(
            "; {kept} photo{} already indexed under the same path {} kept as {}",
            s(kept),
            if kept == 1 { "was" } else { "were" },
            if kept == 1 { "it was" } else { "they were" }
        ));
    }
    line.push_str(". Their thumbnails appear when their folder is dropped again.");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::export::export;
    use crate::index::EntryMeta;

    fn meta(path: &str) -> EntryMeta {
        EntryMeta {
            path: path.to_owned(),
            size_bytes: 7,
            modified_ms: 1_700_000_000_000,
            content_hash: [3; 32],
            taken_ms: None,
        }
    }

    #[test]
    fn an_archive_adds_the_paths_the_index_lacks() -> Result<(), Box<dyn std::error::Error>> {
        let mut there = EmbeddingIndex::new("clip#abc", 2);
        let taken = EntryMeta {
            taken_ms: Some(1_600_000_000_000),
            ..meta("a/1.jpg")
        };
        there.upsert(taken, &[1.0, 0.0])?;
        there.upsert(meta("a/2.jpg"), &[0.0, 1.0])?;
        let bytes = export(&there, Some("main"))?;
        let mut here = EmbeddingIndex::new("clip#abc", 2);
        here.upsert(meta("a/2.jpg"), &[0.6, 0.8])?;
        let plan = plan_import(&bytes, &here, 10.0)?;
        assert_eq!(plan.kept, 1);
        assert_eq!(plan.records.len(), 1);
        let r = &plan.records[0];
        assert_eq!(
            (r.path.as_str(), r.seq, r.size_bytes, r.model_id.as_str()),
            ("a/1.jpg", 10.0, 7, "clip#abc")
        );
        assert_eq!(r.embedding, [1.0, 0.0]);
        assert_eq!(r.modified_ms, 1_700_000_000_000);
        assert_eq!(
            r.taken_ms,
            Some(1_600_000_000_000),
            "the date taken comes along"
        );
        Ok(())
    }

    #[test]
    fn another_models_archive_and_junk_are_refused_with_a_sentence(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let mut other = EmbeddingIndex::new("clip#other", 2);
        other.upsert(meta("x.jpg"), &[1.0, 0.0])?;
        let bytes = export(&other, None)?;
        let here = EmbeddingIndex::new("clip#abc", 2);
        let refused = plan_import(&bytes, &here, 0.0).err().unwrap_or_default();
        assert!(
            refused.starts_with(
                "The archive cannot be imported: this archive was made with another model"
            ),
            "{refused}"
        );
        assert!(refused.ends_with("cannot be imported."), "{refused}");
        let junk = plan_import(b"hello", &here, 0.0).err().unwrap_or_default();
        assert!(junk.contains("not a zip archive"), "{junk}");
        Ok(())
    }

    #[test]
    fn the_line_says_what_was_kept() {
        assert_eq!(
            import_line(3, 0),
            "Imported 3 photos from the archive. Their thumbnails appear when their folder is \
             dropped again."
        );
        assert!(import_line(1, 1).starts_with(
            "Imported 1 photo from the archive; 1 photo already indexed under the same path \
             was kept as it was."
        ));
    }
}
