//! The entry point that reads a data SPEC, whatever its format, into a [`Dataset`].

use std::path::Path;

use crate::convert::conform;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::formats::{MAX_SIDE, accepted_layouts, registry};
use crate::spec::{DataSpec, LoadOptions};

/// Checks the options themselves, naming the data path in any error.
fn validate_options(opts: &LoadOptions, path: &Path) -> Result<()> {
    if let Some(c) = opts.channels
        && c != 1
        && c != 3
    {
        return Err(DataError::BadOption {
            path: path.to_path_buf(),
            reason: format!("cannot convert to {c} channels; use 1 (grayscale) or 3 (RGB)"),
        });
    }
    if let Some((h, w)) = opts.resize
        && (h == 0 || w == 0 || h > MAX_SIDE as usize || w > MAX_SIDE as usize)
    {
        return Err(DataError::BadOption {
            path: path.to_path_buf(),
            reason: format!("cannot resize to {h}x{w}; height and width must be between 1 and {}", MAX_SIDE),
        });
    }
    Ok(())
}

/// The reader of `spec`'s path, checked: the path exists, a format recognises it, and a split
/// the spec names is one that format has.
fn format_of(spec: &DataSpec) -> Result<Box<dyn crate::formats::Format>> {
    let path = spec.path.as_path();
    if !path.exists() {
        return Err(DataError::NotFound { path: path.to_path_buf() });
    }
    let Some(format) = registry().into_iter().find(|f| f.detect(path)) else {
        return Err(DataError::UnknownFormat { path: path.to_path_buf(), accepted: accepted_layouts() });
    };
    if let Some(split) = spec.split
        && !format.has_splits(path)
    {
        return Err(DataError::SplitUnavailable { path: path.to_path_buf(), split });
    }
    Ok(format)
}

/// Loads the data a spec points at, whatever its format, converted as the options say.
pub fn load(spec: &DataSpec, opts: &LoadOptions) -> Result<Dataset> {
    let path = spec.path.as_path();
    validate_options(opts, path)?;
    let format = format_of(spec)?;
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

/// Where the image files of `spec` are when it names an image folder (the split's subfolder
/// when the folder has `train/` and `test/`, `default_split` unless the spec names one);
/// `None` for the binary formats, whose images have no files of their own.
pub fn image_folder(spec: &DataSpec, default_split: crate::split::Split) -> Result<Option<std::path::PathBuf>> {
    let format = format_of(spec)?;
    if format.name() != crate::formats::Format::name(&crate::formats::folder::Folder) {
        return Ok(None);
    }
    let (root, _) = crate::formats::folder::split_root(&spec.path, spec.split.unwrap_or(default_split))?;
    Ok(Some(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DataError;

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
