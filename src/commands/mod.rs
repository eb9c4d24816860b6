//! One module per subcommand, each thin: it loads what it needs, calls the library, prints,
//! and returns the exit code.

pub mod demo;
pub mod outbox;
pub mod run;
pub mod state;
pub mod status;
pub mod tick;
pub mod validate;

use std::io::Write;

/// Exit codes (SPEC.md section 2).
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// Some instance invalid, or some poll or delivery failed (the rest still ran).
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    /// The state is locked by another ocpoll process.
    pub const LOCKED: u8 = 75;
    /// The configuration is unusable.
    pub const CONFIG: u8 = 78;
}

/// A plain left-aligned table; the last column is not padded.
pub fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[index]));
            }
        }
        text
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
