//! What to trace: a command cowprof starts, an existing process, or all.
//!
//! A command is forked and held before `execve` until the probes follow its
//! pid, so not one of its faults is missed; its descendants are followed by
//! the fork probe.
use std::{
    ffi::{CString, OsString},
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
    time::Duration,
};

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("command not found: {0}; check its name and PATH")]
    NotFound(String),
    #[error("cannot run {cmd}: {source}")]
    Exec { cmd: String, source: io::Error },
    #[error("no process with pid {0}; check the pid with `ps`")]
    NoSuchProcess(u32),
    #[error("argument contains a NUL byte: {0:?}")]
    Nul(OsString),
    #[error("{what} failed: {source}")]
    Sys {
        what: &'static str,
        source: io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(io::Error) -> TargetError {
    move |source| TargetError::Sys { what, source }
}

/// What to trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Start this command and follow it and every descendant.
    Command(Vec<OsString>),
    /// Follow an existing process and its future children.
    Pid(u32),
    /// Every process but cowprof.
    SystemWide,
}

impl Target {
    /// The target in words, for manifests: the command line, `pid N`, or
    /// `all`.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Target::Command(argv) => argv
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            Target::Pid(pid) => format!("pid {pid}"),
            Target::SystemWide => "all".to_owned(),
        }
    }
}

/// Resolves `program` the way `execvp` would.
fn resolve(program: &OsString) -> Result<PathBuf, TargetError> {
    let path = Path::new(program);
    if program.as_bytes().contains(&b'/') {
        return if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(TargetError::NotFound(path.display().to_string()))
        };
    }
    let dirs = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&dirs)
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TargetError::NotFound(path.display().to_string()))
}

