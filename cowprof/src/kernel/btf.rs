//! Kernel struct field offsets from the running kernel's BTF.
//!
//! The eBPF programs are built once and must run on every kernel, so they
//! never hard-code struct layouts. Userspace reads `/sys/kernel/btf/vmlinux`,
//! finds each field (descending into anonymous structs and unions, as
//! `vm_area_struct` has had since v6.3) and hands the byte offsets to the
//! programs in their configuration.
use std::path::Path;

use btf_rs::{Btf, Type};
use cowprof_common::Offsets;

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "kernel BTF is missing ({VMLINUX_BTF}); cowprof needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    Missing,
    #[error("reading kernel BTF from {VMLINUX_BTF} failed: {0}")]
    Parse(String),
    #[error("kernel BTF has no struct {0}; this kernel is not supported")]
    NoStruct(&'static str),
    #[error("kernel BTF has no field {1} in struct {0}; this kernel is not supported")]
    NoField(&'static str, &'static str),
}

/// Parsed kernel BTF with field-offset lookups.
pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Opens the running kernel's BTF.
    ///
    /// # Errors
    /// When the kernel has no BTF or it cannot be parsed.
    pub fn open() -> Result<Self, BtfError> {
        Self::open_path(Path::new(VMLINUX_BTF))
    }

    /// Opens BTF from `path`.
    ///
    /// # Errors
    /// When the file is missing or not BTF.
    pub fn open_path(path: &Path) -> Result<Self, BtfError> {
        if !path.exists() {
            return Err(BtfError::Missing);
        }
        // Mapping the file is far quicker than parsing every type up front
        // (about 10 ms against 200 ms); sysfs allows it from v6.16 on.
        let btf = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
            .or_else(|_| Btf::from_file(path))
            .map_err(|e| BtfError::Parse(e.to_string()))?;
        Ok(Self { btf })
    }

    /// Whether a type of this name exists (a struct, a function, a typedef).
    #[must_use]
    pub fn has_type(&self, name: &str) -> bool {
        self.btf
            .resolve_ids_by_name(name)
            .is_ok_and(|ids| !ids.is_empty())
    }

    /// Whether a function of this name is in BTF (fentry and fexit need it).
    #[must_use]
    pub fn has_func(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .is_ok_and(|types| types.iter().any(|t| matches!(t, Type::Func(_))))
    }

    /// Byte offset of `field` in `struct name`.
    ///
    /// # Errors
    /// When the struct or the field does not exist.
    pub fn field_offset(&self, name: &'static str, field: &'static str) -> Result<u32, BtfError> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .map_err(|_| BtfError::NoStruct(name))?;
        let fields = types.iter().find_map(|ty| match ty {
            Type::Struct(s) if !s.members.is_empty() => Some(s),
            _ => None,
        });
        let fields = fields.ok_or(BtfError::NoStruct(name))?;
        self.find_in(&fields.members, field, 0)
            .map(|bits| bits / 8)
            .ok_or(BtfError::NoField(name, field))
    }

    /// Depth-first search for `field`, descending into anonymous members.
    fn find_in(&self, members: &[btf_rs::Member], field: &str, base_bits: u32) -> Option<u32> {
        for member in members {
            let name = self.btf.resolve_name(member).unwrap_or_default();
            let bits = base_bits + member.bit_offset();
            if name == field {
                return Some(bits);
            }
            if name.is_empty() {
                if let Ok(Type::Struct(inner) | Type::Union(inner)) =
                    self.btf.resolve_chained_type(member)
                {
                    if let Some(found) = self.find_in(&inner.members, field, bits) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    /// The offsets the eBPF programs need.
    ///
    /// # Errors
    /// When a struct or field is missing from this kernel.
    pub fn offsets(&self) -> Result<Offsets, BtfError> {
        Ok(Offsets {
            vma_vm_start: self.field_offset("vm_area_struct", "vm_start")?,
            vma_vm_end: self.field_offset("vm_area_struct", "vm_end")?,
            vma_vm_pgoff: self.field_offset("vm_area_struct", "vm_pgoff")?,
            vma_vm_flags: self.field_offset("vm_area_struct", "vm_flags")?,
            vma_vm_file: self.field_offset("vm_area_struct", "vm_file")?,
            file_f_inode: self.field_offset("file", "f_inode")?,
            inode_i_ino: self.field_offset("inode", "i_ino")?,
            inode_i_sb: self.field_offset("inode", "i_sb")?,
            sb_s_dev: self.field_offset("super_block", "s_dev")?,
            task_pid: self.field_offset("task_struct", "pid")?,
            task_tgid: self.field_offset("task_struct", "tgid")?,
            task_mm: self.field_offset("task_struct", "mm")?,
            // Absent before v6.4 and without CONFIG_PER_VMA_LOCK.
            mm_lock_seq: self.field_offset("mm_struct", "mm_lock_seq").unwrap_or(0),
            vmf_page: self.field_offset("vm_fault", "page")?,
            page_mapping: self.field_offset("page", "mapping")?,
            // v6.2 removed SPLIT_RSS_COUNTING and its per-task `rss_stat`
            // cache, which updated counters without the tracepoint.
            rss_stat_exact: u32::from(self.field_offset("task_struct", "rss_stat").is_err()),
            file_dentry: self.field_offset("file", "f_path")?
                + self.field_offset("path", "dentry")?,
            dentry_name: self.field_offset("dentry", "d_name")?
                + self.field_offset("qstr", "name")?,
            dentry_parent: self.field_offset("dentry", "d_parent")?,
            vma_vm_mm: self.field_offset("vm_area_struct", "vm_mm")?,
            mm_start_brk: self.field_offset("mm_struct", "start_brk")?,
            mm_brk: self.field_offset("mm_struct", "brk")?,
            mm_start_stack: self.field_offset("mm_struct", "start_stack")?,
            vma_anon_name: self
                .field_offset("vm_area_struct", "anon_name")
                .unwrap_or(0),
            task_flags: self.field_offset("task_struct", "flags")?,
            task_comm: self.field_offset("task_struct", "comm")?,
            // The VMA tree, gone with the maple tree in v6.1.
            mm_mm_rb: self.field_offset("mm_struct", "mm_rb").unwrap_or(0),
            vma_vm_rb: self.field_offset("vm_area_struct", "vm_rb").unwrap_or(0),
        })
    }
}

impl std::fmt::Debug for KernelBtf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelBtf")
    }
}
