//! The poller lock: at most one process polls and delivers from a state file at a time.
//!
//! Only `run`, `tick` and `demo` take it; `status`, `outbox` and `state` do not (SQLite's own
//! locking keeps their short transactions safe). It is two exclusive advisory locks (`flock`):
//!
//! - on `<state path>.lock`, a file beside the state that holds the holder's pid for the error
//!   message. The state path is resolved first (symbolic links followed, also a link to a file
//!   not created yet), so `alias/sym.db` and the file it names share one lock file;
//! - on the state file itself, once it exists ([`StateLock::hold_state_file`], which the
//!   commands call again right after creating the file): a hard link is the same inode under
//!   another name, and only a lock on the inode covers every name. The holder's pid is then read
//!   from `/proc/locks` (Linux), which lists each `flock` with its pid and inode.
//!
//! Why `flock` on the database file does not disturb SQLite: SQLite locks with POSIX `fcntl`
//! byte-range locks, and on Linux `flock` and `fcntl` locks are independent (neither sees the
//! other) on local file systems. Two cautions, both kept: closing *any* descriptor of a file
//! drops every POSIX lock the process holds on it, so the lock's descriptor stays open for as
//! long as the [`StateLock`] lives, which must outlive the process's connections (the commands
//! take the lock first and drop it last); and on NFS Linux emulates `flock` with a whole-file
//! `fcntl` lock, which would conflict with SQLite's, but a state in WAL mode cannot live on NFS
//! anyway (WAL needs shared memory between the processes).
//!
//! Why not SQLite's locks: SQLite locks a database only for the length of a transaction, while
//! the poller must own the state for its whole run. Why `flock`: the kernel drops it when the
//! process dies, however it dies (`kill -9` included), so a crash never leaves a stale lock
//! behind and there is no pid-file guessing. flock locks belong to an open file description, so
//! a second `open` of the same file conflicts even inside one process.

use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Held for as long as this value lives; dropping it (or the process dying) releases the lock.
#[derive(Debug)]
pub struct StateLock {
    // Never read: owning the open file is what holds the lock.
    _file: File,
    path: PathBuf,
    /// The state path with symbolic links resolved.
    state: PathBuf,
    /// The state file itself, locked, once it exists.
    state_file: Option<File>,
    wait: bool,
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
    /// Takes the lock of `state_path`. When another process holds it: with `wait`, blocks
    /// until it is released; without, returns [`LockError::Held`] at once.
    pub fn acquire(state_path: &Path, wait: bool) -> Result<StateLock, LockError> {
        let state = resolve(state_path);
        let path = lock_path(&state);
        let io_error = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // 0700 whatever the umask, like the state's own folder: it holds tokens and bodies.
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_error)?;
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
        let mut lock = StateLock {
            _file: file,
            path,
            state,
            state_file: None,
            wait,
        };
        lock.hold_state_file()?;
        Ok(lock)
    }

    /// Locks the state file itself (its inode, which every hard link shares) if it exists and
    /// is not locked yet. [`StateLock::acquire`] calls it; call it again once the state file
    /// has been created. Waits like `acquire` did, or returns [`LockError::Held`] with the
    /// holder's pid from `/proc/locks`.
    pub fn hold_state_file(&mut self) -> Result<(), LockError> {
        if self.state_file.is_some() {
            return Ok(());
        }
        let io_error = |source| LockError::Io {
            path: self.state.clone(),
            source,
        };
        // Read-only: the lock needs a descriptor, not the right to write.
        let file = match File::open(&self.state) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error(source)),
        };
        if self.wait {
            file.lock().map_err(io_error)?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    let pid = file.metadata().ok().and_then(|m| flock_holder(&m));
                    return Err(LockError::Held {
                        path: self.state.clone(),
                        pid,
                    });
                }
                Err(TryLockError::Error(source)) => return Err(io_error(source)),
            }
        }
        self.state_file = Some(file);
        Ok(())
    }

    /// The lock file's path (`<state path>.lock`, symbolic links resolved).
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

