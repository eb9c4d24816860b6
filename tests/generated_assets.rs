//! The committed man pages and shell completions must match the clap definition.
//! When this fails, run `cargo run -- generate-assets` and commit the result.

use std::path::Path;

#[test]
fn committed_man_pages_and_completions_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (relative, expected) in ocpoll::assets::render() {
        match std::fs::read(root.join(&relative)) {
            Ok(actual) if actual == expected => {}
            Ok(_) => stale.push(format!("{} differs", relative.display())),
            Err(error) => stale.push(format!("{}: {error}", relative.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale; run `cargo run -- generate-assets` and commit:\n{}",
        stale.join("\n")
    );
}

#[test]
fn there_is_a_page_per_subcommand_and_a_completion_per_shell() {
    let names: Vec<String> = ocpoll::assets::render()
        .into_iter()
        .map(|(path, _)| path.display().to_string())
        .collect();
    for expected in [
        "man/ocpoll.1",
        "man/ocpoll-validate.1",
        "man/ocpoll-tick.1",
        "man/ocpoll-run.1",
        "man/ocpoll-status.1",
        "man/ocpoll-state-reset.1",
        "man/ocpoll-outbox-list.1",
        "man/ocpoll-demo.1",
        "completions/ocpoll.bash",
        "completions/_ocpoll",
        "completions/ocpoll.fish",
        "completions/ocpoll.elv",
        "completions/_ocpoll.ps1",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    // The hidden maintainer command gets no page.
    assert!(!names.iter().any(|n| n.contains("generate-assets")));
}
