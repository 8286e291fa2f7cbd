//! File-format readers, in layers: discovery (a [`Format`]'s `detect` and `has_splits`), the
//! shared IO guards (`io.rs`), and pure parsers over bytes (`parse_*`, what fuzzing calls).
//! Adding a format means one new file here and one line in [`registry`].

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::Result;
use crate::spec::LoadOptions;
use crate::split::Split;

pub mod cifar;
pub mod folder;
pub mod idx;
mod io;

/// Largest image side accepted, so a hostile header cannot make us allocate gigabytes.
pub const MAX_SIDE: u32 = 8192;

/// A reader for one on-disk layout.
pub trait Format {
    /// Short name used in messages and the data set's `source`.
    fn name(&self) -> &'static str;
    /// One line describing the accepted layout, shown when no format claims a path.
    fn layout(&self) -> &'static str;
    /// Whether this reader claims `path` (cheap: names and directory listings only).
    fn detect(&self, path: &Path) -> bool;
    /// Whether `path` holds separate train and test parts a split can choose between.
    fn has_splits(&self, path: &Path) -> bool;
    /// Reads the data at `path` (the `split` part where it has splits).
    fn load(&self, path: &Path, split: Split, opts: &LoadOptions) -> Result<Dataset>;
}

/// All readers, most specific first: the folder reader claims any directory, so it is last.
pub fn registry() -> Vec<Box<dyn Format>> {
    vec![Box::new(idx::Idx), Box::new(cifar::Cifar), Box::new(folder::Folder)]
}

/// The layouts of every registered reader, one per line.
pub fn accepted_layouts() -> String {
    registry().iter().map(|f| format!("  {}: {}", f.name(), f.layout())).collect::<Vec<_>>().join("\n")
}

/// Hidden files and folders (dot-names) are skipped: they are editor or OS litter.
pub(crate) fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

/// The file name as UTF-8, or "" when it has none or is not UTF-8.
pub(crate) fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// Describes where a data set came from, for `Dataset::source`.
pub(crate) fn describe(path: &Path, split: Option<Split>, format: &str) -> String {
    match split {
        Some(s) => format!("{} ({s} split, {format})", path.display()),
        None => format!("{} ({format})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_has_a_distinct_name_and_layout() {
        let r = registry();
        let mut names: Vec<_> = r.iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), r.len());
        assert!(r.iter().all(|f| !f.layout().is_empty()));
        assert_eq!(accepted_layouts().lines().count(), r.len());
    }

    #[test]
    fn hidden_and_names() {
        assert!(is_hidden(Path::new("a/.DS_Store")));
        assert!(!is_hidden(Path::new("a/b.png")));
        assert_eq!(file_name(Path::new("x/y.gz")), "y.gz");
        assert_eq!(describe(Path::new("d"), Some(Split::Test), "IDX"), "d (test split, IDX)");
    }
}
