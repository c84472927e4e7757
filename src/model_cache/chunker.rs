//! How a model file is cut into the chunks of the model cache: the layout of a file in
//! chunks, the runs of missing chunks that one Range request each fetches, the
//! `Content-Range` header of a ranged answer, and the [`Assembler`] that cuts a streamed
//! answer into complete chunks with their SHA-256.
//!
//! It must not fetch or store anything (the download engine and the [`super::ChunkStore`]
//! do that); every rule here is tested natively. Reference: RFC 9110 §14 (Range,
//! Content-Range).

use std::ops::Range;

use sha2::{Digest, Sha256};

/// A `Content-Range: bytes FIRST-LAST/TOTAL` header (`TOTAL` may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    /// Inclusive.
    pub last: u64,
    pub total: Option<u64>,
}

impl ContentRange {
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim().strip_prefix("bytes")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let (first, last) = range.trim().split_once('-')?;
        let first: u64 = first.trim().parse().ok()?;
        let last: u64 = last.trim().parse().ok()?;
        let total = match total.trim() {
            "*" => None,
            t => Some(t.parse().ok()?),
        };
        if last < first || total.is_some_and(|t| last >= t) {
            return None;
        }
        Some(Self { first, last, total })
    }

    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How a file of `size_bytes` is cut into chunks of `chunk_bytes` (the last may be short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLayout {
    pub size_bytes: u64,
    pub chunk_bytes: u64,
}

impl ChunkLayout {
    pub fn new(size_bytes: u64, chunk_bytes: u64) -> Self {
        Self {
            size_bytes,
            chunk_bytes: chunk_bytes.max(1),
        }
    }

    pub fn count(&self) -> u64 {
        self.size_bytes.div_ceil(self.chunk_bytes)
    }

    /// Byte range of chunk `index` in the file.
    pub fn range(&self, index: u64) -> Range<u64> {
        let start = index.saturating_mul(self.chunk_bytes).min(self.size_bytes);
        let end = start.saturating_add(self.chunk_bytes).min(self.size_bytes);
        start..end
    }

    pub fn len_of(&self, index: u64) -> u64 {
        let r = self.range(index);
        r.end - r.start
    }

    /// The chunks that overlap `bytes` (empty for an empty range).
    pub fn covering(&self, bytes: Range<u64>) -> Range<u64> {
        if bytes.start >= bytes.end {
            return 0..0;
        }
        let first = bytes.start / self.chunk_bytes;
        let last = (bytes.end - 1) / self.chunk_bytes;
        first..(last + 1).min(self.count())
    }

    /// The runs of consecutive chunks not in `have` (sorted ascending), in order: each run
    /// is fetched with one Range request.
    pub fn missing_runs(&self, have: &[u64]) -> Vec<Range<u64>> {
        let mut runs = Vec::new();
        let mut start = None;
        let mut have_iter = have.iter().copied().peekable();
        for i in 0..self.count() {
            while have_iter.peek().is_some_and(|&h| h < i) {
                have_iter.next();
            }
            let present = have_iter.peek() == Some(&i);
            match (present, start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    runs.push(s..i);
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            runs.push(s..self.count());
        }
        runs
    }

    /// The bytes of chunks `chunks`.
    pub fn bytes_of(&self, chunks: &Range<u64>) -> Range<u64> {
        let start = self.range(chunks.start).start;
        let end = self.range(chunks.end.saturating_sub(1)).end;
        start..end.max(start)
    }
}

/// The `Range` header value for chunks `chunks` of `layout`.
pub fn range_header(layout: &ChunkLayout, chunks: &Range<u64>) -> String {
    let bytes = layout.bytes_of(chunks);
    format!("bytes={}-{}", bytes.start, bytes.end.saturating_sub(1))
}

/// A chunk cut from a streamed answer, complete and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutChunk {
    pub index: u64,
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
}

/// Cuts the pieces of an answer into the chunks of one run. The answer starts `skip`
/// bytes before the run's first chunk (a server that ignored Range sends the file from
/// byte 0); bytes past the run's end are not used. A partial chunk is never given out.
#[derive(Debug, Clone)]
pub struct Assembler {
    layout: ChunkLayout,
    next: u64,
    end: u64,
    skip: u64,
    buffer: Vec<u8>,
    hasher: Sha256,
}

impl Assembler {
    pub fn new(layout: ChunkLayout, run: Range<u64>, skip: u64) -> Self {
        Self {
            layout,
            next: run.start,
            end: run.end.min(layout.count()),
            skip,
            buffer: Vec::new(),
            hasher: Sha256::new(),
        }
    }

    /// Whether every chunk of the run was given out.
    pub fn is_done(&self) -> bool {
        self.next >= self.end
    }

    /// Bytes of the chunk being filled.
    pub fn pending_bytes(&self) -> u64 {
        self.buffer.len() as u64
    }

    /// Takes one piece of the answer; returns the chunks it completed, in order.
    pub fn feed(&mut self, piece: &[u8]) -> Vec<CutChunk> {
        let mut done = Vec::new();
        let mut rest = piece;
        while !rest.is_empty() && !self.is_done() {
            if self.skip > 0 {
                let n = self.skip.min(rest.len() as u64) as usize;
                self.skip -= n as u64;
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
            if self.buffer.is_empty() {
                self.buffer
                    .reserve_exact(self.layout.len_of(self.next) as usize);
            }
            let want = (self.layout.len_of(self.next) - self.pending_bytes()) as usize;
            let n = want.min(rest.len());
            let (take, after) = rest.split_at(n);
            self.buffer.extend_from_slice(take);
            self.hasher.update(take);
            rest = after;
            if self.pending_bytes() == self.layout.len_of(self.next) {
                done.push(CutChunk {
                    index: self.next,
                    bytes: std::mem::take(&mut self.buffer),
                    sha256: std::mem::take(&mut self.hasher).finalize().into(),
                });
                self.next += 1;
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(
            ContentRange::parse("bytes 0-99/1000"),
            Some(ContentRange {
                first: 0,
                last: 99,
                total: Some(1000)
            })
        );
        assert_eq!(
            ContentRange::parse("bytes 10-19/*").map(|r| (r.len(), r.total)),
            Some((10, None))
        );
        assert_eq!(ContentRange::parse("bytes 5-4/10"), None);
        assert_eq!(ContentRange::parse("bytes 0-10/10"), None);
        assert_eq!(ContentRange::parse("items 0-1/2"), None);
        assert_eq!(ContentRange::parse("bytes */10"), None);
    }

    #[test]
    fn chunk_layout_and_missing_runs() {
        let l = ChunkLayout::new(10, 4);
        assert_eq!(l.count(), 3);
        assert_eq!(l.range(2), 8..10);
        assert_eq!(l.len_of(2), 2);
        assert_eq!(l.covering(3..9), 0..3);
        assert_eq!(l.covering(4..8), 1..2);
        assert_eq!(l.covering(5..5), 0..0);
        assert_eq!(l.missing_runs(&[]), vec![0..3]);
        assert_eq!(l.missing_runs(&[1]), vec![0..1, 2..3]);
        assert_eq!(l.missing_runs(&[0, 1, 2]), Vec::<Range<u64>>::new());
        assert_eq!(l.missing_runs(&[0, 2]), vec![1..2]);
        assert_eq!(range_header(&l, &(1..3)), "bytes=4-9");
        assert_eq!(range_header(&l, &(0..1)), "bytes=0-3");
        assert_eq!(l.bytes_of(&(1..3)), 4..10);
        let empty = ChunkLayout::new(0, 4);
        assert_eq!(empty.count(), 0);
        assert!(empty.missing_runs(&[]).is_empty());
    }

    fn file(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 13) as u8).collect()
    }

    #[test]
    fn assembler_cuts_any_piece_sizes_into_exact_chunks() {
        let data = file(1000);
        let layout = ChunkLayout::new(1000, 96);
        for piece in [1, 7, 96, 97, 333, 1000] {
            let mut a = Assembler::new(layout, 0..layout.count(), 0);
            let mut got = Vec::new();
            for p in data.chunks(piece) {
                got.extend(a.feed(p));
            }
            assert!(a.is_done(), "piece {piece}");
            assert_eq!(got.len() as u64, layout.count(), "piece {piece}");
            for c in &got {
                let r = layout.range(c.index);
                assert_eq!(c.bytes, data[r.start as usize..r.end as usize]);
                assert_eq!(c.sha256, <[u8; 32]>::from(Sha256::digest(&c.bytes)));
            }
        }
    }

    #[test]
    fn assembler_skips_the_bytes_before_the_run_and_ignores_those_after() {
        let data = file(1000);
        let layout = ChunkLayout::new(1000, 100);
        // A server that ignored Range: the whole file, of which chunks 3..5 are wanted.
        let mut a = Assembler::new(layout, 3..5, 300);
        let mut got = Vec::new();
        for p in data.chunks(64) {
            got.extend(a.feed(p));
        }
        assert_eq!(got.iter().map(|c| c.index).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(got[0].bytes, data[300..400]);
        assert_eq!(got[1].bytes, data[400..500]);
    }

    #[test]
    fn assembler_keeps_a_partial_chunk_to_itself() {
        let layout = ChunkLayout::new(10, 4);
        let mut a = Assembler::new(layout, 0..3, 0);
        assert!(a.feed(&[1, 2, 3]).is_empty());
        assert_eq!(a.pending_bytes(), 3);
        let done = a.feed(&[4, 5]);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].bytes, vec![1, 2, 3, 4]);
        assert_eq!(a.pending_bytes(), 1);
        assert!(!a.is_done());
        // The short last chunk.
        // One piece completes chunk 1 and the short last chunk 2.
        let done = a.feed(&[6, 7, 8, 9, 10]);
        assert_eq!(done.iter().map(|c| c.index).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(done[0].bytes, vec![5, 6, 7, 8]);
        assert_eq!(done[1].bytes, vec![9, 10]);
        assert!(a.is_done());
        assert!(a.feed(&[11]).is_empty(), "bytes past the run are not used");
    }
}
