//! One `ocpoll auth` per state file at a time: an exclusive `flock` on `<state>.auth.lock`.
//!
//! A second run while the first waits for its redirect is refused (naming the first's pid),
//! rather than racing it: two flows would each store the tokens of whichever code came back
//! last, and with a fixed loopback port the second could not even listen. It is not the
//! poller lock (`state::lock`), which the daemon holds for its whole run: `ocpoll auth`
//! works beside the daemon and writes its tokens in one short SQLite transaction.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held while it lives; the kernel drops it with the process, however it dies.
pub struct AuthGuard {
    _file: File,
}

/// Why the guard was not taken.
pub enum GuardError {
    Held {
        pid: Option<u32>,
    },
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Takes the guard of the state at `state_path`, at once or not at all.
pub fn acquire(state_path: &Path) -> Result<AuthGuard, GuardError> {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".auth.lock");
    let path = PathBuf::from(name);
    let io = |error| GuardError::Io {
        path: path.clone(),
        error,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(GuardError::Held {
                pid: text.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(error)) => return Err(io(error)),
    }
    // The pid only decorates the refusal: a failure to write it is not an error.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(AuthGuard { _file: file })
}
