//! PyTorch checkpoints (`pytorch_model.bin`, `torch.save` of a state dict) read without
//! executing anything: the table of tensors (name, dtype, shape, byte range in the file),
//! the same table `model.safetensors` has, so the caller reads each tensor's bytes as it
//! does for safetensors.
//!
//! The file is a zip of stored members: `<root>/data.pkl` (a pickle of the state dict),
//! `<root>/data/<key>` (one raw little-endian storage per key), `<root>/byteorder` (newer
//! files). The pickle is interpreted by a small stack machine that knows only the opcodes
//! a tensor state dict uses (protocol 2 as `torch.save` writes it, plus protocol 4's
//! framing) and only these globals: `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and the storage classes `torch.FloatStorage`,
//! `HalfStorage`, `BFloat16Storage`, `LongStorage`, `IntStorage`. Anything else — another
//! global, `INST`/`OBJ`/`NEWOBJ`, a `REDUCE` of something not on that list, a `BUILD` on
//! anything but the dict — is refused with the opcode or global named; nothing is ever
//! called or imported. Storages are bounds-checked against their members, tensors against
//! their storages, and only contiguous row-major tensors are accepted (as `torch.save`
//! writes a state dict). Reference: Python's `Lib/pickletools.py` (opcode table) and
//! PyTorch's `torch/serialization.py` (`_save`, `_load`) and `torch/_utils.py`.
//! Pre-1.6 (non-zip) checkpoints are refused with a sentence. No I/O happens here.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Range;

use super::weights::{Dtype, TensorInfo};
use crate::zip::{self, ZipError};

/// Why a PyTorch checkpoint was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TorchBinError {
    #[error("{file} is not a zip archive: only checkpoints written by PyTorch 1.6 or later (`torch.save`'s zip format) are read")]
    NotZip { file: String },
    #[error("{file}: {source}")]
    Zip { file: String, source: ZipError },
    #[error("{file} has no {what}; it is not a PyTorch checkpoint")]
    Missing { file: String, what: String },
    #[error("{file}: member `{member}` is compressed; PyTorch stores its members uncompressed")]
    Compressed { file: String, member: String },
    #[error("{file} is big-endian; only little-endian checkpoints are read")]
    BigEndian { file: String },
    #[error("{file}: the pickle uses opcode {opcode:#04x} ({name}) at byte {at}, which a tensor state dict never uses; the file is refused and nothing in it was run")]
    Opcode {
        file: String,
        opcode: u8,
        name: &'static str,
        at: usize,
    },
    #[error("{file}: the pickle names `{global}`, which a tensor state dict never uses; the file is refused and nothing in it was run")]
    Global { file: String, global: String },
    #[error("{file}: the pickle is malformed at byte {at}: {reason}")]
    Malformed {
        file: String,
        at: usize,
        reason: String,
    },
    #[error("{file}: tensor `{tensor}` {reason}")]
    Tensor {
        file: String,
        tensor: String,
        reason: String,
    },
}

/// Most memo entries and stack items a state-dict pickle could need (each tensor uses a few).
const MAX_ITEMS: usize = 1 << 20;

/// The storage classes a state dict may name, and what their elements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    Float(Dtype),
    /// int64 / int32 buffers (e.g. `position_ids`): bounds-checked, never converted.
    Integer {
        size_bytes: u64,
    },
}

impl StorageKind {
    fn size_bytes(self) -> u64 {
        match self {
            Self::Float(d) => d.size_bytes(),
            Self::Integer { size_bytes } => size_bytes,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Global {
    OrderedDict,
    RebuildTensor,
    Storage(StorageKind),
}

fn global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
        ("torch", "FloatStorage") => Global::Storage(StorageKind::Float(Dtype::F32)),
        ("torch", "HalfStorage") => Global::Storage(StorageKind::Float(Dtype::F16)),
        ("torch", "BFloat16Storage") => Global::Storage(StorageKind::Float(Dtype::Bf16)),
        ("torch", "LongStorage") => Global::Storage(StorageKind::Integer { size_bytes: 8 }),
        ("torch", "IntStorage") => Global::Storage(StorageKind::Integer { size_bytes: 4 }),
        _ => return None,
    })
}

#[derive(Debug, Clone, PartialEq)]
struct Storage {
    kind: StorageKind,
    key: String,
    numel: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage: Storage,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    Str(String),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(Storage),
    Tensor(TensorRef),
}

