//! The kernel's preemption model: whether kernel code, a BPF trampoline's
//! program included, can be preempted by another task.
//!
//! Sources, most direct first:
//! - `/sys/kernel/debug/sched/preempt` (`CONFIG_PREEMPT_DYNAMIC`, debugfs):
//!   the modes the kernel offers, the current one in parentheses, as in
//!   `none voluntary full (lazy)`;
//! - the build configuration (`/boot/config-RELEASE`), with a `preempt=`
//!   boot parameter overriding its default where the model is dynamic;
//! - `uname -v` (`/proc/sys/kernel/version`), which names `PREEMPT`,
//!   `PREEMPT_LAZY` or `PREEMPT_RT` builds.
use std::{ffi::CString, fs, path::Path};

use serde::Serialize;

/// A preemption model (kernel/sched/core.c `preempt_modes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preemption {
    None,
    Voluntary,
    Full,
    Lazy,
    Rt,
}

impl Preemption {
    /// Whether a task running kernel code can be preempted by another one
    /// outside explicit scheduling points.
    #[must_use]
    pub const fn preempts_kernel(self) -> bool {
        matches!(self, Preemption::Full | Preemption::Lazy | Preemption::Rt)
    }

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Preemption::None => "none",
            Preemption::Voluntary => "voluntary",
            Preemption::Full => "full",
            Preemption::Lazy => "lazy",
            Preemption::Rt => "rt",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "none" => Preemption::None,
            "voluntary" => Preemption::Voluntary,
            "full" => Preemption::Full,
            "lazy" => Preemption::Lazy,
            "rt" => Preemption::Rt,
            _ => return None,
        })
    }
}

/// The model and where it was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Model {
    pub model: Preemption,
    pub source: &'static str,
}

const DEBUGFS: &str = "/sys/kernel/debug";
const SCHED_PREEMPT: &str = "/sys/kernel/debug/sched/preempt";

/// Reads the running kernel's model; `None` when no source tells.
#[must_use]
pub fn read(release: &str) -> Option<Model> {
    if !Path::new(SCHED_PREEMPT).exists() {
        mount_debugfs();
    }
    if let Some(model) = fs::read_to_string(SCHED_PREEMPT)
        .ok()
        .and_then(|text| from_debugfs(&text))
    {
        return Some(Model {
            model,
            source: SCHED_PREEMPT,
        });
    }
    let cmdline = fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(model) = fs::read_to_string(format!("/boot/config-{release}"))
        .ok()
        .and_then(|config| from_config(&config, &cmdline))
    {
        return Some(Model {
            model,
            source: "the kernel's build configuration (/boot/config-*)",
        });
    }
    fs::read_to_string("/proc/sys/kernel/version")
        .ok()
        .and_then(|version| from_uname(&version))
        .map(|model| Model {
            model,
            source: "uname -v",
        })
}

/// `none voluntary full (lazy)` → lazy: the word in parentheses.
#[must_use]
pub fn from_debugfs(text: &str) -> Option<Preemption> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix('(')?.strip_suffix(')'))
        .and_then(Preemption::parse)
}

/// The model of a kernel configuration: `PREEMPT_RT` wins; a dynamic model
/// takes `preempt=` from the command line, else the configured default.
#[must_use]
pub fn from_config(config: &str, cmdline: &str) -> Option<Preemption> {
    let set = |name: &str| {
        config
            .lines()
            .any(|line| line.trim() == format!("{name}=y"))
    };
    if set("CONFIG_PREEMPT_RT") {
        return Some(Preemption::Rt);
    }
    if set("CONFIG_PREEMPT_DYNAMIC") {
        if let Some(model) = cmdline
            .split_whitespace()
            .find_map(|arg| arg.strip_prefix("preempt="))
            .and_then(Preemption::parse)
        {
            return Some(model);
        }
    }
    [
        ("CONFIG_PREEMPT_LAZY", Preemption::Lazy),
        ("CONFIG_PREEMPT", Preemption::Full),
        ("CONFIG_PREEMPT_VOLUNTARY", Preemption::Voluntary),
        ("CONFIG_PREEMPT_NONE", Preemption::None),
    ]
    .into_iter()
    .find(|(name, _)| set(name))
    .map(|(_, model)| model)
}

/// `#1 SMP PREEMPT_RT …` → rt. A dynamic build (`PREEMPT_DYNAMIC`) says
/// nothing of the current mode. A build that names no `PREEMPT` is
/// `none` or `voluntary` (init/Makefile's `UTS_VERSION`), and neither
/// preempts kernel code: it is reported as voluntary, the common choice.
#[must_use]
pub fn from_uname(version: &str) -> Option<Preemption> {
    let words: Vec<&str> = version.split_whitespace().collect();
    if words.contains(&"PREEMPT_DYNAMIC") {
        return None;
    }
    [
        ("PREEMPT_RT", Preemption::Rt),
        ("PREEMPT_LAZY", Preemption::Lazy),
        ("PREEMPT", Preemption::Full),
    ]
    .into_iter()
    .find(|(word, _)| words.contains(word))
    .map_or(Some(Preemption::Voluntary), |(_, model)| Some(model))
}

/// Mounts debugfs where it is not, as cowprof does tracefs; a failure only
/// leaves the other sources.
fn mount_debugfs() {
    let Ok(target) = CString::new(DEBUGFS) else {
        return;
    };
    // SAFETY: valid NUL-terminated strings; data is NULL.
    let _ = unsafe {
        libc::mount(
            c"nodev".as_ptr(),
            target.as_ptr(),
            c"debugfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debugfs_names_the_current_mode_in_parentheses() {
        assert_eq!(from_debugfs("full (lazy) \n"), Some(Preemption::Lazy));
        assert_eq!(
            from_debugfs("none (voluntary) full lazy\n"),
            Some(Preemption::Voluntary)
        );
        assert_eq!(from_debugfs("none voluntary full lazy\n"), None);
    }

    #[test]
    fn configuration_and_command_line() {
        let dynamic = "CONFIG_PREEMPT_VOLUNTARY=y\nCONFIG_PREEMPT_DYNAMIC=y\n";
        assert_eq!(from_config(dynamic, "quiet"), Some(Preemption::Voluntary));
        assert_eq!(
            from_config(dynamic, "quiet preempt=full"),
            Some(Preemption::Full)
        );
        assert_eq!(
            from_config("CONFIG_PREEMPT_RT=y\nCONFIG_PREEMPT=y\n", ""),
            Some(Preemption::Rt)
        );
        assert_eq!(from_config("# CONFIG_PREEMPT is not set\n", ""), None);
    }

    #[test]
    fn uname_names_static_models_only() {
        assert_eq!(from_uname("#1 SMP PREEMPT_DYNAMIC Debian 6.12.57-1"), None);
        assert_eq!(from_uname("#1 SMP PREEMPT_RT Debian"), Some(Preemption::Rt));
        assert_eq!(from_uname("#1 SMP PREEMPT Fri"), Some(Preemption::Full));
        assert_eq!(
            from_uname("#1 SMP Debian 5.10.237-1"),
            Some(Preemption::Voluntary)
        );
    }
}
