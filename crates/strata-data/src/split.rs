//! Which part of a data set with separate training and test parts.

use serde::{Deserialize, Serialize};
use std::fmt;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_serde_and_display() {
        assert_eq!(Split::Test.to_string(), "test");
        assert_eq!(Split::Train.as_str(), "train");
    }
}
