//! Reading a `vm_area_struct` with offsets from the running kernel's BTF.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::task_struct, helpers::bpf_probe_read_kernel, helpers::generated::bpf_find_vma,
};
use cowprof_common::{
    event::{ANON_HEAP, ANON_NAMED, ANON_NAME_DEV, ANON_STACK},
    Offsets, VmaInfo,
};

use crate::maps::config;

/// Reads a `T` at `base + offset` in kernel memory; `None` on a fault.
#[inline(always)]
pub fn read_at<T>(base: *const c_void, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address.
    unsafe { bpf_probe_read_kernel(base.cast::<u8>().add(offset as usize).cast::<T>()) }.ok()
}

/// Fills `info` from `vma`; returns the mapping's `struct file *` (null for
/// anon memory).
#[inline(always)]
pub fn read_vma(vma: *const c_void, off: &Offsets, info: &mut VmaInfo) -> *const c_void {
    info.vm_start = read_at(vma, off.vma_vm_start).unwrap_or(0);
    info.vm_end = read_at(vma, off.vma_vm_end).unwrap_or(0);
    info.vm_pgoff = read_at(vma, off.vma_vm_pgoff).unwrap_or(0);
    info.vm_flags = read_at(vma, off.vma_vm_flags).unwrap_or(0);
    let file: *const c_void = read_at(vma, off.vma_vm_file).unwrap_or(core::ptr::null());
    if file.is_null() {
        label_anon(vma, off, info);
        return file;
    }
    info.file_backed = 1;
    let inode: *const c_void = read_at(file, off.file_f_inode).unwrap_or(core::ptr::null());
    if inode.is_null() {
        return file;
    }
    info.ino = read_at(inode, off.inode_i_ino).unwrap_or(0);
    let sb: *const c_void = read_at(inode, off.inode_i_sb).unwrap_or(core::ptr::null());
    if !sb.is_null() {
        info.dev = read_at(sb, off.sb_s_dev).unwrap_or(0);
    }
    file
}

/// Labels an anon mapping: `[heap]`, `[stack]` or `[anon:NAME]`, as
/// /proc/PID/maps does.
#[inline(always)]
fn label_anon(vma: *const c_void, off: &Offsets, info: &mut VmaInfo) {
    if off.vma_anon_name != 0 {
        let name: u64 = read_at(vma, off.vma_anon_name).unwrap_or(0);
        if name != 0 {
            info.anon_kind = ANON_NAMED;
            info.ino = name;
            info.dev = ANON_NAME_DEV;
            crate::files::announce_anon_name(name, info);
            return;
        }
    }
    let mm: *const c_void = read_at(vma, off.vma_vm_mm).unwrap_or(core::ptr::null());
    if mm.is_null() {
        return;
    }
    let within = |addr: u64| info.vm_start <= addr && addr < info.vm_end;
    let start_brk: u64 = read_at(mm, off.mm_start_brk).unwrap_or(0);
    let brk: u64 = read_at(mm, off.mm_brk).unwrap_or(0);
    let start_stack: u64 = read_at(mm, off.mm_start_stack).unwrap_or(0);
    if start_brk != 0 && info.vm_start <= brk && start_brk < info.vm_end {
        info.anon_kind = ANON_HEAP;
    } else if within(start_stack) {
        info.anon_kind = ANON_STACK;
    }
}

/// The current `mm->mm_lock_seq` of `task`, when the kernel has one.
#[inline(always)]
pub fn lock_seq(task: *mut task_struct) -> Option<u32> {
    let off = config().offsets;
    if off.mm_lock_seq == 0 {
        return None;
    }
    let mm: *const c_void = read_at(task.cast(), off.task_mm)?;
    if mm.is_null() {
        return None;
    }
    read_at(mm, off.mm_lock_seq)
}

/// `bpf_find_vma` callback: `long (*)(struct task_struct *, struct
/// vm_area_struct *, void *ctx)`. The kernel calls it with the mmap lock held.
#[inline(never)]
extern "C" fn on_vma(_task: *mut task_struct, vma: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the VmaInfo on the caller's stack.
    let info = unsafe { &mut *ctx.cast::<VmaInfo>() };
    let file = read_vma(vma, &config().offsets, info);
    // The vma (and so its file) is pinned by the mmap lock held here.
    crate::files::announce(file, info);
    0
}

/// Looks up the mapping of `addr` in `task`'s address space.
///
/// Only call this where interrupts are enabled: with IRQs off the kernel
/// defers the mmap unlock through irq_work, which costs a self-IPI per call
/// (DESIGN.md §4).
#[inline(always)]
pub fn find(task: *mut task_struct, addr: u64) -> Option<VmaInfo> {
    let mut info = VmaInfo::default();
    // SAFETY: task is a trusted BTF pointer; the callback only writes `info`.
    let ret = unsafe {
        bpf_find_vma(
            task,
            addr,
            on_vma as *mut c_void,
            core::ptr::from_mut(&mut info).cast(),
            0,
        )
    };
    (ret == 0).then_some(info)
}