/// The tensors of a checkpoint: float ones as a table of byte ranges in the file (as
/// [`super::weights::SafetensorsHeader::tensors`]), integer buffers only named.
#[derive(Debug, Clone, PartialEq)]
pub struct TorchTable {
    pub tensors: BTreeMap<String, TensorInfo>,
    pub integer_buffers: Vec<String>,
    /// The zip's CRC-32 of each float tensor that fills its storage member exactly (as
    /// every tensor of a `torch.save`d state dict does unless two share a storage): a
    /// ranged reader checks each one as it reads it ([`TorchTable::check`]).
    pub crcs: BTreeMap<String, u32>,
}

impl TorchTable {
    /// Checks the bytes read for tensor `name` against its member's CRC-32, where it has one.
    pub fn check(&self, name: &str, bytes: &[u8], file: &str) -> Result<(), TorchBinError> {
        match self.crcs.get(name) {
            Some(crc) if zip::crc32(bytes) != *crc => Err(TorchBinError::Zip {
                file: file.into(),
                source: ZipError::CrcMismatch {
                    name: name.to_owned(),
                },
            }),
            _ => Ok(()),
        }
    }
}

/// Reads the table of a whole checkpoint file (`file` names it in errors); every member
/// is CRC-checked.
pub fn read_table(bytes: &[u8], file: &str) -> Result<TorchTable, TorchBinError> {
    if !zip::is_archive(bytes) {
        return Err(TorchBinError::NotZip { file: file.into() });
    }
    let zip_err = |source| TorchBinError::Zip {
        file: file.into(),
        source,
    };
    let members = zip::read_located(bytes).map_err(zip_err)?;
    zip::now_or_never(table_of(&members, file, zip::memory_reader(bytes))).unwrap_or_else(|| {
        Err(zip_err(ZipError::Unreadable {
            reason: "it waited".into(),
        }))
    })
}

/// Reads the table of a checkpoint of `len_bytes` through `read` (byte ranges of the
/// file), for files not held in memory: the zip's directory and headers, `data.pkl` and
/// `byteorder` (both CRC-checked), never a storage. The storages' own CRCs are in
/// [`TorchTable::crcs`], for the caller to check as it reads each tensor.
pub async fn read_table_ranged<F, Fut>(
    len_bytes: u64,
    file: &str,
    read: F,
) -> Result<TorchTable, TorchBinError>
where
    F: Fn(Range<u64>) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
{
    let (members, _) =
        zip::locate_ranged(len_bytes, &read)
            .await
            .map_err(|source| match source {
                ZipError::NotAnArchive => TorchBinError::NotZip { file: file.into() },
                source => TorchBinError::Zip {
                    file: file.into(),
                    source,
                },
            })?;
    table_of(&members, file, read).await
}

/// The table, once the members are placed: reads `data.pkl` and `byteorder` whole.
async fn table_of<F, Fut>(
    members: &[zip::Located],
    file: &str,
    read: F,
) -> Result<TorchTable, TorchBinError>
where
    F: Fn(Range<u64>) -> Fut,
    Fut: Future<Output = Result<Vec<u8>, String>>,
{
    let whole = |m: &zip::Located| {
        let fut = read(m.data.clone());
        let (name, crc) = (m.name.clone(), m.crc);
        async move {
            let zip_err = |source| TorchBinError::Zip {
                file: file.into(),
                source,
            };
            let bytes = fut
                .await
                .map_err(|reason| zip_err(ZipError::Unreadable { reason }))?;
            if zip::crc32(&bytes) != crc {
                return Err(zip_err(ZipError::CrcMismatch { name }));
            }
            Ok(bytes)
        }
    };
    let pkl = members
        .iter()
        .find(|m| m.name == "data.pkl" || m.name.ends_with("/data.pkl"))
        .ok_or_else(|| TorchBinError::Missing {
            file: file.into(),
            what: "data.pkl".into(),
        })?;
    let root = pkl.name.trim_end_matches("data.pkl");
    stored(pkl, file)?;
    let order_name = format!("{root}byteorder");
    if let Some(order) = members.iter().find(|m| m.name == order_name) {
        if whole(order).await? != b"little" {
            return Err(TorchBinError::BigEndian { file: file.into() });
        }
    }
    let pkl_bytes = whole(pkl).await?;
    let dict = Machine::new(&pkl_bytes, file).run()?;
    entries_table(dict, members, root, file)
}

