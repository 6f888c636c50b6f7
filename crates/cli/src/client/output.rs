//! What the client commands print: tables for people, JSON for scripts (the API's objects as
//! the OpenAPI document describes them; a listing as JSON Lines, one entry per line, so that it
//! streams), and errors with the catalogue's fix.

use std::io::Write;

use byos_client::ClientError;
use serde::Serialize;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Where a command writes its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out {
    pub(crate) format: Format,
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
}

impl Out {
    pub(crate) fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// One JSON document on stdout.
    pub(crate) fn value<T: Serialize>(&self, value: &T) -> Result<(), ClientError> {
        let text = serde_json::to_string_pretty(value).map_err(|e| ClientError::Usage(e.to_string()))?;
        line(&text)
    }

    /// One JSON value on one line (JSON Lines).
    pub(crate) fn json_line<T: Serialize>(&self, value: &T) -> Result<(), ClientError> {
        let text = serde_json::to_string(value).map_err(|e| ClientError::Usage(e.to_string()))?;
        line(&text)
    }

    /// A note for a person on stderr, unless `--quiet`.
    pub(crate) fn note(&self, text: &str) {
        if !self.quiet {
            #[allow(clippy::print_stderr, reason = "a note for the person at the terminal")]
            {
                eprintln!("{text}");
            }
        }
    }
}

/// A line on stdout; a closed pipe (`byos ls | head`) ends the command quietly.
pub(crate) fn line(text: &str) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        result => result.map_err(|source| ClientError::Io { path: "stdout".into(), source }),
    }
}

/// A table: a header and rows, columns as wide as their widest cell (the last one unpadded).
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> Result<(), ClientError> {
    rows_of_table(header, rows, true)
}

/// More rows of a table whose header is already printed (a listing printed a page at a time).
pub(crate) fn more_rows(header: &[&str], rows: &[Vec<String>]) -> Result<(), ClientError> {
    rows_of_table(header, rows, false)
}

fn rows_of_table(header: &[&str], rows: &[Vec<String>], with_header: bool) -> Result<(), ClientError> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: &[String]| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_owned()
    };
    if with_header {
        line(&render(&header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()))?;
    }
    for row in rows {
        line(&render(row))?;
    }
    Ok(())
}

/// Bytes in binary units: `512 B`, `1.5 KiB`, `20.0 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The last words of a failed command on stderr: the message, and the catalogue's fix.
pub(crate) fn error(e: &ClientError) {
    let mut text = format!("byos: error: {e}");
    if let Some(problem) = e.problem()
        && !problem.fix.is_empty()
    {
        text.push_str(&format!("\n  fix: {}", problem.fix));
    }
    #[allow(clippy::print_stderr, reason = "the last word of a failed command, for a person")]
    {
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(human_bytes(5 * 1024u64.pow(4)), "5.0 TiB");
    }
}
