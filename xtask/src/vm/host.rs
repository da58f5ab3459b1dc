//! Host side of the VM matrix: packages, kernels, static binaries, qemu.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{bail, Context as _, Result};

use crate::{cache, setup};

const BACKPORTS: &str = "/etc/apt/sources.list.d/cowprof-backports.sources";
const MUSL: &str = "x86_64-unknown-linux-musl";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// qemu 10 from bookworm-backports (beside the preinstalled qemu-utils of
/// the same suite), static busybox, cpio, and the musl target.
pub fn ensure_packages() -> Result<()> {
    let needed =
        !have("qemu-system-x86_64") || !Path::new("/bin/busybox").exists() || !have("cpio");
    if needed {
        if !Path::new(BACKPORTS).exists() {
            fs::write(
                BACKPORTS,
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            )
            .with_context(|| format!("writing {BACKPORTS} (needs root)"))?;
        }
        eprintln!("xtask: installing qemu-system-x86 (bookworm-backports), busybox-static, cpio");
        setup::status(Command::new("apt-get").args(["update", "-qq"]))?;
        setup::status(
            Command::new("apt-get")
                .args([
                    "install",
                    "-y",
                    "-qq",
                    "--no-install-recommends",
                    "-t",
                    "bookworm-backports",
                ])
                .args([
                    "qemu-system-x86",
                    "busybox-static",
                    "cpio",
                    "e2fsprogs",
                    "xz-utils",
                ])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let installed = String::from_utf8(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()?
            .stdout,
    )?;
    if !installed.lines().any(|l| l.trim() == MUSL) {
        setup::status(Command::new("rustup").args(["target", "add", MUSL]))?;
    }
    Ok(())
}

/// A Debian cloud kernel, extracted in the cache.
pub struct Kernel {
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
}

/// Where apt looks for a kernel series.
#[derive(Clone, Copy)]
enum Apt {
    /// The host's own sources (bookworm: 6.1, and 6.12 from its backports).
    Host,
    /// A private apt state in the cache with the suites the host lacks
    /// (bullseye for 5.10, sid and trixie-backports for 7.x), so the
    /// host's own apt never sees them.
    Private,
}

/// The suites of the private apt state.
const PRIVATE_SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie-backports main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
";

impl Apt {
    /// The options that point apt at this state.
    fn options(self) -> Result<Vec<String>> {
        match self {
            Apt::Host => Ok(Vec::new()),
            Apt::Private => {
                let dir = cache::dir().join("vm").join("apt");
                fs::create_dir_all(dir.join("lists/partial"))?;
                fs::create_dir_all(dir.join("cache/archives/partial"))?;
                let sources = dir.join("sources.list");
                if fs::read_to_string(&sources).ok().as_deref() != Some(PRIVATE_SOURCES) {
                    fs::write(&sources, PRIVATE_SOURCES)?;
                }
                let opt = |k: &str, v: &Path| format!("-oDir::{k}={}", v.display());
                Ok(vec![
                    opt("Etc::SourceList", &sources),
                    "-oDir::Etc::SourceParts=/dev/null".into(),
                    opt("State::Lists", &dir.join("lists")),
                    opt("Cache", &dir.join("cache")),
                    "-oAPT::Sandbox::User=root".into(),
                ])
            }
        }
    }
}

/// The newest package whose name matches `pattern` (a regex for
/// `apt-cache search --names-only`).
fn newest(pattern: &str, apt: Apt) -> Result<String> {
    let options = apt.options()?;
    let search = |update: bool| -> Result<Vec<String>> {
        if update {
            setup::status(
                Command::new("apt-get")
                    .args(&options)
                    .args(["update", "-qq"]),
            )?;
        }
        let out = Command::new("apt-cache")
            .args(&options)
            .args(["search", "--names-only", pattern])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect())
    };
    let mut names = search(false)?;
    if names.is_empty() {
        names = search(true)?;
    }
    // Sort by the numbers in the name: 6.12.117 after 6.12.95.
    let key = |name: &String| -> Vec<u64> {
        name.split(|c: char| !c.is_ascii_digit())
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    names.sort_by_key(key);
    names
        .pop()
        .with_context(|| format!("apt offers no package matching {pattern}"))
}

/// The kernel series of the matrix, oldest first: the newest package of
/// each that apt offers is used (7: the newest 7.x of sid and
/// trixie-backports).
const SERIES: &[(&str, &str, Apt)] = &[
    (
        "5.10",
        r"^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$",
        Apt::Private,
    ),
    (
        "6.1",
        r"^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$",
        Apt::Host,
    ),
    (
        "6.12",
        r"^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$",
        Apt::Host,
    ),
    (
        "7",
        r"^linux-image-7\.[0-9]+\.[0-9]+\+deb[0-9]+-cloud-amd64$",
        Apt::Private,
    ),
];

/// The packages that hold `package`'s files: itself, and from 7.x on
/// (Debian trixie, whose images are not `-unsigned`) the
/// `linux-binary-*` (the kernel) and `linux-modules-*` it depends on.
fn parts(package: &str) -> Vec<String> {
    let mut all = vec![package.to_owned()];
    if let Some(version) = package
        .strip_prefix("linux-image-")
        .filter(|v| !v.ends_with("-unsigned"))
    {
        all.push(format!("linux-binary-{version}"));
        all.push(format!("linux-modules-{version}"));
    }
    all
}

/// The kernel image and the release in an extracted package: `boot/vmlinuz-*`
/// (bookworm), or `usr/lib/modules/RELEASE/vmlinuz` (trixie).
fn find_vmlinuz(root: &Path) -> Result<(PathBuf, String)> {
    if let Ok(entries) = fs::read_dir(root.join("boot")) {
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if let Some(release) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("vmlinuz-"))
            {
                return Ok((path.clone(), release.to_owned()));
            }
        }
    }
    for entry in fs::read_dir(root.join("usr/lib/modules"))?.filter_map(Result::ok) {
        let vmlinuz = entry.path().join("vmlinuz");
        if vmlinuz.is_file() {
            let release = entry.file_name().to_string_lossy().into_owned();
            return Ok((vmlinuz, release));
        }
    }
    bail!("no vmlinuz in {}", root.display())
}