fn cstring(s: impl Into<OsString>) -> Result<CString, TargetError> {
    let s = s.into();
    CString::new(s.as_bytes()).map_err(|_| TargetError::Nul(s))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), TargetError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(sys("pipe2")(io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A command forked and held before `execve`.
#[derive(Debug)]
pub struct HeldChild {
    pid: u32,
    go: Option<OwnedFd>,
    exec_error: OwnedFd,
    reaped: Option<i32>,
}

impl HeldChild {
    /// Forks `argv`; the child waits until [`HeldChild::release`]. With
    /// `output`, its stdout and stderr go to that file (appended) and its
    /// stdin is `/dev/null`: the terminal is someone else's (`top`).
    ///
    /// # Errors
    /// When the program cannot be found, `output` cannot be opened, or the
    /// fork fails.
    pub fn spawn(argv: &[OsString], output: Option<&std::path::Path>) -> Result<Self, TargetError> {
        let stdio = match output {
            Some(path) => {
                let out = crate::output::append(path)
                    .map_err(sys("opening the command's output file"))?;
                let null = std::fs::File::open("/dev/null").map_err(sys("opening /dev/null"))?;
                Some((OwnedFd::from(null), OwnedFd::from(out)))
            }
            None => None,
        };
        let program = argv
            .first()
            .ok_or_else(|| TargetError::NotFound(String::new()))?;
        let path = cstring(resolve(program)?)?;
        let argv_c: Vec<CString> = argv
            .iter()
            .cloned()
            .map(cstring)
            .collect::<Result<_, _>>()?;
        let mut arg_ptrs: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
        arg_ptrs.push(std::ptr::null());
        let env: Vec<CString> = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k;
                kv.push("=");
                kv.push(v);
                cstring(kv)
            })
            .collect::<Result<_, _>>()?;
        let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        env_ptrs.push(std::ptr::null());
        let (go_read, go_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        // SAFETY: the child only calls async-signal-safe functions (read,
        // write, execve, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(sys("fork")(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; this branch never returns.
            unsafe {
                // Keep no write end of the go pipe: if cowprof dies (or
                // gives up) before releasing us, the read sees EOF and we
                // exit instead of waiting forever.
                libc::close(go_write.as_raw_fd());
                libc::close(err_read.as_raw_fd());
                if let Some((null, out)) = &stdio {
                    libc::dup2(null.as_raw_fd(), 0);
                    libc::dup2(out.as_raw_fd(), 1);
                    libc::dup2(out.as_raw_fd(), 2);
                }
                let mut byte = 0u8;
                let n = libc::read(go_read.as_raw_fd(), (&raw mut byte).cast(), 1);
                if n == 1 {
                    libc::execve(path.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr());
                }
                let errno = *libc::__errno_location();
                libc::write(
                    err_write.as_raw_fd(),
                    (&raw const errno).cast(),
                    size_of::<i32>(),
                );
                libc::_exit(127);
            }
        }
        drop(go_read);
        drop(err_write);
        Ok(Self {
            pid: pid.unsigned_abs(),
            go: Some(go_write),
            exec_error: err_read,
            reaped: None,
        })
    }

    /// The child's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the child exec. Returns once the exec has happened.
    ///
    /// # Errors
    /// When the exec fails; the child has then exited.
    pub fn release(&mut self, argv0: &OsString) -> Result<(), TargetError> {
        if let Some(go) = self.go.take() {
            let byte = 1u8;
            // SAFETY: valid fd and one-byte buffer.
            unsafe { libc::write(go.as_raw_fd(), (&raw const byte).cast(), 1) };
        }
        let mut errno = 0i32;
        // SAFETY: valid fd and buffer; EOF means the exec closed the pipe.
        let n = unsafe {
            libc::read(
                self.exec_error.as_raw_fd(),
                (&raw mut errno).cast(),
                size_of::<i32>(),
            )
        };
        if n == 4 {
            let _ = self.wait(None);
            return Err(TargetError::Exec {
                cmd: argv0.to_string_lossy().into_owned(),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` (forever with `None`) for the child to exit.
    /// Returns its wait status once it has.
    ///
    /// # Errors
    /// When waiting fails.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<i32>, TargetError> {
        if self.reaped.is_some() {
            return Ok(self.reaped);
        }
        let pid = i32::try_from(self.pid).unwrap_or(i32::MAX);
        let flags = if timeout.is_some() { libc::WNOHANG } else { 0 };
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let mut status = 0;
            // SAFETY: pid is our child; status is a valid out pointer.
            let rc = unsafe { libc::waitpid(pid, &raw mut status, flags) };
            if rc == pid {
                self.reaped = Some(status);
                return Ok(self.reaped);
            }
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(sys("waitpid")(err));
            }
            match deadline {
                Some(deadline) if std::time::Instant::now() >= deadline => return Ok(None),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // A child never released sees EOF and exits instead of running; it
        // is reaped here, which takes no longer than its exit.
        if self.go.take().is_some() {
            let _ = self.wait(Some(Duration::from_secs(5)));
        } else if self.reaped.is_none() {
            let _ = self.wait(Some(Duration::ZERO));
        }
    }
}

/// Watches a process that is not our child until it exits.
#[derive(Debug)]
pub struct PidWatch {
    fd: OwnedFd,
}

impl PidWatch {
    /// Opens a pidfd for `pid`.
    ///
    /// # Errors
    /// When the process does not exist.
    pub fn open(pid: u32) -> Result<Self, TargetError> {
        // SAFETY: pidfd_open takes a pid and flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(if err.raw_os_error() == Some(libc::ESRCH) {
                TargetError::NoSuchProcess(pid)
            } else {
                sys("pidfd_open")(err)
            });
        }
        let fd = i32::try_from(fd).map_err(|_| sys("pidfd_open")(io::Error::other("bad fd")))?;
        // SAFETY: fd was just returned by the kernel.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Waits up to `timeout`; returns whether the process has exited.
    #[must_use]
    pub fn exited(&self, timeout: Duration) -> bool {
        let mut fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&raw mut fd, 1, millis) > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child's state letter from /proc, or `None` once it is reaped.
    fn state_of(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(") ")?.1.chars().next()
    }

    #[test]
    fn a_held_command_exits_when_cowprof_dies_before_releasing_it() {
        let held = HeldChild::spawn(&["true".into()], None).expect("spawn");
        let pid = held.pid();
        assert!(state_of(pid).is_some(), "the child waits");
        // What cowprof dying does to the pipe: its end closes, without
        // HeldChild's Drop reaping the child.
        let mut held = std::mem::ManuallyDrop::new(held);
        held.go.take();
        // The child sees EOF and exits (a zombie until reaped). Before the
        // fix it kept the pipe's write end itself and waited forever; a
        // generous bound turns that into a failure, not a hang.
        let exited = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            matches!(state_of(pid), Some('Z') | None)
        });
        if !exited {
            // Do not leave it holding the test's output pipes.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGKILL) };
            panic!("the held child is still waiting for a release");
        }
        let status = held.wait(Some(Duration::from_secs(5))).expect("wait");
        assert!(status.is_some_and(|s| libc::WIFEXITED(s) && libc::WEXITSTATUS(s) == 127));
    }
}
