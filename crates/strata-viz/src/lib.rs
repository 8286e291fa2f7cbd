//! Pictures a user wants to look at after a run: image grids (reconstructions, GAN samples)
//! and line plots (loss curves, accuracy against labels), written as PNG bytes.

mod grid;
mod plot;

pub use grid::image_grid;
pub use plot::{Plot, Series};

/// What can go wrong while drawing.
#[derive(Debug, thiserror::Error)]
pub enum VizError {
    /// The pixel data does not match the declared image shape.
    #[error("image grid: {0}")]
    Shape(String),
    /// PNG encoding failed.
    #[error("PNG encoding: {0}")]
    Encode(String),
}

/// Result with [`VizError`].
pub type Result<T> = std::result::Result<T, VizError>;