/// Downloads (once) and extracts the newest kernel of each series.
pub fn ensure_kernels(only: Option<&str>) -> Result<Vec<Kernel>> {
    let dir = cache::dir().join("vm").join("kernels");
    fs::create_dir_all(&dir)?;
    let mut kernels = Vec::new();
    for (series, pattern, apt) in SERIES {
        let wanted = only.is_none_or(|only| only == *series);
        if !wanted {
            continue;
        }
        let package = newest(pattern, *apt)?;
        let root = dir.join(&package);
        if !root.is_dir() {
            eprintln!("xtask: downloading {package}");
            let download = dir.join("download");
            let _ = fs::remove_dir_all(&download);
            fs::create_dir_all(&download)?;
            setup::status(
                Command::new("apt-get")
                    .args(apt.options()?)
                    .arg("download")
                    .args(parts(&package))
                    .current_dir(&download),
            )?;
            let partial = dir.join(format!("{package}.partial"));
            let _ = fs::remove_dir_all(&partial);
            for deb in fs::read_dir(&download)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            {
                setup::status(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
            }
            find_vmlinuz(&partial)?;
            fs::rename(&partial, &root)?;
            let _ = fs::remove_dir_all(&download);
        }
        let (vmlinuz, release) = find_vmlinuz(&root)?;
        let modules = [
            root.join("lib/modules").join(&release),
            root.join("usr/lib/modules").join(&release),
        ]
        .into_iter()
        .find(|p| p.is_dir())
        .context("no modules directory in the kernel package")?;
        kernels.push(Kernel {
            release,
            vmlinuz,
            modules,
        });
    }
    Ok(kernels)
}

/// Statically linked binaries for the guest.
pub struct StaticBins {
    pub cowprof: PathBuf,
    pub workload: PathBuf,
    pub suite: PathBuf,
}

/// Builds cowprof, the workload and the privileged suite for musl.
pub fn build_static(env: &setup::Env) -> Result<StaticBins> {
    // No profiles in the guests: polars stays out of the static build.
    let common = [
        "--release",
        "--target",
        MUSL,
        "--package",
        "cowprof",
        "--no-default-features",
    ];
    setup::status(
        env.cargo()
            .arg("build")
            .args(common)
            .args(["--bins", "--examples"]),
    )?;
    let out = env
        .cargo()
        .arg("test")
        .args(common)
        .args(["--test", "privileged", "--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("building the privileged suite for {MUSL} failed");
    }
    let suite = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"executable\":\"") && l.contains("privileged"))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[start..].find('"')? + start;
            Some(PathBuf::from(&l[start..end]))
        })
        .context("cargo did not report the privileged test binary")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| cache::workspace().join("target"), PathBuf::from);
    let release = target.join(MUSL).join("release");
    Ok(StaticBins {
        cowprof: release.join("cowprof"),
        workload: release.join("examples").join("cow-workload"),
        suite,
    })
}

/// Boots `kernel` with `initramfs` and returns what the console printed.
pub fn boot(kernel: &Kernel, initramfs: &Path) -> Result<String> {
    let log_path = cache::dir()
        .join("vm")
        .join(format!("{}.log", kernel.release));
    let _ = fs::remove_file(&log_path);
    // The console goes to a file as it happens, so a slow guest can be
    // watched while it runs.
    eprintln!("xtask: guest console: {}", log_path.display());
    let status = Command::new("timeout")
        .args(["--kill-after=10", "1200", "qemu-system-x86_64"])
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1G", "-smp", "2"])
        .args(["-display", "none", "-no-reboot", "-monitor", "none"])
        .arg("-serial")
        .arg(format!("file:{}", log_path.display()))
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .status()
        .context("running qemu-system-x86_64")?;
    if !status.success() {
        eprintln!("xtask: qemu exited with {status} (124 is the 1200 s timeout)");
    }
    Ok(String::from_utf8_lossy(&fs::read(&log_path).unwrap_or_default()).into_owned())
}

/// A key for everything a guest run depends on: the kernel image and the
/// initramfs's files under `root` (binaries, init script, module, scratch
/// image).
pub fn input_key(kernel: &Kernel, root: &Path) -> Result<String> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    kernel.release.hash(&mut hasher);
    fs::read(&kernel.vmlinuz)?.hash(&mut hasher);
    // The cpio records mtimes; hash the files inside instead.
    let mut files: Vec<PathBuf> = walk(root)?;
    files.sort();
    for file in files {
        file.strip_prefix(root).unwrap_or(&file).hash(&mut hasher);
        fs::read(&file)?.hash(&mut hasher);
    }
    Ok(format!("{}-{:016x}", kernel.release, hasher.finish()))
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(walk(&path)?);
        } else {
            out.push(path);
        }
    }
    Ok(out)
}

fn passes_dir() -> PathBuf {
    cache::dir().join("vm").join("passed")
}

/// The console log of an earlier passing run with the same inputs.
pub fn cached_pass(key: &str) -> Option<String> {
    fs::read_to_string(passes_dir().join(format!("{key}.log"))).ok()
}

/// Remembers a passing run's console log under its input key.
pub fn remember_pass(key: &str, log: &str) -> Result<()> {
    fs::create_dir_all(passes_dir())?;
    fs::write(passes_dir().join(format!("{key}.log")), log)?;
    Ok(())
}
