//! Which environment variables and files an instance file's `${env:..}` and `${file:..}`
//! references may read: config.toml's `[secrets]`, handed down as a [`SecretScope`] value (this
//! module never reads the configuration).
//!
//! An instance file may come from a less trusted team (README, docs/operations.md#threat-model);
//! without a scope it could read any variable or file the process can, and send it to a provider
//! or callback it chooses. The default scope allows everything, as before `[secrets]` existed.
//!
//! A file is inside a root when its canonical path (symlinks and `..` resolved) is under the
//! root's canonical path, so `ROOT/../outside` and a symlink in ROOT pointing out are refused.
//! What is read is the canonical path that was judged.

use std::path::{Component, Path, PathBuf};

/// `[secrets] env_prefixes` and `file_roots`; `None` allows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretScope {
    /// `${env:NAME}` may name only variables starting with one of these (case matters).
    pub env_prefixes: Option<Vec<String>>,
    /// `${file:PATH}` may name only files inside one of these folders.
    pub file_roots: Option<Vec<PathBuf>>,
}

impl SecretScope {
    /// Everything allowed: what a source without a scope of its own uses.
    pub const UNRESTRICTED: SecretScope = SecretScope {
        env_prefixes: None,
        file_roots: None,
    };

    /// Whether `${env:name}` may be read; the error says why not (it names the variable and
    /// the prefixes, never a value).
    pub fn check_env(&self, name: &str) -> Result<(), String> {
        let Some(prefixes) = &self.env_prefixes else {
            return Ok(());
        };
        if prefixes
            .iter()
            .any(|prefix| name.starts_with(prefix.as_str()))
        {
            return Ok(());
        }
        Err(format!(
            "environment variable {name} is outside [secrets] env_prefixes ({})",
            list(prefixes.iter().map(|prefix| format!("{prefix:?}")))
        ))
    }

    /// Whether `${file:path}` may be read, and the path to read: `path` itself when files are
    /// not restricted, else its canonical form (so the file judged is the file read).
    ///
    pub fn check_file(&self, path: &Path) -> Result<PathBuf, FileRefusal> {
        let Some(roots) = &self.file_roots else {
            return Ok(path.to_path_buf());
        };
        let outside = || {
            FileRefusal::Outside(format!(
                "{} is outside [secrets] file_roots ({})",
                path.display(),
                list(roots.iter().map(|root| root.display().to_string()))
            ))
        };
        let canonical_roots: Vec<PathBuf> = roots
            .iter()
            .filter_map(|root| std::fs::canonicalize(root).ok())
            .collect();
        match std::fs::canonicalize(path) {
            Ok(canonical)
                if canonical_roots
                    .iter()
                    .any(|root| canonical.starts_with(root)) =>
            {
                Ok(canonical)
            }
            Ok(_) => Err(outside()),
            // It cannot be resolved: say why only when it is inside a root as written, so a
            // refused path never tells whether something exists there.
            Err(error) => {
                let lexical = lexically_absolute(path);
                let inside = roots
                    .iter()
                    .map(|root| lexically_absolute(root))
                    .chain(canonical_roots.iter().cloned())
                    .any(|root| lexical.starts_with(root));
                if inside {
                    Err(FileRefusal::Unresolved(error))
                } else {
                    Err(outside())
                }
            }
        }
    }
}

/// Why [`SecretScope::check_file`] gives no path to read.
#[derive(Debug)]
pub enum FileRefusal {
    /// Outside every root: the scope refuses it (the reason names the path and the roots).
    Outside(String),
    /// Inside a root as written, but it does not resolve (missing, a folder not readable):
    /// reported like a failed read.
    Unresolved(std::io::Error),
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "none: it is empty".to_owned()
    } else {
        items.join(", ")
    }
}

/// `path` made absolute against the current folder, with `.` and `..` removed by their text
/// alone (no symlink is followed: only used when the path does not resolve).
fn lexically_absolute(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(prefixes: Option<&[&str]>, roots: Option<&[&Path]>) -> SecretScope {
        SecretScope {
            env_prefixes: prefixes.map(|p| p.iter().map(|s| (*s).to_owned()).collect()),
            file_roots: roots.map(|r| r.iter().map(|p| p.to_path_buf()).collect()),
        }
    }

    #[test]
    fn the_default_scope_allows_everything() {
        let scope = SecretScope::default();
        assert_eq!(scope, SecretScope::UNRESTRICTED);
        assert_eq!(scope.check_env("HOME"), Ok(()));
        assert_eq!(
            scope.check_file(Path::new("/etc/hostname")).unwrap(),
            Path::new("/etc/hostname")
        );
    }

    #[test]
    fn env_prefixes_allow_only_their_variables() {
        let scope = scoped(Some(&["CRM_", "OCPOLL_SECRET_"]), None);
        assert_eq!(scope.check_env("CRM_API_KEY"), Ok(()));
        assert_eq!(scope.check_env("OCPOLL_SECRET_X"), Ok(()));
        let refused = scope.check_env("HOME").unwrap_err();
        assert_eq!(
            refused,
            "environment variable HOME is outside [secrets] env_prefixes (\"CRM_\", \
             \"OCPOLL_SECRET_\")"
        );
        assert!(scope.check_env("crm_api_key").is_err(), "case matters");
        // An empty list allows none.
        let none = scoped(Some(&[]), None);
        assert!(none.check_env("CRM_API_KEY").unwrap_err().contains("none"));
    }

    #[test]
    fn file_roots_refuse_dot_dot_and_symlinks_out_and_read_the_canonical_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("secrets");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("key"), "k").unwrap();
        std::fs::write(tmp.path().join("outside"), "o").unwrap();
        let scope = scoped(None, Some(&[&root]));
        assert_eq!(
            scope.check_file(&root.join("key")).unwrap(),
            std::fs::canonicalize(root.join("key")).unwrap()
        );
        for refused in [
            root.join("../outside"),
            PathBuf::from("/etc/hostname"),
            root.join("../missing"),
            PathBuf::from("/nonexistent/ocpoll/key"),
        ] {
            let FileRefusal::Outside(reason) = scope.check_file(&refused).unwrap_err() else {
                panic!("{refused:?} is not refused as outside");
            };
            assert!(
                reason.contains("is outside [secrets] file_roots"),
                "{refused:?}: {reason}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("link")).unwrap();
            assert!(matches!(
                scope.check_file(&root.join("link")),
                Err(FileRefusal::Outside(_))
            ));
            std::os::unix::fs::symlink(root.join("key"), root.join("inner")).unwrap();
            assert!(scope.check_file(&root.join("inner")).is_ok());
        }
        // A missing file inside a root is a read error, as without a scope.
        let missing = scope.check_file(&root.join("gone"));
        assert!(
            matches!(&missing, Err(FileRefusal::Unresolved(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{missing:?}"
        );
        // A root that is a prefix of a name is not its folder: /x/secrets is not /x/secrets2.
        let sibling = tmp.path().join("secrets2");
        std::fs::create_dir(&sibling).unwrap();
        std::fs::write(sibling.join("key"), "k").unwrap();
        assert!(scope.check_file(&sibling.join("key")).is_err());
    }
}
