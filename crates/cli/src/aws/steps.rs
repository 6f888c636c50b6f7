//! The steps of a run that changes a bucket owner's account (`byos aws bootstrap`, then
//! `--register`): what each did or would do, printed as it happens and kept for the JSON
//! output, and the access key the run made or read.

use serde_json::{Value, json};

use super::connect::{Output, say};

/// What one step did, or would do in a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Unchanged,
    Created,
    Updated,
}

/// Records the steps and prints each as it happens.
#[derive(Debug)]
pub(crate) struct Steps {
    dry_run: bool,
    output: Output,
    done: Vec<Value>,
}

impl Steps {
    pub(crate) fn new(dry_run: bool, output: Output) -> Steps {
        Steps { dry_run, output, done: Vec::new() }
    }

    pub(crate) fn record(&mut self, change: Change, subject: &str, detail: &str) -> anyhow::Result<()> {
        let word = match (change, self.dry_run) {
            (Change::Unchanged, _) => "unchanged",
            (Change::Created, false) => "created",
            (Change::Updated, false) => "updated",
            (Change::Created, true) => "would create",
            (Change::Updated, true) => "would update",
        };
        if self.output == Output::Table {
            if detail.is_empty() {
                say(format_args!("  {word:<13} {subject}"))?;
            } else {
                say(format_args!("  {word:<13} {subject}: {detail}"))?;
            }
        }
        self.done.push(json!({"subject": subject, "change": word, "detail": detail}));
        Ok(())
    }

    pub(crate) fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    pub(crate) fn shows_table(&self) -> bool {
        self.output == Output::Table
    }

    /// The steps so far, as the JSON output lists them.
    pub(crate) fn done(&self) -> &[Value] {
        &self.done
    }

    pub(crate) fn changes(&self) -> usize {
        self.done.iter().filter(|s| s["change"] != "unchanged").count()
    }
}

/// An access key of the platform's user, with its secret when this run knows it.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    /// Created in this run and not written to a file: the output shows it once.
    pub(crate) shown: bool,
}
