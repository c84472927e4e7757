//! The pooled intermediate buffers. One set serves both towers and every batch shape: each
//! buffer grows to the largest size asked for so far and is never shrunk, and programs bind
//! whole buffers, so a program recorded for a small batch runs on the larger buffers too.
//! Growing replaces buffers, so the engine drops its recorded programs when it happens.

use super::buffers::storage;
use super::GpuError;

/// Bytes each buffer must hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    pub x: u64,
    pub y: u64,
    pub qkv: u64,
    pub ctx: u64,
    pub h: u64,
    pub pixels: u64,
    pub ids: u64,
    pub rows: u64,
    pub out: u64,
}

impl Needs {
    fn fields(&self) -> [u64; 9] {
        [
            self.x,
            self.y,
            self.qkv,
            self.ctx,
            self.h,
            self.pixels,
            self.ids,
            self.rows,
            self.out,
        ]
    }

    /// The largest single buffer.
    pub fn largest(&self) -> u64 {
        self.fields().into_iter().max().unwrap_or(0)
    }
}

pub(crate) struct Workspace {
    pub x: wgpu::Buffer,
    pub y: wgpu::Buffer,
    pub qkv: wgpu::Buffer,
    pub ctx: wgpu::Buffer,
    pub h: wgpu::Buffer,
    /// f32 input images.
    pub pixels: wgpu::Buffer,
    /// u32 token ids.
    pub ids: wgpu::Buffer,
    /// u32 row index of each item's pooled token.
    pub rows: wgpu::Buffer,
    /// f32 embeddings.
    pub out: wgpu::Buffer,
}

const NAMES: [&str; 9] = [
    "clipseek residual stream",
    "clipseek normalised activations",
    "clipseek q/k/v",
    "clipseek attention context",
    "clipseek MLP hidden",
    "clipseek pixels",
    "clipseek token ids",
    "clipseek pooled rows",
    "clipseek embeddings",
];

impl Workspace {
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> Result<Self, GpuError> {
        let b = |i: usize| storage(device, limits, NAMES[i], 16);
        Ok(Self {
            x: b(0)?,
            y: b(1)?,
            qkv: b(2)?,
            ctx: b(3)?,
            h: b(4)?,
            pixels: b(5)?,
            ids: b(6)?,
            rows: b(7)?,
            out: b(8)?,
        })
    }

    /// Grows buffers to `needs`; true if any buffer was replaced.
    pub fn ensure(
        &mut self,
        device: &wgpu::Device,
        limits: &wgpu::Limits,
        needs: &Needs,
    ) -> Result<bool, GpuError> {
        let mut grew = false;
        let slots = [
            &mut self.x,
            &mut self.y,
            &mut self.qkv,
            &mut self.ctx,
            &mut self.h,
            &mut self.pixels,
            &mut self.ids,
            &mut self.rows,
            &mut self.out,
        ];
        for ((slot, need), name) in slots.into_iter().zip(needs.fields()).zip(NAMES) {
            if need > slot.size() {
                *slot = storage(device, limits, name, need)?;
                grew = true;
            }
        }
        Ok(grew)
    }
}
