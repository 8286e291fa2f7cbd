//! The one error type of this crate.
//!
//! Every message names what is wrong (usually a file) and says how to fix it, because
//! these errors end up in front of a user who gave us a path on the command line.

use std::path::PathBuf;

use crate::split::Split;

/// Shorthand for results whose error is [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

/// Everything that can go wrong while reading or preparing a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path given does not exist.
    #[error("{path}: no such file or directory; check the path (a data SPEC is PATH, PATH:train or PATH:test)")]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },

    /// An operating-system error while reading a file.
    ///
    /// The operating system's error is part of the message and deliberately not a
    /// `source()`, so that a report printing the whole chain does not say it twice.
    #[error("{path}: could not read it: {error}; check that it is readable and not damaged")]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },

    /// The data SPEC string could not be understood.
    #[error("bad data spec {spec:?}: {reason}; expected PATH, PATH:train or PATH:test")]
    BadSpec {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A load option does not make sense.
    #[error("{path}: {reason}")]
    BadOption {
        /// The data path the option was given for.
        path: PathBuf,
        /// What is wrong and what is accepted.
        reason: String,
    },

    /// No registered reader recognises the path.
    #[error("{path}: not a data set layout strata knows; accepted layouts:\n{accepted}")]
    UnknownFormat {
        /// The path nobody claimed.
        path: PathBuf,
        /// One accepted layout per line.
        accepted: String,
    },

    /// A split was asked for but the data has no separate splits.
    #[error(
        "{path}: has no separate {split} split; drop the ':{split}' suffix to use all of it, or point at a folder with train/ and test/ (or train-*/t10k-* files)"
    )]
    SplitUnavailable {
        /// The data path.
        path: PathBuf,
        /// The split asked for.
        split: Split,
    },

    /// The data has splits, but not the one asked for.
    #[error("{path}: no {split} split here; looked for {looked_for}")]
    SplitNotFound {
        /// The data path.
        path: PathBuf,
        /// The split asked for.
        split: Split,
        /// What was looked for, in words.
        looked_for: String,
    },

    /// Several files could be the one meant.
    #[error("{path}: several candidate files: {}; pass the one you mean as the path", list(candidates))]
    Ambiguous {
        /// The folder searched.
        path: PathBuf,
        /// The files that all matched.
        candidates: Vec<PathBuf>,
    },

    /// A binary file does not start with the expected magic number.
    #[error("{path}: bad magic number 0x{found:08x}, expected 0x{expected:08x}: {hint}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number read.
        found: u32,
        /// The magic number wanted.
        expected: u32,
        /// What the number found says, and what to do.
        hint: String,
    },

    /// A path that must be a file is something else (a pipe, a device, a folder).
    #[error("{path}: not a regular file (a pipe, a device or a folder); point at the data file itself or its folder")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },

    /// A file header holds values that cannot be right.
    #[error("{path}: bad header: {reason}")]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        reason: String,
    },

    /// A file is shorter than its header (or record size) says.
    #[error(
        "{path}: truncated: expected {expected_bytes} bytes of data, found {found_bytes}; the file is incomplete, download or copy it again"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promised.
        expected_bytes: u64,
        /// Bytes actually there.
        found_bytes: u64,
    },

    /// A file has more data than its header says.
    #[error(
        "{path}: more data than the header's {expected_bytes} bytes; the header or the file is wrong, download or copy it again"
    )]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Bytes the header promised.
        expected_bytes: u64,
    },

    /// Image and label files disagree on the number of items.
    #[error(
        "{images_path} holds {images} images but {labels_path} holds {labels} labels; they must come from the same split and data set"
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },

    /// An image file could not be decoded.
    #[error("{path}: cannot decode image: {reason}; remove or replace the file")]
    CorruptImage {
        /// The image file.
        path: PathBuf,
        /// The decoder's complaint.
        reason: String,
    },

    /// An image is too large to be sensible training data.
    #[error("{path}: image is {width}x{height}, larger than the {max}x{max} limit; shrink it or remove it")]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The largest side accepted.
        max: u32,
    },

    /// Images differ in size or channel count and no rule says how to reconcile them.
    #[error(
        "{path}: is {}x{}x{} (channels x height x width) but {first_path} is {}x{}x{}; all images must match: pass --resize HxW to resize them (and --channels 1 or 3 to convert colour)",
        found.0, found.1, found.2, first.0, first.1, first.2
    )]
    MixedSizes {
        /// The image that differs.
        path: PathBuf,
        /// The first image, which set the expected shape.
        first_path: PathBuf,
        /// Shape of the first image as (channels, height, width).
        first: (usize, usize, usize),
        /// Shape of the differing image as (channels, height, width).
        found: (usize, usize, usize),
    },

    /// A class folder holds no images.
    #[error("{path}: class folder holds no images; add images or remove the folder")]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
    },

    /// No images at all were found.
    #[error("{path}: no images found (accepted extensions: png, jpg, jpeg, bmp, gif, tif, tiff, webp)")]
    NoImages {
        /// The folder or file searched.
        path: PathBuf,
    },

    /// Labels are needed but the folder is not laid out as one subfolder per class.
    #[error(
        "{path}: labeled data is needed but {reason}; put the images in one subfolder per class (root/<class>/*.png)"
    )]
    NotClassFolders {
        /// The root folder.
        path: PathBuf,
        /// Why the layout does not give labels.
        reason: String,
    },

    /// Labels are needed but the data set has no labels file.
    #[error("{path}: labeled data is needed but there are no labels: {hint}")]
    MissingLabels {
        /// The images file or folder.
        path: PathBuf,
        /// Where labels were looked for and what to do.
        hint: String,
    },

    /// A data set that was loaded without labels is used where labels are needed.
    #[error(
        "{dataset}: labeled data is needed here but this data set has no labels; use a folder with one subfolder per class, or IDX/CIFAR files with their labels"
    )]
    Unlabeled {
        /// Description of the data set.
        dataset: String,
    },

    /// A class has fewer labeled examples than asked for.
    #[error(
        "class {class}: {requested} labeled examples asked for but only {available} exist; ask for at most {available} per class"
    )]
    NotEnoughLabels {
        /// The class name (or index).
        class: String,
        /// Examples of that class available.
        available: usize,
        /// Examples asked for.
        requested: usize,
    },

    /// A class list (`--classes`) names classes the data does not have.
    #[error("--classes {spec}: {reason}; the data's classes are {available}")]
    BadClasses {
        /// The list given.
        spec: String,
        /// What is wrong with it.
        reason: String,
        /// The class names available, comma-separated.
        available: String,
    },
    /// A fraction argument is outside its allowed range.
    #[error("{name} = {value} is out of range: {allowed}")]
    BadFraction {
        /// Which fraction.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The range allowed, in words.
        allowed: &'static str,
    },

    /// Train and test data name their classes differently.
    #[error(
        "train and test classes differ: train has [{}], test has [{}]; both must have the same class names in the same order",
        train.join(", "), test.join(", ")
    )]
    ClassMismatch {
        /// Class names of the training data.
        train: Vec<String>,
        /// Class names of the test data.
        test: Vec<String>,
    },

    /// A label value is not a valid class index.
    #[error(
        "{path}: record {index} has label {label}, but only {num_classes} classes exist (0..{num_classes}); the file is damaged or not of this format"
    )]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// Which record.
        index: usize,
        /// The label read.
        label: u32,
        /// How many classes the format allows.
        num_classes: usize,
    },

    /// A label so far above the others that most classes it implies would be empty.
    #[error(
        "{path}: record {index} has label {label}, which would make {} classes of which {empty} have no example at all; IDX labels are class indices 0..K-1: the file is damaged, or renumber its classes from 0",
        *label as u64 + 1
    )]
    SparseLabels {
        /// The labels file.
        path: PathBuf,
        /// The first record holding the label.
        index: usize,
        /// The largest label.
        label: u32,
        /// Classes below it without any example.
        empty: usize,
    },

    /// Two class folders whose names are equal once case is ignored.
    #[error(
        "{first} and {second}: two class folders whose names differ only in case (or only in bytes that are not UTF-8); classes must have distinct names: merge the two folders or rename one"
    )]
    DuplicateClass {
        /// The first folder, in sorted order.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },

    /// A symbolic link in an image folder that points back at a folder containing it.
    #[error(
        "{path}: symbolic link to {target}, a folder that contains it, would loop forever; remove the link or point it elsewhere"
    )]
    SymlinkLoop {
        /// The link.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
    },

    /// An image-named symbolic link that cannot be followed (dangling, or a loop of links).
    #[error("{path}: symbolic link cannot be followed: {reason}; remove it or fix its target")]
    BrokenLink {
        /// The link.
        path: PathBuf,
        /// Why it cannot be followed (the operating system's words).
        reason: String,
    },

    /// Image folders nested beyond any sensible depth.
    #[error("{path}: folders nested more than {max} levels deep; point at a shallower folder")]
    TooDeep {
        /// The folder at the limit.
        path: PathBuf,
        /// The depth allowed.
        max: usize,
    },

    /// Normalisation statistics (from `--mean`/`--std` or a manifest) that cannot be used.
    #[error("bad normalisation statistics: {reason}")]
    BadNormalization {
        /// What is wrong with them.
        reason: String,
    },

    /// The decoded images do not fit in memory.
    #[error(
        "{what}: the decoded images need {bytes} bytes of memory, more than can be allocated; use fewer images or a smaller --resize"
    )]
    OutOfMemory {
        /// The data set (path and split).
        what: String,
        /// Bytes asked for.
        bytes: u64,
    },

    /// A class-names file is unusable.
    #[error("{path}: bad class names file: {reason}; fix or remove it")]
    BadMeta {
        /// The names file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn list(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl DataError {
    /// Wraps an io error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        DataError::Io { path: path.into(), error }
    }
}
