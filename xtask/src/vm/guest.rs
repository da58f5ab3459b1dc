//! Guest side of the VM matrix: the initramfs and what its console says.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use super::{host::Kernel, host::StaticBins, KernelResult, Outcome, STRATEGIES};
use crate::{cache, setup};

/// The guest's /init: mount what the probes need, put an ext4 file system
/// on a loop device (tmpfs has no write-notify), then per strategy run the
/// live suite, a latency sample and a cost sample; print markers the host
/// parses; power off.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /scratch
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tracefs nodev /sys/kernel/tracing
mount -t debugfs nodev /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
# `cowprof serve` listens on loopback.
ip link set lo up || ifconfig lo 127.0.0.1 up
mount -t tmpfs tmp /tmp
insmod /lib/loop.ko
losetup /dev/loop0 /scratch.img && mount -t ext4 /dev/loop0 /scratch || echo "VMERROR no ext4 scratch"
export COWPROF_BIN=/bin/cowprof COWPROF_WORKLOAD=/bin/cow-workload COWPROF_SCRATCH=/scratch
export COWPROF_REQUIRE_BPF=1 COWPROF_VM=1 COWPROF_FIXTURE=/fixture RUST_BACKTRACE=1
echo "VMKERNEL $(uname -r)"
# The preemption model (PREEMPT_DYNAMIC: the current one in parentheses).
echo "VMPREEMPT $(cat /sys/kernel/debug/sched/preempt 2>/dev/null || echo unknown)"
cowprof doctor
cowprof doctor --json > /tmp/doctor.json
echo "VMDOCTOR $(tr -d ' \n' < /tmp/doctor.json | sed -n 's/.*"chosen":"\([a-z]*\)".*/\1/p')"
echo "VMNOTES $(tr -d ' \n' < /tmp/doctor.json | sed -n 's/.*"object":"\([a-z]*\)".*/\1/p') $(tr -d ' \n' < /tmp/doctor.json | sed -n 's/.*"preemption":{"model":"\([a-z]*\)".*/\1/p')"
cost() {
  cow-workload fork-time --pages 16384 | sed -n 's/ns_per_fault=//p'
}
echo "VMCOST none $(cost) $(cost) $(cost)"
/bin/suite --test-threads=1 doctor
echo "VMTEST doctor rc=$?"
for s in STRATEGIES; do
  if cowprof record --probe "$s" --summary /dev/null -- true 2> /tmp/err; then
    COWPROF_PROBE=$s /bin/suite --test-threads=1 --skip doctor
    echo "VMTEST $s rc=$?"
    # One --latency run gives both the latency percentiles and a cost
    # sample; every cowprof start costs seconds under emulation. The
    # default mode (no latency) is measured apart.
    c1=$(cowprof record --probe "$s" --latency --json --summary /tmp/lat.json -- cow-workload fork-time --pages 16384 2>/dev/null | sed -n 's/ns_per_fault=//p')
    echo "VMLAT $s $(tr -d ' \n' < /tmp/lat.json)"
    c2=$(cowprof record --probe "$s" --latency --summary /dev/null -- cow-workload fork-time --pages 16384 2>/dev/null | sed -n 's/ns_per_fault=//p')
    echo "VMCOST $s-latency $c1 $c2"
    d1=$(cowprof record --probe "$s" --summary /dev/null -- cow-workload fork-time --pages 16384 2>/dev/null | sed -n 's/ns_per_fault=//p')
    d2=$(cowprof record --probe "$s" --summary /dev/null -- cow-workload fork-time --pages 16384 2>/dev/null | sed -n 's/ns_per_fault=//p')
    echo "VMCOST $s $d1 $d2"
  else
    echo "VMTEST $s unavailable $(cat /tmp/err)"
  fi
done
echo "VMDONE"
poweroff -f
"#;

/// An ext4 image for the guest's scratch file system, made once.
fn scratch_image() -> Result<PathBuf> {
    let path = cache::dir().join("vm").join("scratch-ext4.img");
    if !path.exists() {
        let partial = path.with_extension("partial");
        setup::status(Command::new("truncate").args(["-s", "96M"]).arg(&partial))?;
        setup::status(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&partial))?;
        fs::rename(&partial, &path)?;
    }
    Ok(path)
}

/// The loop driver, decompressed if the kernel ships compressed modules.
fn loop_module(kernel: &Kernel, dest: &Path) -> Result<()> {
    let dir = kernel.modules.join("kernel/drivers/block");
    let plain = dir.join("loop.ko");
    if plain.exists() {
        fs::copy(&plain, dest)?;
        return Ok(());
    }
    let xz = dir.join("loop.ko.xz");
    let out = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .output()
        .context("running xz")?;
    if !out.status.success() {
        anyhow::bail!("cannot decompress {}", xz.display());
    }
    fs::write(dest, out.stdout)?;
    Ok(())
}

/// The attribution tests' C fixture (cowprof/tests/fixtures, built with the
/// flags the tests use), in `root/fixture`, with the host's C library and
/// loader at their own paths: the guest has no compiler.
fn fixture(root: &Path) -> Result<()> {
    let src = cache::workspace().join("cowprof/tests/fixtures");
    let out = root.join("fixture");
    fs::create_dir_all(&out)?;
    let flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-o"];
    setup::status(
        Command::new("cc")
            .args(["-shared", "-fPIC"])
            .args(flags)
            .arg(out.join("libhotcold.so"))
            .arg(src.join("hotcold.c")),
    )?;
    setup::status(
        Command::new("cc")
            .args(flags)
            .arg(out.join("fixture"))
            .arg(src.join("fixture.c"))
            .arg(format!("-L{}", out.display()))
            .args(["-lhotcold", "-Wl,-rpath,$ORIGIN"]),
    )?;
    let ldd = Command::new("ldd")
        .arg(out.join("fixture"))
        .output()
        .context("running ldd")?;
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
    // "/lib64/ld-linux-x86-64.so.2 (0x...)"; libhotcold.so is beside it.
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|word| word.starts_with('/'))
            .map(Path::new);
        let Some(path) = path.filter(|p| !p.starts_with(&out)) else {
            continue;
        };
        let dest = root.join(path.strip_prefix("/")?);
        fs::create_dir_all(dest.parent().context("library path")?)?;
        fs::copy(path, &dest).with_context(|| format!("copying {}", path.display()))?;
    }
    Ok(())
}

