//! The poller lock: at most one process polls and delivers from a state file at a time.
//!
//! Only `run`, `tick` and `demo` take it; `status`, `outbox` and `state` do not (SQLite's own
//! locking keeps their short transactions safe). It is an exclusive advisory lock (`flock`) on
//! `<state path>.lock`, a file beside the state that holds the holder's pid for the error message.
//!
//! Why a separate file rather than SQLite's locks: SQLite locks a database only for the length of
//! a transaction, while the poller must own the state for its whole run. Why `flock`: the kernel
//! drops it when the process dies, however it dies (`kill -9` included), so a crash never leaves a
//! stale lock behind and there is no pid-file guessing. flock locks belong to an open file
//! description, so a second `open` of the same file conflicts even inside one process.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Held for as long as this value lives; dropping it (or the process dying) releases the lock.
#[derive(Debug)]
pub struct StateLock {
    // Never read: owning the open file is what holds the lock.
    _file: File,
    path: PathBuf,
}

#[derive(Debug, Error)]
pub enum LockError {
    /// Another process holds the lock. `pid` is what it wrote, when readable.
    #[error("{}", held_message(path, *pid))]
    Held { path: PathBuf, pid: Option<u32> },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn held_message(path: &Path, pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("state is locked by ocpoll pid {pid} ({})", path.display()),
        None => format!("state is locked by another ocpoll ({})", path.display()),
    }
}

impl StateLock {
    /// Takes the lock beside `state_path`. When another process holds it: with `wait`, blocks
    /// until it is released; without, returns [`LockError::Held`] at once.
    pub fn acquire(state_path: &Path, wait: bool) -> Result<StateLock, LockError> {
        let path = lock_path(state_path);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_error)?;
        }
        // Not truncated on open: the file may hold the current holder's pid.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        if wait {
            file.lock().map_err(io_error)?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let pid = read_pid(&mut file);
                    return Err(LockError::Held { path, pid });
                }
                Err(TryLockError::Error(source)) => return Err(io_error(source)),
            }
        }
        write_pid(&mut file).map_err(io_error)?;
        Ok(StateLock { _file: file, path })
    }

    /// The lock file's path (`<state path>.lock`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `<state path>.lock`: the state's file name with `.lock` appended.
pub fn lock_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())?;
    file.flush()
}

/// The holder's pid, or None when the file is empty (the holder has not written it yet) or
/// unreadable: the pid only decorates the message, so a failure here is not an error.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    /// Set in a child process (the test binary re-run) to hold the lock until stdin closes.
    const HOLDER_ENV: &str = "OCPOLL_TEST_LOCK_HOLDER";

    #[test]
    fn a_second_open_file_description_conflicts_even_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let held = StateLock::acquire(&state, false).unwrap();
        match StateLock::acquire(&state, false) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        let again = StateLock::acquire(&state, false).unwrap();
        assert_eq!(again.path(), dir.path().join("state.db.lock"));
    }

    #[test]
    fn the_message_names_the_pid() {
        let error = LockError::Held {
            path: PathBuf::from("/x/state.db.lock"),
            pid: Some(4242),
        };
        assert!(
            error
                .to_string()
                .starts_with("state is locked by ocpoll pid 4242")
        );
    }

    #[test]
    fn lock_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let lock = StateLock::acquire(&dir.path().join("s.db"), false).unwrap();
        let mode = std::fs::metadata(lock.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    /// Not a test on its own: the body of the child process of `another_process_holds_the_lock`.
    #[test]
    fn lock_holder_child() {
        let Some(state) = std::env::var_os(HOLDER_ENV) else {
            return;
        };
        let _lock = StateLock::acquire(Path::new(&state), false).unwrap();
        println!("locked");
        // Hold until the parent closes our stdin (or kills us).
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    fn spawn_holder(state: &Path) -> std::process::Child {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "state::lock::tests::lock_holder_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HOLDER_ENV, state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the child to say it holds the lock (the harness prints other lines too).
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("locked") => break,
                Some(Ok(_)) => continue,
                other => panic!("lock holder child ended early: {other:?}"),
            }
        }
        child
    }

    #[test]
    fn another_process_holds_the_lock_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let mut child = spawn_holder(&state);

        match StateLock::acquire(&state, false) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(child.id())),
            other => panic!("expected Held by the child, got {other:?}"),
        }

        // kill -9 releases it: the kernel drops flock locks with the process.
        child.kill().unwrap();
        child.wait().unwrap();
        let lock = StateLock::acquire(&state, false).unwrap();
        let written = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
    }

    #[test]
    fn wait_blocks_until_the_holder_exits() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let mut child = spawn_holder(&state);
        // Closing the child's stdin lets it exit, which releases the lock while we wait on it.
        let stdin = child.stdin.take();
        let waiter = std::thread::spawn({
            let state = state.clone();
            move || StateLock::acquire(&state, true).map(|_| ())
        });
        drop(stdin);
        waiter.join().unwrap().unwrap();
        child.wait().unwrap();
    }
}
