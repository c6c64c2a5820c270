//! Images: raw buffer decoding (encodings) and preprocessing for the models.
pub mod encoding;
