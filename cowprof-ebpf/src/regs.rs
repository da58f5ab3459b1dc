//! The current task's user registers, which tell whether it is inside a
//! user exception or a syscall: what binds a page allocation to a lazily
//! completed fault.
//!
//! arch/x86/entry/entry_64.S, `idtentry_body`, for every exception:
//! ```text
//! movq ORIG_RAX(%rsp), %rsi   /* get error code into 2nd argument */
//! movq $-1, ORIG_RAX(%rsp)    /* no syscall to restart */
//! ```
//! arch/x86/entry/entry_fred.c, `fred_entry_from_user()` (FRED):
//! ```c
//! /* Invalidate orig_ax so that syscall_get_nr() works correctly */
//! regs->orig_ax = -1;
//! ```
//! A syscall stores its number in `orig_ax` instead (`do_syscall_64`), and
//! `ip` is where user mode will resume: the faulting instruction during a
//! user fault, the instruction after `syscall` during a syscall.
use aya_ebpf::{
    bindings::pt_regs,
    helpers::generated::{bpf_get_stack, bpf_task_pt_regs},
    macros::map,
    maps::PerCpuArray,
    EbpfContext,
};
use cowprof_common::{classify::PF_USER, Pending};

use crate::{maps::config, read::current_task};

/// The two user registers that matter here.
pub struct UserRegs {
    pub orig_ax: u64,
    pub ip: u64,
}

/// The current task's user registers (`task_pt_regs`, v5.15+).
#[inline(always)]
pub fn user() -> UserRegs {
    // SAFETY: the task is trusted. The helper returns a BTF pointer to its
    // `struct pt_regs`, which the verifier lets the program load from
    // directly (checked against the kernel's BTF, fault-safe).
    unsafe {
        let regs = bpf_task_pt_regs(current_task()) as *const pt_regs;
        UserRegs {
            orig_ax: (*regs).orig_rax,
            ip: (*regs).rip,
        }
    }
}

/// Whether the current task is still inside `pending`, the fault it opened
/// last, rather than in a later syscall or interrupt.
///
/// - A user-mode fault: the task is in a user exception (`orig_ax` −1) at
///   the faulting instruction. A later syscall has a syscall number there; a
///   later fault at the same instruction has opened a new record first.
/// - A kernel-mode fault (the kernel writing user memory in a syscall): the
///   same syscall, and `exc_page_fault` on the kernel stack. A second fault
///   in that syscall would have opened a new record, so a page-fault frame
///   on the stack is this one's.
#[inline(always)]
pub fn inside<C: EbpfContext>(ctx: &C, pending: &Pending) -> bool {
    let user = user();
    if pending.error_code & PF_USER != 0 {
        return user.orig_ax == u64::MAX && user.ip == pending.ip;
    }
    user.orig_ax == pending.sys_nr && user.ip == pending.sys_ip && in_page_fault(ctx)
}

/// Return addresses kept per kernel stack walk: the allocator, the fault
/// handler and `exc_page_fault` fit with room to spare.
const DEPTH: usize = 64;

/// Scratch space for one kernel stack walk, per CPU (too big for the
/// program's 512-byte stack).
#[map]
static KSTACK: PerCpuArray<[u64; DEPTH]> = PerCpuArray::with_max_entries(1, 0);

/// Whether `exc_page_fault()` is on the current kernel stack. Its address
/// range comes from /proc/kallsyms; without it the syscall check stands
/// alone. A stack walk costs about a microsecond, and runs only for pages
/// allocated while a kernel-mode fault's record is open in the same syscall.
#[inline(always)]
fn in_page_fault<C: EbpfContext>(ctx: &C) -> bool {
    let range = &config().exc_page_fault;
    if range[0] == 0 {
        return true;
    }
    let Some(buf) = KSTACK.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: `buf` is this CPU's DEPTH-entry scratch array.
    let bytes = unsafe { bpf_get_stack(ctx.as_ptr(), buf.cast(), (DEPTH * 8) as u32, 0) };
    if bytes <= 0 {
        return false;
    }
    #[expect(clippy::cast_sign_loss, reason = "positive, checked above")]
    let frames = bytes as usize / 8;
    // Unrolled, every load at a constant offset: as a loop, LLVM walks a
    // pointer whose bound v6.1's verifier loses (`invalid access to map
    // value`), whatever mask the index had.
    macro_rules! scan {
        ($($i:literal)*) => {
            $(
                if $i >= frames {
                    return false;
                }
                // SAFETY: a constant index below DEPTH.
                let ip = unsafe { (*buf)[$i] };
                if ip >= range[0] && ip < range[1] {
                    return true;
                }
            )*
        };
    }
    scan!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
          32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    false
}
