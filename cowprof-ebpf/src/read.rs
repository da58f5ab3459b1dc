//! Raw reads of kernel memory, and the current task: the leaf every
//! module that reads kernel structures builds on.
use core::ffi::c_void;

use aya_ebpf::{
    bindings::task_struct,
    helpers::{bpf_probe_read_kernel, generated as gen},
};

/// Reads a `T` at `base + offset` in kernel memory; `None` on a fault.
#[inline(always)]
pub fn try_read_at<T>(base: *const c_void, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel(base.cast::<u8>().add(offset as usize).cast::<T>()) }.ok()
}

/// Reads an integer or pointer at `base + offset` in kernel memory; zero on
/// a fault.
///
/// Branch-free on purpose: the helper zeroes its destination when the read
/// faults, so there is no second path for the verifier to explore. A branch
/// per read doubled the paths through a mapping read with every field.
#[inline(always)]
pub fn read_at<T: Copy>(base: *const c_void, offset: u32) -> T {
    // SAFETY: only used for integers and raw pointers, for which all-zero
    // bytes are a valid value.
    let mut value: T = unsafe { core::mem::zeroed() };
    // SAFETY: the helper checks the kernel address and writes at most
    // size_of::<T>() bytes into `value`.
    unsafe {
        gen::bpf_probe_read_kernel(
            core::ptr::from_mut(&mut value).cast(),
            size_of::<T>() as u32,
            base.cast::<u8>().add(offset as usize).cast(),
        );
    }
    value
}

/// The current task, as a trusted BTF pointer (v5.11+).
#[cfg(not(feature = "legacy"))]
#[inline(always)]
pub fn current_task() -> *mut task_struct {
    // SAFETY: always valid in tracing programs.
    unsafe { gen::bpf_get_current_task_btf() }
}

/// The current task, as a plain pointer for probe reads: older kernels
/// have no `bpf_get_current_task_btf`, and the legacy object passes the
/// task to no helper that needs a trusted one.
#[cfg(feature = "legacy")]
#[inline(always)]
pub fn current_task() -> *mut task_struct {
    // SAFETY: no preconditions.
    unsafe { gen::bpf_get_current_task() as *mut task_struct }
}
