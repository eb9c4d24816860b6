//! The instances the daemon runs with, as last loaded, and the reload rule (docs/design.md#daemon):
//! a new or fixed file takes effect; a removed file's instance stops (its state is kept, its
//! pending notifications wait as orphaned); a file that is now invalid is reported and its
//! previous valid version keeps running, so a typo during an edit never stops an instance.

use crate::instance::{self, Instance, LoadedFile, SecretSource, UnresolvedSecrets};
use crate::outbox::deliver::Recipient;
use crate::runner::delivery::Recipients;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One loaded set of instances; replaced whole at each reload, never changed in place.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The running version of each instance file, by path.
    running: BTreeMap<PathBuf, Arc<Instance>>,
    /// Names of files that cannot run (and have no previous version), for delivery's reasons.
    invalid: HashMap<String, PathBuf>,
}

/// What a load found, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// `path:line:col: path: message` lines of files with errors.
    pub errors: Vec<String>,
    /// Files with errors whose previous version keeps running.
    pub kept: Vec<PathBuf>,
    /// Files with errors skipped altogether.
    pub skipped: Vec<PathBuf>,
}

impl Catalog {
    /// Loads `folder`; `previous` supplies the version to keep for files that are now invalid.
    /// `None` when the folder cannot be read at all (the caller keeps what it has).
    /// Secret references resolve through `secrets` (`Config::secret_source`: `[secrets]`
    /// limits what instance files may read).
    pub fn load(
        folder: &Path,
        previous: &Catalog,
        secrets: &dyn SecretSource,
    ) -> Option<(Catalog, LoadReport)> {
        if !folder.is_dir() {
            return None;
        }
        let loaded = instance::load_all(&[folder.to_path_buf()], UnresolvedSecrets::Fail, secrets);
        Some(Catalog::from_loaded(loaded, previous))
    }

    fn from_loaded(loaded: Vec<LoadedFile>, previous: &Catalog) -> (Catalog, LoadReport) {
        let mut catalog = Catalog::default();
        let mut report = LoadReport::default();
        for file in loaded {
            if !file.has_errors() {
                if let Some(instance) = file.instance {
                    catalog.running.insert(file.path, instance);
                }
                continue;
            }
            for finding in file.findings.iter().filter(|f| f.is_error()) {
                report
                    .errors
                    .push(finding.display_for(&file.path).to_string());
            }
            match previous.running.get(&file.path) {
                Some(instance) => {
                    catalog
                        .running
                        .insert(file.path.clone(), Arc::clone(instance));
                    report.kept.push(file.path);
                }
                None => {
                    if let Some(name) = file.name.clone().or_else(|| stem(&file.path)) {
                        catalog.invalid.insert(name, file.path.clone());
                    }
                    report.skipped.push(file.path);
                }
            }
        }
        (catalog, report)
    }

    /// Every running instance, in file order.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.running.values()
    }

    /// Every running instance's name and file.
    pub fn files(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.running
            .iter()
            .map(|(path, instance)| (instance.name.as_str(), path.as_path()))
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// The running webhooks instance called `name`, if there is one.
    pub fn webhook_instance(&self, name: &str) -> Option<Arc<Instance>> {
        self.instances()
            .find(|instance| instance.name == name && instance.receives_webhooks())
            .cloned()
    }

    /// Where `name`'s notifications go now (see [`Recipient`]).
    pub fn recipient(&self, name: &str) -> Recipient {
        if let Some(instance) = self.instances().find(|instance| instance.name == name) {
            return match instance.callback_url {
                Some(_) => Recipient::Ready(Arc::clone(instance)),
                None => Recipient::Held("no event.notification.callback.url".to_owned()),
            };
        }
        Recipient::Held(match self.invalid.get(name) {
            Some(path) => format!("{} is invalid; its notifications wait", path.display()),
            None => format!("no instance file is named {name:?} (orphaned)"),
        })
    }
}

fn stem(path: &Path) -> Option<String> {
    Some(path.file_stem()?.to_string_lossy().into_owned())
}

impl Recipients for Catalog {
    fn recipient(&self, instance: &str) -> Option<Recipient> {
        Some(Catalog::recipient(self, instance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    fn instance_json(name: &str, callback: &str) -> String {
        serde_json::json!({
            "element": {"key": "crm"},
            "name": name,
            "configuration": {
                "base.url": "http://127.0.0.1:9/",
                "event.notification.enabled": true,
                "event.notification.callback.url": callback,
                "event.poller.refresh_interval": 1,
                "event.poller.configuration": {"contacts": {
                    "url": "/contacts",
                    "idField": "id",
                    "datesConfiguration": {
                        "updatedDateField": "updated",
                        "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ss'Z'"
                    }
                }}
            }
        })
        .to_string()
    }

    fn callback_of(catalog: &Catalog, name: &str) -> Option<String> {
        match catalog.recipient(name) {
            Recipient::Ready(instance) => instance.callback_url.as_ref().map(|u| u.to_string()),
            Recipient::Held(_) => None,
        }
    }

    #[test]
    fn a_broken_edit_keeps_the_previous_version_and_a_removed_file_stops() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.json",
            &instance_json("a", "http://127.0.0.1:1/one"),
        );
        write(
            dir.path(),
            "b.json",
            &instance_json("b", "http://127.0.0.1:1/b"),
        );
        let (first, report) = Catalog::load(
            dir.path(),
            &Catalog::default(),
            &crate::instance::SystemSecrets,
        )
        .unwrap();
        assert_eq!(report, LoadReport::default());
        assert_eq!(first.len(), 2);

        write(dir.path(), "a.json", "{ broken");
        std::fs::remove_file(dir.path().join("b.json")).unwrap();
        write(dir.path(), "c.json", "{ also broken");
        let (second, report) =
            Catalog::load(dir.path(), &first, &crate::instance::SystemSecrets).unwrap();
        assert_eq!(report.kept, vec![dir.path().join("a.json")]);
        assert_eq!(report.skipped, vec![dir.path().join("c.json")]);
        assert!(!report.errors.is_empty());
        assert_eq!(
            callback_of(&second, "a").as_deref(),
            Some("http://127.0.0.1:1/one")
        );
        assert!(
            matches!(second.recipient("b"), Recipient::Held(reason) if reason.contains("orphaned"))
        );
        assert!(
            matches!(second.recipient("c"), Recipient::Held(reason) if reason.contains("invalid"))
        );

        write(
            dir.path(),
            "a.json",
            &instance_json("a", "http://127.0.0.1:1/two"),
        );
        let (third, _) =
            Catalog::load(dir.path(), &second, &crate::instance::SystemSecrets).unwrap();
        assert_eq!(
            callback_of(&third, "a").as_deref(),
            Some("http://127.0.0.1:1/two")
        );
    }

    #[test]
    fn a_missing_folder_is_not_an_empty_catalog() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Catalog::load(
                &dir.path().join("gone"),
                &Catalog::default(),
                &crate::instance::SystemSecrets
            )
            .is_none()
        );
    }
}
