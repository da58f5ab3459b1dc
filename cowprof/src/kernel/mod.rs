//! Facts about the running kernel: BTF layouts, tracefs, privileges and
//! `/proc/PID/stat`.
pub mod btf;
pub mod privileges;
pub mod procstat;
pub mod tracefs;
