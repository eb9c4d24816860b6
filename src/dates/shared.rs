//! Compiled formats shared by their text: a fleet of instance files that all write
//! `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` (in a URL macro, `updatedDateFormat` and `createdDateFormat`)
//! holds one compilation of it, not three per instance (about 0.6 KiB each: the tokens and
//! their literal strings).
//!
//! The table holds weak references only: a format lives as long as an instance uses it, and a
//! reload that drops every user of a pattern frees it. Compiling is a pure function of the
//! text, so sharing changes no result.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{Compiled, FormatError};

/// Patterns by their text. Dead entries are swept when the table has doubled since the last
/// sweep, so it stays a small multiple of the patterns in use.
struct Table {
    formats: HashMap<Box<str>, Weak<Compiled>>,
    sweep_at: usize,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

/// Entries below which the table is never swept.
const MIN_SWEEP: usize = 64;

/// The compilation of `spec`: the one in use if there is one, else `compile`'s (an error is
/// not kept: it is as cheap to find again as to look up).
pub(super) fn compiled(
    spec: &str,
    compile: impl FnOnce() -> Result<Compiled, FormatError>,
) -> Result<Arc<Compiled>, FormatError> {
    // A panic elsewhere while the table was locked leaves it consistent (each change is one
    // insert or one sweep), so a poisoned lock is used as it is.
    let mut guard = TABLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let table = guard.get_or_insert_with(|| Table {
        formats: HashMap::new(),
        sweep_at: MIN_SWEEP,
    });
    if let Some(live) = table.formats.get(spec).and_then(Weak::upgrade) {
        return Ok(live);
    }
    let fresh = Arc::new(compile()?);
    if table.formats.len() >= table.sweep_at {
        table.formats.retain(|_, format| format.strong_count() > 0);
        table.sweep_at = (table.formats.len() * 2).max(MIN_SWEEP);
    }
    table.formats.insert(spec.into(), Arc::downgrade(&fresh));
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::super::DateFormat;
    use std::sync::Arc;

    #[test]
    fn the_same_text_shares_one_compilation_while_it_is_in_use() {
        let spec = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'";
        let first = DateFormat::new(spec).unwrap();
        let second = DateFormat::new(spec).unwrap();
        assert!(Arc::ptr_eq(&first.0, &second.0));
        assert_eq!(first, second);
        let other = DateFormat::new("yyyy-MM-dd").unwrap();
        assert_ne!(first, other);
        assert!(!Arc::ptr_eq(&first.0, &other.0));
    }

    #[test]
    fn a_dropped_format_is_compiled_afresh_and_still_equal() {
        let spec = "dd.MM.yyyy HH:mm";
        let first = DateFormat::new(spec).unwrap();
        let before = first.clone();
        drop(first);
        drop(before);
        let again = DateFormat::new(spec).unwrap();
        assert_eq!(again.spec(), spec);
        assert!(
            DateFormat::new("yyyy-MM-dd'").is_err(),
            "errors are not kept"
        );
    }

    #[test]
    fn many_patterns_stay_shared_through_the_sweeps() {
        let kept: Vec<DateFormat> = (0..200)
            .map(|n| DateFormat::new(&format!("yyyy'-{n}-'MM")).unwrap())
            .collect();
        for (n, kept) in kept.iter().enumerate() {
            let again = DateFormat::new(&format!("yyyy'-{n}-'MM")).unwrap();
            assert!(Arc::ptr_eq(&kept.0, &again.0));
        }
    }
}
