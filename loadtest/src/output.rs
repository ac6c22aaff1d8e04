//! Where a report goes besides the terminal: JSON (everything, for `merge` and `compare`), a
//! Markdown table (for `docs/benchmarks.md`), and a self-contained HTML page with plots.

use std::path::{Path, PathBuf};

use crate::report::Report;

/// The files to write.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// The whole report as JSON.
    pub json: Option<PathBuf>,
    /// The headline figures as a Markdown table.
    pub markdown: Option<PathBuf>,
    /// The HTML page.
    pub html: Option<PathBuf>,
}

/// A report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing a file failed.
    #[error("writing {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Reading a report failed.
    #[error("{path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Outputs {
    /// Writes `report` to every file asked for.
    pub fn write(&self, report: &Report) -> Result<(), OutputError> {
        if let Some(path) = &self.json {
            write(path, || {
                serde_json::to_string_pretty(report).map_err(|error| error.to_string())
            })?;
        }
        if let Some(path) = &self.markdown {
            write(path, || Ok(report.markdown()))?;
        }
        if let Some(path) = &self.html {
            write(path, || {
                crate::html::page(report).map_err(|error| error.to_string())
            })?;
        }
        Ok(())
    }
}

/// Writes what `contents` makes to `path`.
fn write(
    path: &Path,
    contents: impl FnOnce() -> Result<String, String>,
) -> Result<(), OutputError> {
    contents()
        .and_then(|text| std::fs::write(path, text).map_err(|error| error.to_string()))
        .map_err(|reason| OutputError::Write {
            path: path.to_owned(),
            reason,
        })
}

/// Reads a JSON report.
pub fn read_report(path: &Path) -> Result<Report, OutputError> {
    std::fs::read_to_string(path)
        .map_err(|error| error.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|error| error.to_string()))
        .map_err(|reason| OutputError::Read {
            path: path.to_owned(),
            reason,
        })
}
