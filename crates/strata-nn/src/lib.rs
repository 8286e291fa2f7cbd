//! strata's networks: a backbone is a stack of blocks; an autoencoder mirrors it with a
//! decoder; a classifier puts a new head on the lower blocks of a backbone.

pub mod autoencoder;
pub mod block;
pub mod classifier;
pub mod decoder;
pub mod error;
pub mod init;
pub mod interop;
pub mod spec;
pub mod weights;

pub use autoencoder::Autoencoder;
pub use block::{Backbone, Block, Features};
pub use classifier::{Classifier, HeadSpec, HiddenLayers};
pub use decoder::Decoder;
pub use error::{NnError, Result};
pub use init::{seeded, try_seeded};
pub use spec::{Activation, ArchSpec, BlockSpec, FeatureShape, InputShape};
pub use weights::{LayerInfo, WeightsFile};
