//! The data SPEC a user types (`PATH` or `PATH:SPLIT`) and the options of reading it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::split::Split;

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
}
