//! Data sets for strata: readers for image folders, IDX and CIFAR files, class-balanced
//! subsets, normalisation statistics, batching and augmentation.
//!
//! Entry point: [`load`] a [`DataSpec`] (`PATH` or `PATH:train|test`) with [`LoadOptions`].

#![warn(missing_docs)]

pub mod augment;
pub mod batch;
pub mod classes;
pub mod convert;
pub mod dataset;
pub mod error;
pub mod formats;
pub mod load;
pub mod normalize;
pub mod policy;
pub mod spec;
pub mod split;
pub mod subset;
pub mod testing;
pub mod warp;

pub use augment::{gaussian, mask, random_shift, rotate90, shift};
pub use batch::epoch_order;
pub use classes::parse_classes;
pub use dataset::{Dataset, ImageShape};
pub use error::{DataError, Result};
pub use formats::folder::{FileImage, decode_each};
pub use formats::idx::{read_idx_images, read_idx_labels};
pub use formats::{Format, registry};
pub use load::{image_folder, load};
pub use normalize::Normalization;
pub use policy::AugmentPolicy;
pub use spec::{DataSpec, LoadOptions};
pub use split::Split;
pub use subset::{stratified_fraction, stratified_split, stratified_subset};
pub use testing::{write_cifar10_batch, write_idx_images, write_idx_labels};
