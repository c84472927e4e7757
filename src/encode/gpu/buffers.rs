//! Device buffers: uploads in the engine's precision (f32, or f16 converted on the CPU),
//! checked against the device's binding limits before anything is created; reading results
//! back through a mapped staging buffer; and waiting for the device. Waiting blocks only
//! natively (`device.poll`); in the browser the same futures are awaited and the event loop
//! drives them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wgpu::util::DeviceExt;

use super::kernels::Precision;
use super::GpuError;

pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_DST)
    .union(wgpu::BufferUsages::COPY_SRC);

/// f32 values as bytes of `precision` (f16 rounds to nearest even).
pub fn to_bytes(data: &[f32], precision: Precision) -> Vec<u8> {
    match precision {
        Precision::F32 => bytemuck::cast_slice(data).to_vec(),
        Precision::F16 => data
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
    }
}

/// Bytes of `precision` back to f32.
pub fn from_bytes(bytes: &[u8], precision: Precision) -> Vec<f32> {
    match precision {
        Precision::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Precision::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}

/// Fails with the buffer's name if `size_bytes` exceeds what one binding may hold.
pub fn check_size(limits: &wgpu::Limits, what: &str, size_bytes: u64) -> Result<(), GpuError> {
    let limit = limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size);
    if size_bytes > limit {
        return Err(GpuError::Limits {
            what: format!("{what} (bytes in one storage binding)"),
            needed: size_bytes,
            limit,
        });
    }
    Ok(())
}

/// Bytes rounded up to what a storage binding accepts (a multiple of 16, at least 16).
pub fn padded(size_bytes: u64) -> u64 {
    size_bytes.div_ceil(16).max(1) * 16
}

/// Creates a storage buffer holding `bytes` (padded).
pub fn upload_bytes(
    device: &wgpu::Device,
    limits: &wgpu::Limits,
    what: &str,
    bytes: &[u8],
) -> Result<wgpu::Buffer, GpuError> {
    let size = padded(bytes.len() as u64);
    check_size(limits, what, size)?;
    let mut contents = bytes.to_vec();
    contents.resize(size as usize, 0);
    Ok(
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(what),
            contents: &contents,
            usage: STORAGE,
        }),
    )
}

/// Creates a storage buffer holding `data` in `precision`.
pub fn upload(
    device: &wgpu::Device,
    limits: &wgpu::Limits,
    what: &str,
    data: &[f32],
    precision: Precision,
) -> Result<wgpu::Buffer, GpuError> {
    upload_bytes(device, limits, what, &to_bytes(data, precision))
}

/// An uninitialised storage buffer of at least `size_bytes`.
pub fn storage(
    device: &wgpu::Device,
    limits: &wgpu::Limits,
    what: &str,
    size_bytes: u64,
) -> Result<wgpu::Buffer, GpuError> {
    let size = padded(size_bytes);
    check_size(limits, what, size)?;
    Ok(device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(what),
        size,
        usage: STORAGE,
        mapped_at_creation: false,
    }))
}

/// A buffer the CPU can map for reading, `size_bytes` rounded up to 4.
pub fn staging(device: &wgpu::Device, size_bytes: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("clipseek readback"),
        size: size_bytes.div_ceil(4).max(1) * 4,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

type MapResult = Result<(), wgpu::BufferAsyncError>;

#[derive(Default)]
struct Shared {
    result: Option<MapResult>,
    waker: Option<Waker>,
}

/// Resolves when a `map_async` callback fires.
struct MapFuture(Arc<Mutex<Shared>>);

impl Future for MapFuture {
    type Output = MapResult;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MapResult> {
        let Ok(mut s) = self.0.lock() else {
            return Poll::Ready(Err(wgpu::BufferAsyncError));
        };
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Maps `buffer` (all of it) for reading and copies its bytes out.
pub async fn read_mapped(buffer: &wgpu::Buffer) -> Result<Vec<u8>, GpuError> {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let for_callback = shared.clone();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        if let Ok(mut s) = for_callback.lock() {
            s.result = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    });
    MapFuture(shared).await.map_err(|e| GpuError::Readback {
        message: e.to_string(),
    })?;
    let bytes = {
        let view = buffer
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback {
                message: e.to_string(),
            })?;
        view.to_vec()
    };
    buffer.unmap();
    Ok(bytes)
}

/// Runs `future` to completion natively, letting the device make progress between polls.
/// `None` if the device stopped answering (lost) while the future still waited.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: Future>(device: &wgpu::Device, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    let mut idle_polls = 0;
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match device.poll(wgpu::PollType::wait_indefinitely()) {
            Ok(wgpu::PollStatus::QueueEmpty) => {
                idle_polls += 1;
                if idle_polls > 3 {
                    return None;
                }
            }
            Ok(_) => idle_polls = 0,
            Err(_) => return None,
        }
    }
}