/// PyTorch stores every member uncompressed; anything else is not its checkpoint.
fn stored(m: &zip::Located, file: &str) -> Result<(), TorchBinError> {
    if m.method == 0 {
        Ok(())
    } else {
        Err(TorchBinError::Compressed {
            file: file.into(),
            member: m.name.clone(),
        })
    }
}

/// The tensors of the unpickled dict, each placed in its storage member.
fn entries_table(
    dict: Vec<(Value, Value)>,
    members: &[zip::Located],
    root: &str,
    file: &str,
) -> Result<TorchTable, TorchBinError> {
    let mut table = TorchTable {
        tensors: BTreeMap::new(),
        integer_buffers: Vec::new(),
        crcs: BTreeMap::new(),
    };
    for (key, value) in dict {
        let (Value::Str(name), Value::Tensor(t)) = (key, value) else {
            return Err(TorchBinError::Malformed {
                file: file.into(),
                at: 0,
                reason: "the state dict holds an entry that is not a named tensor".into(),
            });
        };
        let member_name = format!("{root}data/{}", t.storage.key);
        let member = members
            .iter()
            .find(|m| m.name == member_name)
            .ok_or_else(|| TorchBinError::Missing {
                file: file.into(),
                what: format!("storage `{member_name}` (of tensor `{name}`)"),
            })?;
        stored(member, file)?;
        let (offset_bytes, size_bytes) = place(&t, member, file, &name)?;
        match t.storage.kind {
            StorageKind::Float(dtype) => {
                if (offset_bytes..offset_bytes + size_bytes) == member.data {
                    table.crcs.insert(name.clone(), member.crc);
                }
                let shape = t.shape.iter().map(|d| *d as usize).collect();
                let info = TensorInfo {
                    dtype,
                    shape,
                    offset_bytes,
                    size_bytes,
                };
                table.tensors.insert(name, info);
            }
            StorageKind::Integer { .. } => table.integer_buffers.push(name),
        }
    }
    Ok(table)
}

/// Where tensor `t` lies in the file (byte offset, byte length), after every bound is checked.
fn place(
    t: &TensorRef,
    member: &zip::Located,
    file: &str,
    name: &str,
) -> Result<(u64, u64), TorchBinError> {
    let member_len = member.data.end - member.data.start;
    let bad = |reason: String| TorchBinError::Tensor {
        file: file.into(),
        tensor: name.into(),
        reason,
    };
    let elem = t.storage.kind.size_bytes();
    if t.storage.numel.checked_mul(elem) != Some(member_len) {
        return Err(bad(format!(
            "has a storage of {} elements of {elem} bytes, but its member holds {} bytes",
            t.storage.numel, member_len
        )));
    }
    if t.shape.len() != t.stride.len() {
        return Err(bad(
            "has a stride for each of a different number of dimensions".into(),
        ));
    }
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .ok_or_else(|| bad("has a shape whose size overflows".into()))?;
    // Row-major strides; dimensions of size 1 may carry any stride (PyTorch leaves them).
    let mut want = 1u64;
    for (d, s) in t.shape.iter().zip(&t.stride).rev() {
        if *d != 1 && *s != want {
            return Err(bad(format!(
                "is not stored contiguously (shape {:?}, strides {:?}); only contiguous tensors are read",
                t.shape, t.stride
            )));
        }
        want = want.saturating_mul(*d);
    }
    if t.offset
        .checked_add(numel)
        .is_none_or(|e| e > t.storage.numel)
    {
        return Err(bad(format!(
            "lies outside its storage (offset {}, {numel} elements, a storage of {})",
            t.offset, t.storage.numel
        )));
    }
    Ok((member.data.start + t.offset * elem, numel * elem))
}

