//! Images: raw buffer decoding (encodings) and preprocessing for the models.
pub mod encoding;
//! Vision: inference preprocessing of frames and training augmentation.

pub mod augment;
pub mod preprocess;
