//! Without privileges cowprof fails with one clear line and its exit code.
use std::{os::unix::fs::PermissionsExt as _, process::Command};

use crate::harness::{cowprof, scratch};

#[test]
fn unprivileged_user_gets_one_line_and_exit_code_3() {
    if crate::harness::in_vm() {
        eprintln!("skipping: the VM guest has no setpriv with capability options");
        return;
    }
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to drop to an unprivileged user");
        return;
    }
    // Copy the binary somewhere the unprivileged user can execute it.
    let dir = scratch();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod dir");
    let bin = dir.path().join("cowprof");
    std::fs::copy(cowprof(), &bin).expect("copy binary");
    let output = crate::harness::output(
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&bin)
            .args(["record", "--", "true"])
            .current_dir(dir.path()),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("cowprof: error: "), "{stderr}");
    assert!(
        stderr.contains("root") && stderr.contains("CAP_BPF"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
