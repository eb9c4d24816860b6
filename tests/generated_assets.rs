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
        "man/ocpoll-instance.5",
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

fn rendered(name: &str) -> String {
    let (_, bytes) = ocpoll::assets::render()
        .into_iter()
        .find(|(path, _)| path.display().to_string() == name)
        .unwrap_or_else(|| panic!("{name} is not rendered"));
    String::from_utf8(bytes).unwrap()
}

/// Issue 14: the hidden maintainer command is not offered by any shell's completions.
#[test]
fn completions_do_not_offer_the_hidden_command() {
    for (path, bytes) in ocpoll::assets::render() {
        if !path.starts_with("completions") {
            continue;
        }
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains("generate-assets") && !text.contains("generate_assets"),
            "{} offers generate-assets",
            path.display()
        );
        // The visible commands are still there.
        for command in ["validate", "tick", "status", "outbox"] {
            assert!(text.contains(command), "{} lacks {command}", path.display());
        }
    }
}

/// Issue 14: the top page has EXIT STATUS (every code the code uses), ENVIRONMENT (the
/// options' variables and the config keys'), FILES and EXAMPLES.
#[test]
fn the_main_page_has_exit_status_environment_files_and_examples() {
    let page = rendered("man/ocpoll.1");
    // roff quotes a heading of several words.
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXAMPLES",
    ] {
        assert!(page.contains(section), "{section} missing:\n{page}");
    }
    let exit_status = between(&page, ".SH \"EXIT STATUS\"", ".SH ENVIRONMENT");
    for code in ["0", "1", "2", "75", "78", "130"] {
        assert!(
            exit_status.contains(&format!("\\fB{code}\\fR")),
            "exit code {code} missing:\n{exit_status}"
        );
    }
    let environment = between(&page, ".SH ENVIRONMENT", ".SH FILES");
    for variable in [
        "OCPOLL_CONFIG",
        "OCPOLL_INSTANCES",
        "OCPOLL_STATE",
        "OCPOLL_LOG_FORMAT",
        "OCPOLL_POLL_RETRIES",
        "OCPOLL_DELIVERY_BACKOFF_MAX_SECONDS",
        "OCPOLL_SECRETS_ENV_PREFIXES",
        "NOTIFY_SOCKET",
        "HTTPS_PROXY",
    ] {
        assert!(
            environment.contains(variable),
            "{variable} missing:\n{environment}"
        );
    }
    // The sections come before VERSION, as man pages order them.
    assert!(page.find(".SH EXAMPLES") < page.find(".SH VERSION"));
}

/// Issue 14: `ocpoll-instance(5)` lists every key, and every key it lists is in the guide
/// (docs/instances.md), so the page, the guide and the decoder agree.
#[test]
fn the_instance_page_lists_every_key_the_guide_documents() {
    let page = rendered("man/ocpoll-instance.5");
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/instances.md"))
            .unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH ocpoll-instance 5"),
        "{page}"
    );
    for group in ocpoll::instance::reference::GROUPS {
        let heading = match group.title.contains(' ') {
            true => format!(".SH \"{}\"", group.title),
            false => format!(".SH {}", group.title),
        };
        assert!(page.contains(&heading), "{heading} missing");
        for doc in group.keys {
            let in_roff = doc.key.replace('-', "\\-");
            assert!(page.contains(&in_roff), "{} missing from the page", doc.key);
            assert!(
                guide.contains(&format!("`{}`", doc.key)),
                "{} is on the page but not in docs/instances.md",
                doc.key
            );
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start} missing"));
    let to = text[from..].find(end).map_or(text.len(), |at| from + at);
    &text[from..to]
}
