//! What cowprof's live tests and its benchmarks share: a driver of a tmux
//! server of their own, running one command line in a window of a known
//! size, to type keys at and read the screen of.
use std::{
    io,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

/// A tmux server on a socket of its own, with one window; dropping it
/// kills the server.
pub struct Tmux {
    socket: PathBuf,
}

/// `words` as one shell command line, each quoted as `sh` needs
/// (`shlex`).
///
/// # Errors
/// When a word holds a NUL byte, which no shell can take.
pub fn shell_line<S: AsRef<str>>(words: &[S]) -> io::Result<String> {
    shlex::try_join(words.iter().map(AsRef::as_ref))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

impl Tmux {
    /// Starts a server on `socket` (an old one there is removed) whose
    /// window, `width` by `height`, runs `script` with `sh -c`.
    ///
    /// # Errors
    /// When tmux cannot run, or cannot make the session.
    pub fn start(socket: &Path, width: u16, height: u16, script: &str) -> io::Result<Self> {
        let _ = std::fs::remove_file(socket);
        let tmux = Self {
            socket: socket.to_owned(),
        };
        let (width, height) = (width.to_string(), height.to_string());
        let status = tmux
            .cmd(&[
                "new-session",
                "-d",
                "-x",
                &width,
                "-y",
                &height,
                "sh",
                "-c",
                script,
            ])
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "tmux new-session failed: {status}"
            )));
        }
        Ok(tmux)
    }

    /// A tmux command on this server.
    #[must_use]
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-S").arg(&self.socket).args(args);
        cmd
    }

    /// Runs a tmux command; its output.
    ///
    /// # Errors
    /// When tmux cannot run.
    pub fn run(&self, args: &[&str]) -> io::Result<Output> {
        self.cmd(args).stderr(Stdio::null()).output()
    }

    /// A tmux command's standard output, empty when it failed.
    #[must_use]
    pub fn query(&self, args: &[&str]) -> String {
        self.run(args)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The screen as text.
    #[must_use]
    pub fn screen(&self) -> String {
        self.query(&["capture-pane", "-p"])
    }

    /// Types `keys` (tmux key names: `Enter`, `q`, ...).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend(keys);
        let _ = self.run(&args);
    }

    /// The pid of the window's process (the shell running the script).
    #[must_use]
    pub fn pane_pid(&self) -> Option<u32> {
        self.query(&["display-message", "-p", "#{pane_pid}"])
            .trim()
            .parse()
            .ok()
    }

    /// Whether the session still runs (its command has not ended).
    #[must_use]
    pub fn alive(&self) -> bool {
        self.run(&["has-session"]).is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_shell() {
        let words = ["top", "--", "sh", "-c", "echo 'a b' $HOME"];
        let line = shell_line(&words).expect("a line");
        // What sh makes of the line: the same words.
        let out = Command::new("sh")
            .args(["-c", &format!("printf '%s\\n' {line}")])
            .output()
            .expect("sh");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .collect::<Vec<_>>(),
            words
        );
        assert!(shell_line(&["a\0b"]).is_err());
    }
}
