//! The mapping of an address on kernels without `bpf_find_vma` (before
//! v5.17): a walk of the address space's VMA red-black tree, as the
//! kernel's own `find_vma()` does. Built only into the legacy object.
//!
//! mm/mmap.c (v5.10):
//! ```c
//! rb_node = mm->mm_rb.rb_node;
//! while (rb_node) {
//!         struct vm_area_struct *tmp;
//!         tmp = rb_entry(rb_node, struct vm_area_struct, vm_rb);
//!         if (tmp->vm_end > addr) {
//!                 vma = tmp;
//!                 if (tmp->vm_start <= addr)
//!                         break;
//!                 rb_node = rb_node->rb_left;
//!         } else
//!                 rb_node = rb_node->rb_right;
//! }
//! ```
//! include/linux/rbtree.h (unchanged since v2.6):
//! ```c
//! struct rb_node {
//!         unsigned long  __rb_parent_color;
//!         struct rb_node *rb_right;
//!         struct rb_node *rb_left;
//! } __attribute__((aligned(sizeof(long))));
//! ```
//! The fentry and kprobe strategies walk inside the fault or at its
//! return, with the mmap lock held for read, so the tree cannot change
//! under the walk. Every read is a checked probe read all the same.
use core::{ffi::c_void, ptr};

use crate::{maps::config, read::read_at};

const RB_RIGHT: u32 = 8;
const RB_LEFT: u32 = 16;

/// The tree's depth is at most 2·log2(n + 1): 48 levels cover 16 million
/// mappings, far beyond `vm.max_map_count` (65,530 by default).
const MAX_DEPTH: u32 = 48;

/// The `struct vm_area_struct *` whose `[vm_start, vm_end)` holds `addr`
/// in `mm`, or null.
#[inline(always)]
pub fn walk(mm: *const c_void, addr: u64) -> *const c_void {
    let off = &config().offsets;
    if mm.is_null() || off.mm_mm_rb == 0 {
        return ptr::null();
    }
    // `mm_rb` is a `struct rb_root`, whose only member is the root node.
    let mut node: u64 = read_at(mm, off.mm_mm_rb);
    for _ in 0..MAX_DEPTH {
        if node == 0 {
            break;
        }
        let vma = node.wrapping_sub(u64::from(off.vma_vm_rb)) as *const c_void;
        let end: u64 = read_at(vma, off.vma_vm_end);
        if end > addr {
            let start: u64 = read_at(vma, off.vma_vm_start);
            if start <= addr {
                return vma;
            }
            node = read_at(node as *const c_void, RB_LEFT);
        } else {
            node = read_at(node as *const c_void, RB_RIGHT);
        }
    }
    ptr::null()
}
