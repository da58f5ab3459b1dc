//! The rest of the compatibility table: what the programs need of the
//! kernel beyond their attach points (and what stands in for it on older
//! kernels), and the kernel properties that rule a strategy out. Startup
//! (`facts::strategy_check`, the object chosen) and `cowprof doctor` read
//! these with `strategy::TABLE`.
use serde::Serialize;

use super::strategy::Strategy;

/// A kernel feature the programs rely on.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Requirement {
    pub feature: &'static str,
    /// Oldest kernel (major, minor) that has it.
    pub min_kernel: (u32, u32),
    /// What uses it.
    pub used_for: &'static str,
    /// What happens on a kernel without it.
    pub without: Without,
}

/// What cowprof does on a kernel that lacks a [`Requirement`].
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", content = "detail", rename_all = "snake_case")]
pub enum Without {
    /// The legacy eBPF object (`cowprof-ebpf --features legacy`) does it
    /// this way instead, with the same results.
    Legacy(&'static str),
    /// These strategies cannot run.
    Unavailable(&'static [Strategy]),
}

/// Every requirement, oldest first.
pub const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        feature: "BPF_MAP_TYPE_TASK_STORAGE",
        min_kernel: (5, 11),
        used_for: "the per-task state of a fault in flight",
        without: Without::Legacy("a preallocated hash map keyed by thread id, emptied at thread exit"),
    },
    Requirement {
        feature: "the bpf_get_current_task_btf helper",
        min_kernel: (5, 11),
        used_for: "the current task, trusted, for task storage and bpf_find_vma",
        without: Without::Legacy("bpf_get_current_task, with checked reads"),
    },
    Requirement {
        feature: "the bpf_task_pt_regs helper",
        min_kernel: (5, 15),
        used_for: "binding allocations to a lazily completed fault by the task's user registers",
        without: Without::Unavailable(&[Strategy::Tracepoint]),
    },
    Requirement {
        feature: "the bpf_find_vma helper",
        min_kernel: (5, 17),
        used_for: "the mapping of a fault and of the writing instruction",
        without: Without::Legacy(
            "a walk of the address space's VMA tree (mm->mm_rb), as find_vma() does, under the fault's mmap lock",
        ),
    },
];

/// A property of the running kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// Kernel code can be preempted (`preempt=full`, `lazy` or `rt`).
    PreemptibleKernel,
}

impl Property {
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Property::PreemptibleKernel => {
                "the kernel preempts kernel code (preempt=full, lazy or rt)"
            }
        }
    }
}

/// A property under which a strategy's hooks exist but its counts would
/// not be exact, so it is not offered.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Exclusion {
    pub strategy: Strategy,
    pub property: Property,
    /// What rules it out, in a few words.
    pub what: &'static str,
    pub why: &'static str,
}

/// kernel/bpf/trampoline.c (v6.x, 7.x) runs an fentry/fexit program with
/// only migration disabled, and skips it while the same program is active
/// on the CPU:
/// ```c
/// rcu_read_lock_dont_migrate();
/// ...
/// if (unlikely(!bpf_prog_get_recursion_context(prog))) {
///         bpf_prog_inc_misses_counter(prog);
///         return 0;
/// ```
/// A kprobe's program runs with preemption off, and a tracepoint's inside
/// the tracepoint's preempt-disabled section.
pub const EXCLUSIONS: &[Exclusion] = &[Exclusion {
    strategy: Strategy::Fentry,
    property: Property::PreemptibleKernel,
    what: "the kernel preempts fentry programs",
    why: "while a task is preempted inside one, the same program skips every other task's fault on that CPU (the kernel counts them as recursion misses), so counts would not be exact; kprobe programs run with preemption off",
}];
