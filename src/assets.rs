//! The generated documentation: man pages (`man/`) and shell completions (`completions/`),
//! rendered from the clap definition in `cli`. `ocpoll generate-assets` writes them; a test
//! renders them again and fails when the committed files are stale.

use crate::cli::Cli;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Every generated file: its path relative to the project folder and its contents.
pub fn render() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut command = Cli::command();
    // Building propagates the version and global options into every subcommand and names
    // them `ocpoll-state-reset` (page) and `ocpoll state reset` (synopsis).
    command.build();
    render_man_pages(&command, &mut files);
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let mut command = Cli::command();
        let mut buffer = Vec::new();
        clap_complete::generate(shell, &mut command, "ocpoll", &mut buffer);
        let name = match shell {
            Shell::Bash => "ocpoll.bash",
            Shell::Zsh => "_ocpoll",
            Shell::Fish => "ocpoll.fish",
            Shell::Elvish => "ocpoll.elv",
            _ => "_ocpoll.ps1",
        };
        files.push((Path::new("completions").join(name), buffer));
    }
    files
}

/// One page for the command and one per visible subcommand, nested ones included.
fn render_man_pages(command: &clap::Command, files: &mut Vec<(PathBuf, Vec<u8>)>) {
    let man = clap_mangen::Man::new(command.clone());
    let mut buffer = Vec::new();
    // Rendering into a Vec cannot fail.
    let _ = man.render(&mut buffer);
    files.push((Path::new("man").join(man.get_filename()), buffer));
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        render_man_pages(sub, files);
    }
}

/// Writes every generated file under `project_dir`.
pub fn write_all(project_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (relative, contents) in render() {
        let path = project_dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
        written.push(relative);
    }
    Ok(written)
}
