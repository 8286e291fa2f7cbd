//! The data SPEC a user types (`PATH` or `PATH:SPLIT`) and the entry point that loads it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::convert::conform;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::formats::{accepted_layouts, registry};

/// Which half of a data set with separate training and test parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training part.
    Train,
    /// The held-out test part.
    Test,
}

impl Split {
    /// The lowercase name used in specs and folder names.
    pub fn as_str(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data location as given on the command line: a path and maybe a split.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataSpec {
    /// File or folder holding the data.
    pub path: PathBuf,
    /// The split asked for explicitly, if any.
    pub split: Option<Split>,
}

impl DataSpec {
    /// Parses `PATH` or `PATH:train` / `PATH:test`; any other `:suffix` stays part of the path.
    pub fn parse(s: &str) -> Result<DataSpec> {
        let (path, split) = if let Some(p) = s.strip_suffix(":train") {
            (p, Some(Split::Train))
        } else if let Some(p) = s.strip_suffix(":test") {
            (p, Some(Split::Test))
        } else {
            (s, None)
        };
        if path.is_empty() {
            return Err(DataError::BadSpec { spec: s.to_string(), reason: "the path is empty".into() });
        }
        Ok(DataSpec { path: PathBuf::from(path), split })
    }

    /// A spec for `path` with no explicit split.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataSpec { path: path.into(), split: None }
    }

    /// The same path with an explicit split.
    pub fn with_split(mut self, split: Split) -> Self {
        self.split = Some(split);
        self
    }
}

impl FromStr for DataSpec {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        DataSpec::parse(s)
    }
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        match self.split {
            Some(s) => write!(f, ":{s}"),
            None => Ok(()),
        }
    }
}

/// How to read a data set and what to turn it into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Fail unless the data comes with labels.
    pub require_labels: bool,
    /// Convert every image to this many channels (1 or 3); `None` keeps what the data has.
    pub channels: Option<usize>,
    /// Resize every image to (height, width); `None` requires all images to share one size.
    pub resize: Option<(usize, usize)>,
    /// The split used when the spec names none and the data has splits.
    pub default_split: Split,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { require_labels: false, channels: None, resize: None, default_split: Split::Train }
    }
}

impl LoadOptions {
    /// Checks the options themselves, naming the data path in any error.
    pub(crate) fn validate(&self, path: &Path) -> Result<()> {
        if let Some(c) = self.channels
            && c != 1
            && c != 3
        {
            return Err(DataError::BadOption {
                path: path.to_path_buf(),
                reason: format!("cannot convert to {c} channels; use 1 (grayscale) or 3 (RGB)"),
            });
        }
        if let Some((h, w)) = self.resize
            && (h == 0 || w == 0 || h > crate::formats::MAX_SIDE as usize || w > crate::formats::MAX_SIDE as usize)
        {
            return Err(DataError::BadOption {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot resize to {h}x{w}; height and width must be between 1 and {}",
                    crate::formats::MAX_SIDE
                ),
            });
        }
        Ok(())
    }
}

/// Loads the data a spec points at, whatever its format, converted as the options say.
pub fn load(spec: &DataSpec, opts: &LoadOptions) -> Result<Dataset> {
    let path = spec.path.as_path();
    opts.validate(path)?;
    // `exists` follows symlinks, so a dangling link is reported as missing, which it is.
    if !path.exists() {
        return Err(DataError::NotFound { path: path.to_path_buf() });
    }
    let formats = registry();
    let Some(format) = formats.iter().find(|f| f.detect(path)) else {
        return Err(DataError::UnknownFormat { path: path.to_path_buf(), accepted: accepted_layouts() });
    };
    // Loading a whole unsplit folder when the user asked for ":test" would quietly evaluate
    // on whatever is there, possibly training data; refuse instead.
    if let Some(split) = spec.split
        && !format.has_splits(path)
    {
        return Err(DataError::SplitUnavailable { path: path.to_path_buf(), split });
    }
    let split = spec.split.unwrap_or(opts.default_split);
    let data = format.load(path, split, opts)?;
    if opts.require_labels && data.labels.is_none() {
        return Err(DataError::Unlabeled { dataset: data.source });
    }
    if data.is_empty() {
        return Err(DataError::NoImages { path: path.to_path_buf() });
    }
    conform(data, opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_only_known_suffixes() {
        let s = DataSpec::parse("data/mnist:test").unwrap();
        assert_eq!(s.path, PathBuf::from("data/mnist"));
        assert_eq!(s.split, Some(Split::Test));
        assert_eq!(DataSpec::parse("a:train").unwrap().split, Some(Split::Train));
        let s = DataSpec::parse("a:valid").unwrap();
        assert_eq!(s.path, PathBuf::from("a:valid"));
        assert_eq!(s.split, None);
        assert_eq!(DataSpec::parse("C:/x").unwrap().path, PathBuf::from("C:/x"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["data/mnist5k", "data/mnist5k:train", "x:test", "odd:name", "a:b:test"] {
            let spec: DataSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
            assert_eq!(DataSpec::parse(&spec.to_string()).unwrap(), spec);
        }
    }

    #[test]
    fn empty_path_is_an_error() {
        let err = DataSpec::parse(":train").unwrap_err().to_string();
        assert!(err.contains("path is empty"), "{err}");
        assert!(DataSpec::parse("").is_err());
    }

    #[test]
    fn split_serde_and_display() {
        assert_eq!(Split::Test.to_string(), "test");
        assert_eq!(Split::Train.as_str(), "train");
    }

    #[test]
    fn missing_path_is_not_found() {
        let err = load(&DataSpec::new("/definitely/not/here/strata"), &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::NotFound { .. }));
        let msg = err.to_string();
        assert!(msg.contains("/definitely/not/here/strata") && msg.contains("no such file"), "{msg}");
    }

    #[test]
    fn bad_options_are_rejected_before_reading() {
        let opts = LoadOptions { channels: Some(2), ..LoadOptions::default() };
        let msg = load(&DataSpec::new("/nowhere"), &opts).unwrap_err().to_string();
        assert!(msg.contains("2 channels"), "{msg}");
        let opts = LoadOptions { resize: Some((0, 5)), ..LoadOptions::default() };
        let msg = load(&DataSpec::new("/nowhere"), &opts).unwrap_err().to_string();
        assert!(msg.contains("0x5"), "{msg}");
    }

    #[test]
    fn unknown_file_lists_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "hello").unwrap();
        let msg = load(&DataSpec::new(&f), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("notes.txt") && msg.contains("accepted layouts") && msg.contains("idx3"), "{msg}");
    }
}
