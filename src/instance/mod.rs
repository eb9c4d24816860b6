//! Instance files: the typed model, decoding with every validation rule, and loading from disk.
//!
//! `model` is what an instance means, `decode` turns JSON into it (pure, collects findings),
//! `load` reads files and folders (the I/O edge), `finding` is how problems are reported,
//! `secret` keeps credentials out of every printout, `scope` limits what secret references may
//! read (config.toml's `[secrets]`), `mask` keeps credentials out of text that providers and
//! receivers echo back, `reference` documents every key (the `ocpoll-instance(5)` page).

pub mod decode;
mod duplicate_keys;
pub mod finding;
pub mod load;
pub mod mask;
pub mod model;
pub mod reference;
pub mod scope;
pub mod secret;

pub use decode::{ScopedSecrets, SecretSource, SystemSecrets, UnresolvedSecrets};
pub use finding::{Finding, JsonPath, Position, Severity};
pub use load::{LoadedFile, load_all, load_file};
pub use model::*;
pub use scope::SecretScope;
pub use secret::Secret;
