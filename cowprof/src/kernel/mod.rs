//! Facts about the running kernel: BTF layouts, tracefs and privileges.
pub mod btf;
pub mod privileges;
pub mod tracefs;
