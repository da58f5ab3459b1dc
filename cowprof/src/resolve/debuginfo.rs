//! What to install when a library's writers show as offsets: the package
//! that carries its separate debug information, found as Debian names it.
//!
//! Debian's glibc ships its debug files as `libc6-dbg` (build-id paths under
//! `/usr/lib/debug/.build-id/`); every other package's are automatic
//! `<package>-dbgsym` packages in the `debian-debug` archive, which
//! Debian's default apt sources do not include (so the hint says how to add
//! it). The owning
//! package comes from `dpkg-query -S`, which knows a file by the path it
//! was installed at: with merged /usr, `/usr/lib/...` was often installed
//! as `/lib/...`, so both spellings are asked.
use std::process::Command;

/// Hints printed at most, the rest counted.
const MAX_HINTS: usize = 5;

/// The Debian package that installed `path`, if dpkg knows it.
#[must_use]
pub fn owning_package(path: &str) -> Option<String> {
    let spellings = [
        Some(path.to_owned()),
        path.strip_prefix("/usr").map(str::to_owned),
        path.starts_with("/lib").then(|| format!("/usr{path}")),
    ];
    spellings.into_iter().flatten().find_map(|p| {
        let out = Command::new("dpkg-query").arg("-S").arg(&p).output().ok()?;
        if !out.status.success() {
            return None;
        }
        package_of(&String::from_utf8_lossy(&out.stdout), &p)
    })
}

/// The package in `dpkg-query -S` output (`pkg[:arch][, pkg...]: path`)
/// for the line naming exactly `path`.
fn package_of(output: &str, path: &str) -> Option<String> {
    output.lines().find_map(|line| {
        if line.starts_with("diversion by ") {
            return None;
        }
        let (packages, file) = line.rsplit_once(": ")?;
        if file != path {
            return None;
        }
        let first = packages.split(", ").next()?;
        Some(first.split(':').next()?.to_owned())
    })
}

/// The debug package for the binary package `package`.
#[must_use]
pub fn debug_package(package: &str) -> String {
    match package {
        "libc6" => "libc6-dbg".to_owned(),
        other => format!("{other}-dbgsym"),
    }
}

/// One line per file whose writers are offsets, naming what would name
/// them.
#[must_use]
pub fn hints(unnamed: &[String]) -> Vec<String> {
    let mut out: Vec<String> = unnamed
        .iter()
        .take(MAX_HINTS)
        .map(|path| {
            let fix = owning_package(path).map_or_else(
                || "install its debug file under /usr/lib/debug/.build-id/, or point --debug-dir at one".to_owned(),
                |p| match debug_package(&p).as_str() {
                    "libc6-dbg" => "install libc6-dbg (or point --debug-dir at its debug files)".to_owned(),
                    dbgsym => format!(
                        "install {dbgsym} from Debian's debug archive (add `deb http://deb.debian.org/debian-debug <suite>-debug main` to the apt sources), or point --debug-dir at its debug files"
                    ),
                },
            );
            format!("hint: writers in {path} are shown as offsets: it has no symbols there and no debug information was found; {fix}")
        })
        .collect();
    if unnamed.len() > MAX_HINTS {
        out.push(format!(
            "hint: and {} more files without symbols (see unnamed_writers in --json)",
            unnamed.len() - MAX_HINTS
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_output_names_the_package_of_the_exact_path() {
        let out = "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n";
        assert_eq!(
            package_of(out, "/lib/x86_64-linux-gnu/libc.so.6").as_deref(),
            Some("libc6")
        );
        assert_eq!(package_of(out, "/lib/x86_64-linux-gnu/libm.so.6"), None);
        let diverted = "diversion by foo from: /bin/sh\nfoo, dash: /bin/sh\n";
        assert_eq!(package_of(diverted, "/bin/sh").as_deref(), Some("foo"));
    }

    #[test]
    fn glibc_has_its_own_debug_package_and_others_dbgsym() {
        assert_eq!(debug_package("libc6"), "libc6-dbg");
        assert_eq!(debug_package("libssl3"), "libssl3-dbgsym");
    }
}
