//! Reading a `vm_area_struct` with offsets from the running kernel's BTF.

use core::ffi::c_void;

use aya_ebpf::bindings::task_struct;
use cowprof_common::{
    event::{ANON_HEAP, ANON_NAMED, ANON_NAME_DEV, ANON_STACK},
    Offsets, VmaInfo,
};

#[cfg(not(feature = "legacy"))]
use aya_ebpf::helpers::generated::bpf_find_vma;

use crate::{
    maps::config,
    read::{current_task, read_at, try_read_at},
};

/// Kernel objects a mapping refers to, announced to userspace once each,
/// outside any `bpf_find_vma` callback.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Refs {
    /// `vma->vm_file` (0 for anon memory).
    pub file: u64,
    /// `vma->anon_name` (0 unless a named anon mapping).
    pub anon_name: u64,
}

impl Refs {
    /// Sends the file's path or the anon name, unless already sent.
    #[inline(always)]
    pub fn announce(&self, info: &VmaInfo) {
        if self.file != 0 {
            crate::files::cowprof_announce_file(self.file, info.ino, info.dev);
        } else if self.anon_name != 0 {
            crate::files::announce_anon_name(self.anon_name, info);
        }
    }
}

/// Fills `info` from `vma` and returns what it refers to.
#[inline(always)]
pub fn read_vma(vma: *const c_void, off: &Offsets, info: &mut VmaInfo) -> Refs {
    info.vm_start = read_at(vma, off.vma_vm_start);
    info.vm_end = read_at(vma, off.vma_vm_end);
    info.vm_pgoff = read_at(vma, off.vma_vm_pgoff);
    info.vm_flags = read_at(vma, off.vma_vm_flags);
    let file: *const c_void = read_at(vma, off.vma_vm_file);
    if file.is_null() {
        return Refs {
            file: 0,
            anon_name: label_anon(vma, off, info),
        };
    }
    info.file_backed = 1;
    let refs = Refs {
        file: file as u64,
        anon_name: 0,
    };
    let inode: *const c_void = read_at(file, off.file_f_inode);
    if inode.is_null() {
        return refs;
    }
    info.ino = read_at(inode, off.inode_i_ino);
    let sb: *const c_void = read_at(inode, off.inode_i_sb);
    if !sb.is_null() {
        info.dev = read_at(sb, off.sb_s_dev);
    }
    refs
}

/// Labels an anon mapping: `[heap]`, `[stack]` or `[anon:NAME]`, as
/// /proc/PID/maps does. Returns the `struct anon_vma_name *`, if any.
#[inline(always)]
fn label_anon(vma: *const c_void, off: &Offsets, info: &mut VmaInfo) -> u64 {
    if off.vma_anon_name != 0 {
        let name: u64 = read_at(vma, off.vma_anon_name);
        if name != 0 {
            info.anon_kind = ANON_NAMED;
            info.ino = name;
            info.dev = ANON_NAME_DEV;
            return name;
        }
    }
    let mm: *const c_void = read_at(vma, off.vma_vm_mm);
    if mm.is_null() {
        return 0;
    }
    let within = |addr: u64| info.vm_start <= addr && addr < info.vm_end;
    let start_brk: u64 = read_at(mm, off.mm_start_brk);
    let brk: u64 = read_at(mm, off.mm_brk);
    let start_stack: u64 = read_at(mm, off.mm_start_stack);
    if start_brk != 0 && info.vm_start <= brk && start_brk < info.vm_end {
        info.anon_kind = ANON_HEAP;
    } else if within(start_stack) {
        info.anon_kind = ANON_STACK;
    }
    0
}

/// The current `mm->mm_lock_seq` of `task`, when the kernel has one.
#[inline(always)]
pub fn lock_seq(task: *mut task_struct) -> Option<u32> {
    lock_seq_of(read_at(task.cast(), config().offsets.task_mm))
}

/// `mm->mm_lock_seq`, when the kernel has one and `mm` is not null.
#[inline(always)]
pub fn lock_seq_of(mm: *const c_void) -> Option<u32> {
    let off = &config().offsets;
    if off.mm_lock_seq == 0 || mm.is_null() {
        return None;
    }
    // A failed read must not pass for sequence 0: the caches key on it.
    try_read_at(mm, off.mm_lock_seq)
}

/// `bpf_find_vma` callback: `long (*)(struct task_struct *, struct
/// vm_area_struct *, void *ctx)`. The kernel calls it with the mmap lock held.
#[cfg(not(feature = "legacy"))]
#[inline(never)]
extern "C" fn on_vma(_task: *mut task_struct, vma: *mut c_void, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the Lookup on the caller's stack.
    let lookup = unsafe { &mut *ctx.cast::<Lookup>() };
    lookup.refs = read_vma(vma, &config().offsets, &mut lookup.info);
    0
}

