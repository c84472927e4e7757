// Workgroup reductions shared by the layernorm, attention and pool kernels (the Rust side
// puts this file between the header and the kernel): a tree over `partial` in workgroup
// memory, in f32; every invocation gets the result, and `partial` is free again on return.
//
// Header: WG (the workgroup size, a power of two).

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the workgroup.
fn workgroup_sum(v: f32, li: u32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (li < stride) {
            partial[li] += partial[li + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

// Largest `v` over the workgroup.
fn workgroup_max(v: f32, li: u32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (li < stride) {
            partial[li] = max(partial[li], partial[li + stride]);
        }
        workgroupBarrier();
    }
    let m = partial[0];
    workgroupBarrier();
    return m;
}