/// The pickle stack machine (only the state-dict subset; see the module docs).
struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    file: &'a str,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl<'a> Machine<'a> {
    fn new(bytes: &'a [u8], file: &'a str) -> Self {
        Self {
            bytes,
            at: 0,
            file,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> TorchBinError {
        TorchBinError::Malformed {
            file: self.file.into(),
            at: self.at,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], TorchBinError> {
        let bytes = self.bytes;
        let out = self
            .at
            .checked_add(n)
            .and_then(|end| bytes.get(self.at..end))
            .ok_or_else(|| self.malformed("the pickle ends in the middle of an opcode"))?;
        self.at += n;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, TorchBinError> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    fn text(&mut self, len: u64) -> Result<String, TorchBinError> {
        let len = usize::try_from(len).map_err(|_| self.malformed("a string is too long"))?;
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.malformed("a string is not UTF-8"))
    }

    fn line(&mut self) -> Result<String, TorchBinError> {
        let rest = self.bytes.get(self.at..).unwrap_or(&[]);
        let len = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| self.malformed("a GLOBAL name has no end"))?;
        let s = self.text(len as u64)?;
        self.at += 1;
        Ok(s)
    }

    fn push(&mut self, v: Value) -> Result<(), TorchBinError> {
        if self.stack.len() >= MAX_ITEMS {
            return Err(self.malformed("the stack grows beyond any state dict"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn pop(&mut self) -> Result<Value, TorchBinError> {
        self.stack
            .pop()
            .ok_or_else(|| self.malformed("an opcode pops an empty stack"))
    }

    /// Everything above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, TorchBinError> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
            .ok_or_else(|| self.malformed("no MARK for a TUPLE or SETITEMS"))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn memo_put(&mut self, key: u32) -> Result<(), TorchBinError> {
        let top = self
            .stack
            .last()
            .cloned()
            .ok_or_else(|| self.malformed("PUT on an empty stack"))?;
        if self.memo.len() >= MAX_ITEMS {
            return Err(self.malformed("the memo grows beyond any state dict"));
        }
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), TorchBinError> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.malformed(format!("GET of memo entry {key}, never PUT")))?;
        self.push(v)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), TorchBinError> {
        let g = global(module, name).ok_or_else(|| TorchBinError::Global {
            file: self.file.into(),
            global: format!("{module}.{name}"),
        })?;
        self.push(Value::Global(g))
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), TorchBinError> {
        if !items.len().is_multiple_of(2) {
            return Err(self.malformed("SETITEMS with an odd number of items"));
        }
        if let Some(Value::Dict(dict)) = self.stack.last_mut() {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                dict.push((k, v));
            }
            return Ok(());
        }
        Err(self.malformed("SETITEM on something that is not a dict"))
    }

    /// Runs to STOP; the result must be a dict.
    fn run(mut self) -> Result<Vec<(Value, Value)>, TorchBinError> {
        loop {
            let start = self.at;
            let op = self.take(1)?[0];
            if op == b'.' {
                break;
            }
            let known = self.scalar(op)? || self.structure(op)?;
            if !known {
                return Err(TorchBinError::Opcode {
                    file: self.file.into(),
                    opcode: op,
                    name: opcode_name(op),
                    at: start,
                });
            }
        }
        match self.stack.pop() {
            Some(Value::Dict(d)) if self.stack.is_empty() => Ok(d),
            _ => Err(self.malformed("the pickle does not end with one dict")),
        }
    }

    /// Opcodes that push one constant, number or string (or only frame the stream).
    fn scalar(&mut self, op: u8) -> Result<bool, TorchBinError> {
        let v = match op {
            0x80 => {
                self.uint(1)?; // PROTO
                return Ok(true);
            }
            0x95 => {
                self.uint(8)?; // FRAME
                return Ok(true);
            }
            b'(' => Value::Mark,
            b'}' => Value::Dict(Vec::new()),
            b')' => Value::Tuple(Vec::new()),
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'K' => Value::Int(self.uint(1)? as i64),
            b'M' => Value::Int(self.uint(2)? as i64),
            b'J' => Value::Int(i64::from(self.uint(4)? as u32 as i32)),
            0x8a => Value::Int(self.long1()?),
            b'X' => {
                let n = self.uint(4)?;
                Value::Str(self.text(n)?)
            }
            0x8c => {
                let n = self.uint(1)?;
                Value::Str(self.text(n)?)
            }
            0x8d => {
                let n = self.uint(8)?;
                Value::Str(self.text(n)?)
            }
            _ => return Ok(false),
        };
        self.push(v)?;
        Ok(true)
    }

    /// LONG1: a little-endian two's-complement integer of at most 8 bytes.
    fn long1(&mut self) -> Result<i64, TorchBinError> {
        let n = self.uint(1)? as usize;
        if n > 8 {
            return Err(self.malformed("an integer wider than 64 bits"));
        }
        let b = self.take(n)?;
        let mut v = b
            .iter()
            .rev()
            .fold(0i64, |acc, x| (acc << 8) | i64::from(*x));
        if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
            v -= 1i64 << (8 * n);
        }
        Ok(v)
    }

    /// Opcodes that use the memo, build tuples and dicts, or call an allowed global.
    fn structure(&mut self, op: u8) -> Result<bool, TorchBinError> {
        match op {
            b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'q' => self.uint(1)? as u32,
                    b'r' => self.uint(4)? as u32,
                    _ => self.memo.len() as u32,
                };
                self.memo_put(k)?;
            }
            b'h' | b'j' => {
                let k = self.uint(if op == b'h' { 1 } else { 4 })? as u32;
                self.memo_get(k)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(&module, &name)?;
            }
            0x93 => {
                let (Value::Str(name), Value::Str(module)) = (self.pop()?, self.pop()?) else {
                    return Err(self.malformed("STACK_GLOBAL needs two strings"));
                };
                self.global(&module, &name)?;
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items))?;
            }
            0x85..=0x87 => self.small_tuple(usize::from(op - 0x84))?,
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let storage = self.persistent(pid)?;
                self.push(Value::Storage(storage))?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = self.reduce(callable, args)?;
                self.push(v)?;
            }
            b'b' => {
                // OrderedDict state (`_metadata`): read and dropped.
                self.pop()?;
                if !matches!(self.stack.last(), Some(Value::Dict(_))) {
                    return Err(self.malformed("BUILD on something that is not the dict"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// TUPLE1..TUPLE3.
    fn small_tuple(&mut self, n: usize) -> Result<(), TorchBinError> {
        if self.stack.len() < n {
            return Err(self.malformed("TUPLE of more items than the stack has"));
        }
        let items = self.stack.split_off(self.stack.len() - n);
        if items.contains(&Value::Mark) {
            return Err(self.malformed("a MARK inside a tuple"));
        }
        self.push(Value::Tuple(items))
    }

    /// `('storage', <storage class>, key, location, numel)`.
    fn persistent(&self, pid: Value) -> Result<Storage, TorchBinError> {
        let Value::Tuple(items) = pid else {
            return Err(self.malformed("a persistent id that is not a tuple"));
        };
        match items.as_slice() {
            [Value::Str(tag), Value::Global(Global::Storage(kind)), Value::Str(key), Value::Str(_location), Value::Int(numel)]
                if tag == "storage" && *numel >= 0 =>
            {
                Ok(Storage {
                    kind: *kind,
                    key: key.clone(),
                    numel: *numel as u64,
                })
            }
            _ => Err(self.malformed("a persistent id that is not a storage")),
        }
    }

    fn reduce(&self, callable: Value, args: Value) -> Result<Value, TorchBinError> {
        let Value::Tuple(args) = args else {
            return Err(self.malformed("REDUCE arguments that are not a tuple"));
        };
        match callable {
            Value::Global(Global::OrderedDict) if args.is_empty() => Ok(Value::Dict(Vec::new())),
            Value::Global(Global::RebuildTensor) => self.rebuild_tensor(args),
            _ => Err(self
                .malformed("REDUCE of something other than OrderedDict() or _rebuild_tensor_v2")),
        }
    }

    /// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    fn rebuild_tensor(&self, args: Vec<Value>) -> Result<Value, TorchBinError> {
        let dims = |v: &Value| -> Option<Vec<u64>> {
            let Value::Tuple(items) = v else { return None };
            items
                .iter()
                .map(|x| match x {
                    Value::Int(i) if *i >= 0 => Some(*i as u64),
                    _ => None,
                })
                .collect()
        };
        match args.as_slice() {
            [Value::Storage(s), Value::Int(offset), size, stride, Value::Bool(_), Value::Dict(hooks), rest @ ..]
                if *offset >= 0 && hooks.is_empty() && rest.len() <= 1 =>
            {
                let (Some(shape), Some(stride)) = (dims(size), dims(stride)) else {
                    return Err(
                        self.malformed("a tensor's size or stride is not a tuple of integers")
                    );
                };
                Ok(Value::Tensor(TensorRef {
                    storage: s.clone(),
                    offset: *offset as u64,
                    shape,
                    stride,
                }))
            }
            _ => Err(self.malformed("_rebuild_tensor_v2 with arguments a state dict never has")),
        }
    }
}

/// `pickletools` names of the opcodes we refuse (for the error message).
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        b'G' => "BINFLOAT",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'L' => "LONG",
        b'S' => "STRING",
        b'V' => "UNICODE",
        b'T' | b'U' => "BINSTRING",
        b'B' | b'C' | 0x8e => "BINBYTES",
        b']' => "EMPTY_LIST",
        b'a' | b'e' => "APPEND",
        b'l' => "LIST",
        b'd' => "DICT",
        b'g' => "GET",
        b'p' => "PUT",
        b'0' | b'1' | b'2' => "POP/DUP",
        0x82..=0x84 => "EXT",
        0x8f..=0x91 => "SET/FROZENSET",
        0x96..=0x98 => "BYTEARRAY/BUFFER",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// One entry of a hand-written state dict: name, storage class, storage key, storage
    /// elements, offset, shape, stride.
    struct Entry<'a> {
        name: &'a str,
        class: &'a str,
        key: &'a str,
        numel: u8,
        offset: u8,
        shape: &'a [u8],
        stride: &'a [u8],
    }

    fn unicode(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    fn int_tuple(out: &mut Vec<u8>, v: &[u8]) {
        out.push(b'(');
        for x in v {
            out.extend_from_slice(&[b'K', *x]);
        }
        out.push(b't');
    }

    /// The pickle `torch.save(state_dict)` writes (protocol 2), memo and all.
    fn pickle(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(".to_vec();
        for (i, e) in entries.iter().enumerate() {
            unicode(&mut p, e.name);
            if i == 0 {
                p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02");
            } else {
                p.extend_from_slice(b"h\x02");
            }
            p.extend_from_slice(b"((");
            unicode(&mut p, "storage");
            p.extend_from_slice(format!("ctorch\n{}\n", e.class).as_bytes());
            unicode(&mut p, e.key);
            unicode(&mut p, "cpu");
            p.extend_from_slice(&[b'K', e.numel, b't', b'Q', b'K', e.offset]);
            int_tuple(&mut p, e.shape);
            int_tuple(&mut p, e.stride);
            p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)Rtq\x10R");
        }
        // SETITEMS, then the `_metadata` state BUILT onto the dict, as PyTorch does.
        p.extend_from_slice(b"u}(X\x09\x00\x00\x00_metadata}ub.");
        p
    }

    fn checkpoint(pkl: &[u8], storages: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, ZipError> {
        let mut members: Vec<(String, Vec<u8>)> = vec![
            ("archive/data.pkl".into(), pkl.to_vec()),
            ("archive/byteorder".into(), b"little".to_vec()),
        ];
        for (key, data) in storages {
            members.push((format!("archive/data/{key}"), data.clone()));
        }
        members.push(("archive/version".into(), b"3\n".to_vec()));
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        zip::write_stored(&refs)
    }

    fn replace_once(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let at = bytes
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or(bytes.len());
        let mut out = bytes[..at].to_vec();
        out.extend_from_slice(to);
        out.extend_from_slice(bytes.get(at + from.len()..).unwrap_or(&[]));
        out
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn good() -> Vec<Entry<'static>> {
        vec![
            Entry {
                name: "linear.weight",
                class: "FloatStorage",
                key: "0",
                numel: 6,
                offset: 0,
                shape: &[2, 3],
                stride: &[3, 1],
            },
            Entry {
                name: "linear.bias",
                class: "FloatStorage",
                key: "1",
                numel: 4,
                offset: 1,
                shape: &[2],
                stride: &[1],
            },
            Entry {
                name: "position_ids",
                class: "LongStorage",
                key: "2",
                numel: 3,
                offset: 0,
                shape: &[1, 3],
                stride: &[3, 1],
            },
        ]
    }

    fn good_storages() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("0", f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ("1", f32_bytes(&[9.0, 0.5, -0.5, 9.0])),
            (
                "2",
                [0i64, 1, 2].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ]
    }

    fn read(
        entries: &[Entry<'_>],
        storages: &[(&str, Vec<u8>)],
    ) -> Result<TorchTable, TorchBinError> {
        let bytes =
            checkpoint(&pickle(entries), storages).map_err(|source| TorchBinError::Zip {
                file: "t".into(),
                source,
            })?;
        read_table(&bytes, "t")
    }

    #[test]
    fn a_state_dict_gives_its_tensors_byte_ranges() -> TestResult {
        let bytes = checkpoint(&pickle(&good()), &good_storages())?;
        let table = read_table(&bytes, "pytorch_model.bin")?;
        let names: Vec<&str> = table.tensors.keys().map(String::as_str).collect();
        assert_eq!(names, ["linear.bias", "linear.weight"]);
        assert_eq!(table.integer_buffers, ["position_ids"]);
        let w = &table.tensors["linear.weight"];
        assert_eq!(
            (w.dtype, w.shape.as_slice(), w.size_bytes),
            (Dtype::F32, &[2, 3][..], 24)
        );
        let at =
            |info: &TensorInfo| &bytes[info.offset_bytes as usize..][..info.size_bytes as usize];
        assert_eq!(at(w), f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).as_slice());
        // The bias starts one element into its storage.
        assert_eq!(
            at(&table.tensors["linear.bias"]),
            f32_bytes(&[0.5, -0.5]).as_slice()
        );
        Ok(())
    }

    #[test]
    fn an_unknown_global_is_refused_by_name_and_never_run() -> TestResult {
        for (from, to, global) in [
            (
                "ccollections\nOrderedDict\nq\x00",
                "cos\nsystem\nq\x00",
                "os.system",
            ),
            (
                "ctorch._utils\n_rebuild_tensor_v2\n",
                "cbuiltins\neval\n",
                "builtins.eval",
            ),
            (
                "ctorch\nFloatStorage\n",
                "ctorch\nByteStorage\n",
                "torch.ByteStorage",
            ),
        ] {
            let pkl = replace_once(&pickle(&good()), from.as_bytes(), to.as_bytes());
            let bytes = checkpoint(&pkl, &good_storages())?;
            match read_table(&bytes, "evil.bin") {
                Err(TorchBinError::Global { global: g, .. }) => assert_eq!(g, global),
                other => panic!("{global}: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn opcodes_a_state_dict_never_uses_are_refused() -> TestResult {
        for (op, name) in [
            (b'i', "INST"),
            (0x81, "NEWOBJ"),
            (b'o', "OBJ"),
            (b'P', "PERSID"),
        ] {
            let mut pkl = pickle(&good());
            pkl.insert(2, op);
            let bytes = checkpoint(&pkl, &good_storages())?;
            match read_table(&bytes, "evil.bin") {
                Err(TorchBinError::Opcode { name: n, at: 2, .. }) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        // A REDUCE of an allowed class that is not a callable we know.
        let mut pkl = b"\x80\x02ctorch\nFloatStorage\n)R".to_vec();
        pkl.push(b'.');
        let bytes = checkpoint(&pkl, &[])?;
        assert!(matches!(
            read_table(&bytes, "x"),
            Err(TorchBinError::Malformed { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_truncated_or_non_zip_file_is_refused() -> TestResult {
        let bytes = checkpoint(&pickle(&good()), &good_storages())?;
        for cut in [bytes.len() - 1, bytes.len() - 30, bytes.len() / 2, 40] {
            assert!(
                matches!(
                    read_table(&bytes[..cut], "cut.bin"),
                    Err(TorchBinError::Zip { .. })
                ),
                "cut at {cut}"
            );
        }
        // A legacy (pre-1.6) checkpoint starts with a pickle, not a zip.
        assert!(matches!(
            read_table(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.", "old.bin"),
            Err(TorchBinError::NotZip { .. })
        ));
        // A pickle cut short inside the archive.
        let pkl = pickle(&good());
        let bytes = checkpoint(&pkl[..pkl.len() / 2], &good_storages())?;
        assert!(matches!(
            read_table(&bytes, "x"),
            Err(TorchBinError::Malformed { .. })
        ));
        Ok(())
    }

    #[test]
    fn tensors_outside_their_storage_or_strided_are_refused() -> TestResult {
        type Edit = fn(&mut Vec<Entry<'static>>, &mut Vec<(&'static str, Vec<u8>)>);
        let cases: [(&str, Edit); 5] = [
            ("offset past the storage", |e, _| e[1].offset = 3),
            ("declares more elements than its member", |e, _| {
                e[0].numel = 7
            }),
            ("member shorter than declared", |_, s| s[0].1.truncate(20)),
            ("transposed strides", |e, _| e[0].stride = &[1, 2]),
            ("storage missing", |_, s| {
                s.remove(1);
            }),
        ];
        for (what, edit) in cases {
            let (mut entries, mut storages) = (good(), good_storages());
            edit(&mut entries, &mut storages);
            match read(&entries, &storages) {
                Err(TorchBinError::Tensor { .. } | TorchBinError::Missing { .. }) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn big_endian_and_compressed_checkpoints_are_refused() -> TestResult {
        let pkl = pickle(&good());
        let members = [
            ("archive/data.pkl", pkl.as_slice()),
            ("archive/byteorder", &b"big"[..]),
        ];
        let bytes = zip::write_stored(&members)?;
        assert!(matches!(
            read_table(&bytes, "x"),
            Err(TorchBinError::BigEndian { .. })
        ));
        let mut bytes = checkpoint(&pkl, &good_storages())?;
        let central = (0..bytes.len() - 4)
            .find(|&i| bytes[i..i + 4] == zip::CENTRAL_SIG.to_le_bytes())
            .ok_or("central")?;
        bytes[central + 10] = 8; // data.pkl deflated
        assert!(matches!(
            read_table(&bytes, "x"),
            Err(TorchBinError::Compressed { .. })
        ));
        Ok(())
    }

    /// The table read by byte range, and every range that was read.
    fn ranged(bytes: &[u8]) -> (Result<TorchTable, TorchBinError>, Vec<Range<u64>>) {
        let reads = std::cell::RefCell::new(Vec::new());
        let read = |r: Range<u64>| {
            reads.borrow_mut().push(r.clone());
            let got = bytes
                .get(r.start as usize..r.end as usize)
                .map(<[u8]>::to_vec);
            std::future::ready(got.ok_or_else(|| "outside".to_string()))
        };
        let table = zip::now_or_never(read_table_ranged(bytes.len() as u64, "t", read))
            .unwrap_or_else(|| Err(TorchBinError::NotZip { file: "t".into() }));
        (table, reads.into_inner())
    }

    #[test]
    fn ranged_reads_give_the_whole_reads_table_without_reading_a_storage() -> TestResult {
        let fixture = std::fs::read("tests/fixtures/multilingual-tiny-bin/pytorch_model.bin")?;
        let synthetic = checkpoint(&pickle(&good()), &good_storages())?;
        for bytes in [fixture, synthetic] {
            let whole = read_table(&bytes, "t")?;
            let (table, reads) = ranged(&bytes);
            let table = table?;
            assert_eq!(table, whole);
            assert!(!table.tensors.is_empty());
            // Besides its first bytes and its tail, only the directory, the local
            // headers, data.pkl and byteorder are read: never a tensor's bytes.
            let tail = zip::tail_range(bytes.len() as u64);
            let structure: Vec<&Range<u64>> = reads
                .iter()
                .filter(|r| **r != (0..4) && **r != tail)
                .collect();
            for (name, info) in &table.tensors {
                let tensor = info.offset_bytes..info.offset_bytes + info.size_bytes;
                let touched = structure
                    .iter()
                    .any(|r| r.start < tensor.end && tensor.start < r.end);
                assert!(!touched, "{name} was read");
                let at = &bytes[tensor.start as usize..tensor.end as usize];
                table.check(name, at, "t")?;
            }
        }
        Ok(())
    }

    #[test]
    fn each_tensor_filling_its_storage_carries_its_crc() -> TestResult {
        let bytes = checkpoint(&pickle(&good()), &good_storages())?;
        let (table, _) = ranged(&bytes);
        let table = table?;
        // The weight fills storage 0; the bias is a view one element into storage 1.
        assert_eq!(table.crcs.keys().collect::<Vec<_>>(), ["linear.weight"]);
        let w = &table.tensors["linear.weight"];
        let mut at = bytes[w.offset_bytes as usize..][..w.size_bytes as usize].to_vec();
        table.check("linear.weight", &at, "t")?;
        at[3] ^= 1;
        assert!(matches!(
            table.check("linear.weight", &at, "t"),
            Err(TorchBinError::Zip {
                source: ZipError::CrcMismatch { .. },
                ..
            })
        ));
        // A damaged pickle is caught by the ranged read too (it is read whole).
        let pkl_at = 30 + "archive/data.pkl".len() + 5;
        let mut flipped = bytes.clone();
        flipped[pkl_at] ^= 1;
        assert!(matches!(
            ranged(&flipped).0,
            Err(TorchBinError::Zip {
                source: ZipError::CrcMismatch { .. },
                ..
            })
        ));
        assert!(matches!(
            ranged(b"not a zip at all").0,
            Err(TorchBinError::NotZip { .. })
        ));
        Ok(())
    }
}
