//! cowprof's eBPF programs: probes on the kernel's write-protect fault path.
//!
//! Every strategy fills the same per-task [`Pending`] record while a write
//! fault is in flight and classifies it with `cowprof_common::classify` at
//! completion, so all strategies emit the same [`FaultEvent`].
//!
//! [`Pending`]: cowprof_common::Pending
//! [`FaultEvent`]: cowprof_common::FaultEvent
#![no_std]
#![no_main]

mod fault;
mod files;
#[cfg(feature = "legacy")]
mod legacy_vma;
mod maps;
mod pending;
mod probes;
mod read;
mod regs;
mod store;
mod tracepoints;
mod vma;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Task storage, `bpf_find_vma` and `bpf_probe_read_kernel` are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
