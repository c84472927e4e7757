//! Files from a drop or a picker, with their relative paths: `#drop-zone` takes files and
//! folders (walking each directory completely: `readEntries` hands out entries in batches
//! and is called again until it returns an empty one), `#folder-input` gives every file
//! of a folder with its `webkitRelativePath`, `#files-input` loose files by name.
//!
//! Nothing is read here but the directory structure: deciding what is a photo and what to
//! index is `page::library` and `ingest`. The drop's entries must be taken synchronously inside
//! the drop event (the browser empties `DataTransfer` afterwards), hence the split between
//! [`entries_of_drop`] and [`walk`]. Reference: the File and Directory Entries API
//! (WICG), `DataTransferItem.webkitGetAsEntry`.

use js_sys::{Array, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DataTransfer, File, FileSystemDirectoryEntry, FileSystemDirectoryReader, FileSystemEntry,
    FileSystemFileEntry, HtmlInputElement,
};

use crate::web::{prop, unreadable_sentence};

/// A picked file and where it sits in what was picked.
pub struct Picked {
    /// `folder/sub/name.jpg` for folders, `name.jpg` for loose files.
    pub path: String,
    pub file: File,
    /// The folder it came in (an index into [`PickedSet::roots`]), `None` for a loose file.
    /// Two dropped folders may share a name, so the path alone does not say.
    pub folder: Option<usize>,
}

/// What one drop or pick gave.
#[derive(Default)]
pub struct PickedSet {
    pub files: Vec<Picked>,
    /// Folders picked or dropped whole (their names, the first path component; two may
    /// have the same name).
    pub roots: Vec<String>,
    /// Entries the browser could not open (a file that vanished, a folder it may not
    /// list): their paths and the sentence listed beside them. The rest is kept.
    pub unopened: Vec<(String, String)>,
    /// A folder that stays connected, walked again through its remembered handle: placed
    /// as the stored folder it was indexed as (`Input::Reconnected`).
    pub reconnected: bool,
}

/// What a drop carries, taken while the drop event lasts.
pub enum Dropped {
    Entries(Vec<FileSystemEntry>),
    /// The browser gave no entries (no `webkitGetAsEntry`): plain files only.
    Files(Vec<File>),
}

/// Takes the drop's entries (synchronously, inside the event).
pub fn entries_of_drop(data: &DataTransfer) -> Dropped {
    let items = data.items();
    let mut entries = Vec::new();
    for i in 0..items.length() {
        let Some(item) = items.get(i) else { continue };
        if item.kind() != "file" {
            continue;
        }
        if let Ok(Some(entry)) = item.webkit_get_as_entry() {
            entries.push(entry);
        }
    }
    if !entries.is_empty() {
        return Dropped::Entries(entries);
    }
    let mut files = Vec::new();
    if let Some(list) = data.files() {
        for i in 0..list.length() {
            if let Some(f) = list.get(i) {
                files.push(f);
            }
        }
    }
    Dropped::Files(files)
}

/// Every file under the dropped entries, folders walked completely; an entry that cannot
/// be opened is listed in [`PickedSet::unopened`] and the walk goes on.
pub async fn walk(dropped: Dropped) -> PickedSet {
    let mut set = PickedSet::default();
    let entries = match dropped {
        Dropped::Files(files) => {
            set.files = files
                .into_iter()
                .map(|file| Picked {
                    path: file.name(),
                    file,
                    folder: None,
                })
                .collect();
            return set;
        }
        Dropped::Entries(entries) => entries,
    };
    let mut dirs: Vec<(FileSystemDirectoryEntry, usize)> = Vec::new();
    let mut file_entries: Vec<(FileSystemFileEntry, Option<usize>)> = Vec::new();
    for entry in entries {
        if entry.is_directory() {
            set.roots.push(entry.name());
            dirs.push((entry.unchecked_into(), set.roots.len() - 1));
        } else if entry.is_file() {
            file_entries.push((entry.unchecked_into(), None));
        }
    }
    while let Some((dir, folder)) = dirs.pop() {
        let reader = dir.create_reader();
        loop {
            let batch = match read_entries(&reader).await {
                Ok(batch) => batch,
                Err(e) => {
                    let why = unreadable_sentence(&e, true);
                    set.unopened.push((path_of(&dir), why));
                    break;
                }
            };
            if batch.length() == 0 {
                break;
            }
            for entry in batch.iter() {
                let entry: FileSystemEntry = entry.unchecked_into();
                if entry.is_directory() {
                    dirs.push((entry.unchecked_into(), folder));
                } else if entry.is_file() {
                    file_entries.push((entry.unchecked_into(), Some(folder)));
                }
            }
        }
    }
    for (entry, folder) in file_entries {
        let path = path_of(&entry);
        match file_of(&entry).await {
            Ok(file) => set.files.push(Picked { path, file, folder }),
            Err(e) => set.unopened.push((path, unreadable_sentence(&e, false))),
        }
    }
    set
}

/// An entry's path in the drop (`folder/sub/name.jpg`).
fn path_of(entry: &FileSystemEntry) -> String {
    entry.full_path().trim_start_matches('/').to_owned()
}

async fn read_entries(reader: &FileSystemDirectoryReader) -> Result<Array, JsValue> {
    let mut failed = None;
    let promise = Promise::new(&mut |resolve, reject| {
        if let Err(e) = reader.read_entries_with_callback_and_callback(&resolve, &reject) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let batch = JsFuture::from(promise).await?;
    Ok(batch.dyn_into::<Array>().unwrap_or_default())
}

async fn file_of(entry: &FileSystemFileEntry) -> Result<File, JsValue> {
    let promise = Promise::new(&mut |resolve, reject| {
        entry.file_with_callback_and_callback(&resolve, &reject);
    });
    JsFuture::from(promise)
        .await?
        .dyn_into::<File>()
        .map_err(|_| JsValue::from_str("the browser did not give a file"))
}

/// The files of a picker (`webkitdirectory` ones keep their relative paths).
pub fn from_input(input: &HtmlInputElement) -> PickedSet {
    let mut set = PickedSet::default();
    let Some(list) = input.files() else {
        return set;
    };
    for i in 0..list.length() {
        let Some(file) = list.get(i) else { continue };
        let relative = prop(&file, "webkitRelativePath")
            .and_then(|p| p.as_string())
            .filter(|p| !p.is_empty());
        let (path, folder) = match relative {
            Some(p) => {
                let folder = p.split_once('/').map(|(root, _)| {
                    match set.roots.iter().position(|r| r == root) {
                        Some(i) => i,
                        None => {
                            set.roots.push(root.to_owned());
                            set.roots.len() - 1
                        }
                    }
                });
                (p, folder)
            }
            None => (file.name(), None),
        };
        set.files.push(Picked { path, file, folder });
    }
    set
}
