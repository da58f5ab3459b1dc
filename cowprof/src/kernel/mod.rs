//! Facts about the running kernel: BTF layouts, tracefs, privileges, the
//! preemption model and `/proc/PID/stat`.
pub mod btf;
pub mod preempt;
pub mod privileges;
pub mod procstat;
pub mod tracefs;