/// A guest's initramfs: its tree and the compressed image made from it.
pub struct Initramfs {
    pub root: PathBuf,
    pub image: PathBuf,
}

/// Builds the initramfs for `kernel`.
pub fn initramfs(kernel: &Kernel, bins: &StaticBins) -> Result<Initramfs> {
    let dir = cache::dir().join("vm").join("initramfs");
    let root = dir.join(&kernel.release);
    let _ = fs::remove_dir_all(&root);
    for dir in ["bin", "lib"] {
        fs::create_dir_all(root.join(dir))?;
    }
    let copy = |from: &Path, to: &str| -> Result<()> {
        fs::copy(from, root.join(to)).with_context(|| format!("copying {}", from.display()))?;
        fs::set_permissions(root.join(to), fs::Permissions::from_mode(0o755))?;
        Ok(())
    };
    copy(Path::new("/bin/busybox"), "bin/busybox")?;
    copy(&bins.cowprof, "bin/cowprof")?;
    copy(&bins.workload, "bin/cow-workload")?;
    copy(&bins.suite, "bin/suite")?;
    loop_module(kernel, &root.join("lib/loop.ko"))?;
    fixture(&root)?;
    fs::copy(scratch_image()?, root.join("scratch.img"))?;
    let init = INIT.replace("STRATEGIES", &STRATEGIES.join(" "));
    fs::write(root.join("init"), init)?;
    fs::set_permissions(root.join("init"), fs::Permissions::from_mode(0o755))?;
    let image = dir.join(format!("{}.cpio.gz", kernel.release));
    setup::status(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "find . | cpio --quiet -o -H newc | gzip -1 > '{}'",
                image.display()
            ))
            .current_dir(&root),
    )?;
    Ok(Initramfs { root, image })
}

/// The gist of why a strategy is unavailable, for the table: cowprof's
/// reason without its preamble, up to its first ": " (what is missing,
/// before why it matters).
fn short_reason(why: &str) -> String {
    let why = why.trim();
    let why = why
        .split_once(" is unavailable here: ")
        .map_or(why, |(_, rest)| rest);
    let gist = why.split(": ").next().unwrap_or(why);
    gist.chars().take(100).collect()
}

/// Reads the markers the guest printed.
pub fn parse(release: &str, log: &str) -> KernelResult {
    let mut result = KernelResult {
        kernel: release.to_owned(),
        outcomes: Vec::new(),
        doctor_chosen: None,
        object: None,
        preemption: None,
        measurements: Vec::new(),
        seconds: 0.0,
    };
    for line in log.lines().map(str::trim) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("VMTEST"), Some("doctor"), Some(rest)) if rest != "rc=0" => {
                let failure = Outcome::Fail(format!("doctor test {rest}"));
                result.outcomes.push(("doctor".into(), failure));
            }
            (Some("VMTEST"), Some("doctor"), _) => {}
            (Some("VMTEST"), Some(strategy), Some(rest)) => {
                let outcome = if rest == "rc=0" {
                    Outcome::Pass
                } else if let Some(why) = rest.strip_prefix("unavailable") {
                    // A hook the kernel lacks is its business; programs the
                    // verifier rejects are ours.
                    if why.contains("loading:") {
                        Outcome::Fail(format!("the programs do not load:{why}"))
                    } else {
                        Outcome::Unavailable(short_reason(why))
                    }
                } else {
                    Outcome::Fail(format!("test suite {rest}; see the console log"))
                };
                result.outcomes.push((strategy.to_owned(), outcome));
            }
            (Some("VMDOCTOR"), Some(chosen), _) => result.doctor_chosen = Some(chosen.to_owned()),
            (Some("VMNOTES"), Some(object), preemption) => {
                result.object = Some(object.to_owned());
                result.preemption = preemption.filter(|p| !p.is_empty()).map(str::to_owned);
            }
            (Some("VMLAT" | "VMCOST"), Some(_), Some(_)) => {
                result.measurements.push(line.to_owned());
            }
            _ => {}
        }
    }
    for strategy in STRATEGIES {
        if !result.outcomes.iter().any(|(s, _)| s == strategy) {
            result
                .outcomes
                .push((strategy.to_owned(), Outcome::Missing));
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::short_reason;

    #[test]
    fn table_cells_keep_what_is_missing() {
        assert_eq!(
            short_reason(" cowprof: error: the fentry strategy is unavailable here: the kernel preempts fentry programs (preempt=lazy): while a task is preempted; run `cowprof doctor`"),
            "the kernel preempts fentry programs (preempt=lazy)"
        );
        assert_eq!(
            short_reason("cowprof: error: the tracepoint strategy is unavailable here: needs the bpf_task_pt_regs helper, Linux 5.15+: used for binding; this is 5.10.0-32-cloud-amd64; run `cowprof doctor`"),
            "needs the bpf_task_pt_regs helper, Linux 5.15+"
        );
    }
}