/// The path with every symbolic link resolved, also when the last one names a file that does
/// not exist yet (its folder is resolved, the name kept). Falls back to the path as given when
/// it cannot be resolved (a loop, an unreadable folder).
fn resolve(path: &Path) -> PathBuf {
    let mut current = path.to_owned();
    // Like the kernel's limit on nested links.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let Ok(target) = std::fs::read_link(&current) else {
                    return path.to_owned();
                };
                current = match current.parent() {
                    Some(parent) => parent.join(target),
                    None => target,
                };
            }
            _ => {
                let parent = current
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                return match (std::fs::canonicalize(parent), current.file_name()) {
                    (Ok(parent), Some(name)) => parent.join(name),
                    _ => current,
                };
            }
        }
    }
    path.to_owned()
}

/// The pid of the process holding an exclusive `flock` on the file of `metadata`, from
/// `/proc/locks` (lines like `3: FLOCK  ADVISORY  WRITE 4242 fd:01:1311 0 EOF`, device in hex).
///
/// Read a few times: `/proc/locks` is produced a page at a time from a list other processes
/// change meanwhile, so a read can miss a line (seen in the tests, with other ocpoll processes
/// locking and unlocking their own files at the same moment); the holder's line is there.
fn flock_holder(metadata: &std::fs::Metadata) -> Option<u32> {
    (0..5).find_map(|_| flock_holder_once(metadata))
}

fn flock_holder_once(metadata: &std::fs::Metadata) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let dev = metadata.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{}", metadata.ino());
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed as `3: -> FLOCK ...`; the holder's line has no arrow.
        match fields.as_slice() {
            [_, "FLOCK", _, "WRITE", pid, file, ..] if *file == wanted => pid.parse().ok(),
            _ => None,
        }
    })
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
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(again.path(), folder.join("state.db.lock"));
    }

    #[test]
    fn a_symbolic_link_resolves_to_the_files_own_lock_even_before_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(folder.join("real")).unwrap();
        std::fs::create_dir(folder.join("alias")).unwrap();
        std::os::unix::fs::symlink("../real/state.db", folder.join("alias/sym.db")).unwrap();
        std::os::unix::fs::symlink("real", folder.join("linked")).unwrap();
        let held = StateLock::acquire(&folder.join("alias/sym.db"), false).unwrap();
        assert_eq!(held.path(), folder.join("real/state.db.lock"));
        for other in ["real/state.db", "linked/state.db", "alias/sym.db"] {
            match StateLock::acquire(&folder.join(other), false) {
                Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
                result => panic!("{other}: expected Held, got {result:?}"),
            }
        }
    }

    #[test]
    fn a_symbolic_or_hard_link_in_another_process_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        std::fs::write(&state, b"stands in for the database").unwrap();
        std::fs::create_dir(dir.path().join("alias")).unwrap();
        let symlink = dir.path().join("alias/sym.db");
        std::os::unix::fs::symlink(&state, &symlink).unwrap();
        let hard = dir.path().join("alias/hard.db");
        std::fs::hard_link(&state, &hard).unwrap();
        let mut child = spawn_holder(&state);
        for other in [&symlink, &hard] {
            match StateLock::acquire(other, false) {
                Err(LockError::Held { pid, .. }) => {
                    assert_eq!(pid, Some(child.id()), "{}", other.display());
                }
                result => panic!("{}: expected Held, got {result:?}", other.display()),
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(StateLock::acquire(&hard, false).unwrap());
    }

    #[test]
    fn the_state_file_is_locked_once_it_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        let mut first = StateLock::acquire(&state, false).unwrap();
        std::fs::write(&state, b"created after the lock").unwrap();
        first.hold_state_file().unwrap();
        let hard = dir.path().join("hard.db");
        std::fs::hard_link(&state, &hard).unwrap();
        match StateLock::acquire(&hard, false) {
            Err(LockError::Held { pid, path }) => {
                assert_eq!(
                    path,
                    std::fs::canonicalize(dir.path()).unwrap().join("hard.db")
                );
                assert_eq!(pid, Some(std::process::id()));
            }
            result => panic!("expected Held, got {result:?}"),
        }
    }

    #[test]
    fn a_created_lock_folder_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let _lock = StateLock::acquire(&dir.path().join("new/state.db"), false).unwrap();
        let mode = std::fs::metadata(dir.path().join("new"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
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
