//! Encoded image files (JPEG, PNG) to RGB8, with documented size limits and truncation checks.
//!
//! Every path that reads an encoded image (folder replay, `hlfp classify`, the dataset loader)
//! decodes here, so all of them refuse the same bad inputs:
//! - files over [`MAX_IMAGE_FILE_BYTES`] (checked before reading);
//! - images wider or taller than [`MAX_IMAGE_SIDE`], or whose decoding would allocate more than
//!   [`MAX_DECODE_ALLOC_BYTES`] (checked from the header, before the pixels are decoded: a
//!   420 KB 12000x12000 PNG would otherwise cost ~450 MB per frame);
//! - a JPEG without its end-of-image marker: the decoder would fill the missing part with grey
//!   and the classifier would answer for a picture that was never seen, so a cut-off file is
//!   refused (not decoded with a warning: a robot should skip the frame, not act on half of it).
//!   A truncated PNG is already an error of the PNG decoder.

use std::io::Read;
use std::path::Path;

use image::RgbImage;

use crate::{Error, Result};

/// Largest encoded image file read, in bytes (128 MiB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 128 << 20;

/// Largest width or height decoded, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Most memory one decode may allocate, in bytes (256 MiB; an 8192x8192 RGB image is 192 MiB).
pub const MAX_DECODE_ALLOC_BYTES: u64 = 256 << 20;

/// Decode an encoded image (JPEG or PNG, recognised by content) into RGB8, within the limits
/// of this module.
pub fn decode_image(bytes: &[u8]) -> Result<RgbImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::BadInput(format!("reading image bytes: {e}")))?;
    let format = reader
        .format()
        .ok_or_else(|| Error::BadInput("not a JPEG or PNG image (unknown format)".into()))?;
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(Error::BadInput(
            "truncated JPEG: no end-of-image marker after the image data (file cut off?)".into(),
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_ALLOC_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(l) => Error::BadInput(format!(
            "image too large to decode ({l}): the limits are {MAX_IMAGE_SIDE} px a side and \
             {} MiB of decoded pixels",
            MAX_DECODE_ALLOC_BYTES >> 20
        )),
        e => Error::BadInput(format!("decoding image: {e}")),
    })?;
    if img.width() == 0 || img.height() == 0 {
        return Err(Error::BadInput("image has zero width or height".into()));
    }
    Ok(img.into_rgb8())
}

/// Read an image file (at most [`MAX_IMAGE_FILE_BYTES`]) and [`decode_image`] it; errors name
/// the file.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    // One byte past the limit tells a file at the limit from a larger one without trusting the
    // size the file system reports (a pipe or a growing file has none).
    file.take(MAX_IMAGE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(Error::BadInput(format!(
            "{}: image file larger than {} MiB",
            path.display(),
            MAX_IMAGE_FILE_BYTES >> 20
        )));
    }
    decode_image(&bytes).map_err(|e| Error::BadInput(format!("{}: {e}", path.display())))
}

/// True when a JPEG has an end-of-image marker (FF D9) after its first start-of-scan (FF DA).
/// Inside entropy-coded data every FF byte is followed by 00 or a restart marker (D0..D7), so
/// FF D9 there can only be the real end; trailing bytes after it are allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(sos) = bytes.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
        out
    }

    #[test]
    fn a_jpeg_cut_in_half_is_refused_not_grey_filled() {
        let full = jpeg(64, 48);
        assert_eq!(decode_image(&full).unwrap().dimensions(), (64, 48));
        let half = &full[..full.len() / 2];
        let e = decode_image(half).unwrap_err().to_string();
        assert!(e.contains("truncated JPEG"), "{e}");
        // Bytes after the end marker (some cameras append metadata) are fine.
        let mut padded = full.clone();
        padded.extend_from_slice(&[0u8; 16]);
        assert!(decode_image(&padded).is_ok());
    }

    #[test]
    fn a_truncated_png_is_refused() {
        let img = RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, (x ^ y) as u8]));
        let mut png = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(decode_image(&png[..png.len() / 2]).is_err());
    }

    #[test]
    fn a_huge_png_is_refused_from_its_header() {
        // 12000x12000 grey PNG: small on disk, 432 MB decoded.
        let side = 12_000u32;
        let mut png = Vec::new();
        {
            let mut enc = png_encoder(&mut png, side, side);
            let row = vec![0u8; side as usize];
            let mut w = enc.stream_writer().unwrap();
            for _ in 0..side {
                std::io::Write::write_all(&mut w, &row).unwrap();
            }
            w.finish().unwrap();
        }
        assert!(png.len() < 2 << 20, "{} bytes", png.len());
        let e = decode_image(&png).unwrap_err().to_string();
        assert!(e.contains("too large") && e.contains("8192"), "{e}");
    }

    fn png_encoder<W: std::io::Write>(out: W, w: u32, h: u32) -> png::Writer<W> {
        let mut enc = png::Encoder::new(out, w, h);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header().unwrap()
    }
}