/// What the callback hands back. The callback stays small and reserves no
/// ring buffer space: on v6.1 a reservation inside it, verified at every
/// call site, exceeded the verifier's budget.
#[repr(C)]
#[derive(Default)]
struct Lookup {
    info: VmaInfo,
    refs: Refs,
}

impl Lookup {
    /// Reads the mapping of `addr` in `task`'s address space, with
    /// `bpf_find_vma` (v5.17+), which takes the mmap lock. `task` must be a
    /// trusted pointer (current, or the iterator's).
    #[cfg(not(feature = "legacy"))]
    #[inline(always)]
    fn find(&mut self, task: *mut task_struct, addr: u64) -> bool {
        // SAFETY: the callback only writes `self`.
        let ret = unsafe {
            bpf_find_vma(
                task,
                addr,
                on_vma as *mut c_void,
                core::ptr::from_mut(self).cast(),
                0,
            )
        };
        ret == 0
    }

    /// Reads the mapping of `addr` in `task`'s address space by walking its
    /// VMA tree (`crate::legacy_vma`), for kernels without `bpf_find_vma`.
    #[cfg(feature = "legacy")]
    #[inline(always)]
    fn find(&mut self, task: *mut task_struct, addr: u64) -> bool {
        let mm: *const c_void = read_at(task.cast(), config().offsets.task_mm);
        let vma = crate::legacy_vma::walk(mm, addr);
        if vma.is_null() {
            return false;
        }
        self.refs = read_vma(vma, &config().offsets, &mut self.info);
        true
    }
}

/// Looks up the mapping of `addr` in the current task's address space into
/// `out`, and announces its file. Returns 0 when found.
///
/// A BPF *global* function (exported, so bpf-linker keeps its linkage and
/// BTF marks it global): the verifier checks its body once per program,
/// with unknown arguments, instead of once per call site and caller state.
/// Inlined, the lookup, its callback and the path walk were re-verified on
/// every path through the completion code: 700,000 instructions for the
/// completion program on 6.18, and E2BIG on 6.1.
///
/// Only call this where interrupts are enabled: with IRQs off the kernel
/// defers the mmap unlock through irq_work, which costs a self-IPI per call
/// (docs/kernel.md §4).
#[cfg(not(feature = "legacy"))]
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn cowprof_find_vma(addr: u64, out: *mut VmaInfo) -> i64 {
    // SAFETY: the verifier allows a global function's pointer argument to be
    // null or to point at a whole `VmaInfo`.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return -1;
    };
    let mut lookup = Lookup::default();
    if !lookup.find(current_task(), addr) {
        return -1;
    }
    // The mapping was alive a moment ago; its file and dentries are read
    // with checked reads, so a racing munmap costs at worst a wrong name.
    if config().attribution != 0 {
        lookup.refs.announce(&lookup.info);
    }
    *out = lookup.info;
    0
}

/// Whose address space a lookup searches: the current task's (through the
/// global function above), or a task the final flush visits (inlined: a
/// global function cannot take a task pointer before v6.8's `__arg_trusted`).
#[derive(Clone, Copy)]
pub enum Space {
    Current,
    Task(*mut task_struct),
}

impl Space {
    #[inline(always)]
    pub fn task(self) -> *mut task_struct {
        match self {
            Space::Current => current_task(),
            Space::Task(task) => task,
        }
    }
}

/// Looks up the mapping of `addr` in `space` (see [`cowprof_find_vma`]).
#[inline(always)]
pub fn find(space: Space, addr: u64) -> Option<VmaInfo> {
    let mut info = VmaInfo::default();
    find_into(space, addr, &mut info).then_some(info)
}

/// Like [`find`], into task storage rather than the stack; `out` is left
/// as it was when the lookup fails.
#[inline(always)]
pub fn find_into(space: Space, addr: u64, out: &mut VmaInfo) -> bool {
    match space {
        #[cfg(not(feature = "legacy"))]
        Space::Current => cowprof_find_vma(addr, out) == 0,
        // Before v5.12 a global function takes no pointer but its context
        // ("Arg#1 type PTR ... is not supported yet"); the tree walk has no
        // callback to re-verify, so it is inlined.
        #[cfg(feature = "legacy")]
        Space::Current => find_in_task(current_task(), addr, out),
        Space::Task(task) => find_in_task(task, addr, out),
    }
}

/// The lookup of [`cowprof_find_vma`] in another task's address space.
#[inline(always)]
fn find_in_task(task: *mut task_struct, addr: u64, out: &mut VmaInfo) -> bool {
    let mut lookup = Lookup::default();
    if !lookup.find(task, addr) {
        return false;
    }
    if config().attribution != 0 {
        lookup.refs.announce(&lookup.info);
    }
    *out = lookup.info;
    true
}
