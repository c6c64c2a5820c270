//! Raw image buffers (the fields of a `sensor_msgs/Image`) to packed RGB8, with typed rejections.
//!
//! Supported encodings (names as in ROS `sensor_msgs/image_encodings.hpp`):
//!
//! | encoding                   | bytes/pixel | layout                          |
//! |----------------------------|-------------|---------------------------------|
//! | `rgb8`                     | 3           | R G B                           |
//! | `bgr8`                     | 3           | B G R                           |
//! | `rgba8`                    | 4           | R G B A (alpha dropped)         |
//! | `bgra8`                    | 4           | B G R A (alpha dropped)         |
//! | `mono8`                    | 1           | Y, copied to R, G and B         |
//! | `yuv422` or `uyvy`         | 2           | U0 Y0 V0 Y1 for two pixels      |
//! | `yuv422_yuy2` or `yuyv`    | 2           | Y0 U0 Y1 V0 for two pixels      |
//!
//! YUV 4:2:2 is converted with the ITU-R BT.601 matrix in *limited* ("video") range,
//! Y in 16..=235 and U, V in 16..=240, which is what cameras emit and what OpenCV's
//! `COLOR_YUV2RGB_UYVY` / `_YUY2` (and so cv_bridge) assume. The integer form is
//! `R = (298(Y-16) + 409(V-128) + 128) >> 8`, `G = (298(Y-16) - 100(U-128) - 208(V-128) + 128) >> 8`,
//! `B = (298(Y-16) + 516(U-128) + 128) >> 8`, clamped to 0..=255.
//!
//! Rows may be padded: `step` is the row length in bytes and must be at least
//! `width * bytes_per_pixel`; the padding is skipped. `data` must hold at least `step * height`
//! bytes (the `sensor_msgs/Image` contract); bytes past that are ignored. `is_bigendian` does not
//! matter for these 8-bit encodings and is ignored.

use std::fmt;

/// One of the pixel encodings this module converts. Parse it from a ROS encoding string with
/// [`PixelEncoding::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelEncoding {
    /// `rgb8`.
    Rgb8,
    /// `bgr8`.
    Bgr8,
    /// `rgba8`.
    Rgba8,
    /// `bgra8`.
    Bgra8,
    /// `mono8`.
    Mono8,
    /// `yuv422` (ROS's name) or `uyvy` (its alias since Jazzy): U0 Y0 V0 Y1.
    Uyvy,
    /// `yuv422_yuy2` (ROS's name) or `yuyv` (its alias since Jazzy): Y0 U0 Y1 V0.
    Yuyv,
}

/// Every accepted encoding string, for error messages and docs.
pub const SUPPORTED_ENCODINGS: &[&str] = &[
    "rgb8",
    "bgr8",
    "rgba8",
    "bgra8",
    "mono8",
    "yuv422",
    "uyvy",
    "yuv422_yuy2",
    "yuyv",
];

impl PixelEncoding {
    /// Parse a ROS encoding string. Matching is exact (ROS encodings are lower case).
    pub fn parse(encoding: &str) -> Result<Self, EncodingError> {
        Ok(match encoding {
            "rgb8" => Self::Rgb8,
            "bgr8" => Self::Bgr8,
            "rgba8" => Self::Rgba8,
            "bgra8" => Self::Bgra8,
            "mono8" => Self::Mono8,
            "yuv422" | "uyvy" => Self::Uyvy,
            "yuv422_yuy2" | "yuyv" => Self::Yuyv,
            other => return Err(EncodingError::UnknownEncoding(other.to_string())),
        })
    }

    /// Bytes one pixel takes in a row (2 for the 4:2:2 formats: 4 bytes per pixel pair).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            Self::Rgb8 | Self::Bgr8 => 3,
            Self::Rgba8 | Self::Bgra8 => 4,
            Self::Mono8 => 1,
            Self::Uyvy | Self::Yuyv => 2,
        }
    }

    /// The canonical ROS name (`yuv422`, not `uyvy`).
    pub fn ros_name(self) -> &'static str {
        match self {
            Self::Rgb8 => "rgb8",
            Self::Bgr8 => "bgr8",
            Self::Rgba8 => "rgba8",
            Self::Bgra8 => "bgra8",
            Self::Mono8 => "mono8",
            Self::Uyvy => "yuv422",
            Self::Yuyv => "yuv422_yuy2",
        }
    }

    fn is_yuv422(self) -> bool {
        matches!(self, Self::Uyvy | Self::Yuyv)
    }
}

impl fmt::Display for PixelEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.ros_name())
    }
}

/// Why an image was rejected. Each variant names what was expected; the node counts them by
/// [`EncodingError::kind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// The encoding string is not one we convert.
    #[error("unknown image encoding {0:?}; supported: rgb8, bgr8, rgba8, bgra8, mono8, yuv422 (uyvy), yuv422_yuy2 (yuyv)")]
    UnknownEncoding(String),
    /// Width or height is zero.
    #[error("zero-size image {width}x{height}; expected width and height >= 1")]
    ZeroSize {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// `step` is shorter than one row of pixels.
    #[error("step {step} bytes is less than width {width} x {bytes_per_pixel} bytes/pixel = {min_step} bytes for {encoding}")]
    StepTooSmall {
        /// The message's step.
        step: u32,
        /// Width in pixels.
        width: u32,
        /// Bytes per pixel of the encoding.
        bytes_per_pixel: usize,
        /// The least step that holds one row.
        min_step: usize,
        /// The encoding.
        encoding: PixelEncoding,
    },
    /// `data` is shorter than `step * height`.
    #[error("truncated image data: {got} bytes, expected step {step} x height {height} = {expected} bytes")]
    Truncated {
        /// Bytes present.
        got: usize,
        /// Bytes required.
        expected: usize,
        /// The message's step.
        step: u32,
        /// Height in pixels.
        height: u32,
    },
    /// A 4:2:2 image with an odd width: its last pixel has no chroma pair.
    #[error(
        "{encoding} needs an even width (pixels come in pairs sharing U and V), got width {width}"
    )]
    OddWidth {
        /// The encoding.
        encoding: PixelEncoding,
        /// Width in pixels.
        width: u32,
    },
    /// `step * height` or `width * height * 3` does not fit in memory addresses.
    #[error("image {width}x{height} with step {step} is too large to address")]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The message's step.
        step: u32,
    },
}

impl EncodingError {
    /// A short, stable name of the rejection reason, for counters and diagnostics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownEncoding(_) => "unknown_encoding",
            Self::ZeroSize { .. } => "zero_size",
            Self::StepTooSmall { .. } => "step_too_small",
            Self::Truncated { .. } => "truncated",
            Self::OddWidth { .. } => "odd_width",
            Self::TooLarge { .. } => "too_large",
        }
    }
}

impl From<EncodingError> for crate::Error {
    fn from(e: EncodingError) -> Self {
        crate::Error::BadInput(e.to_string())
    }
}

/// A borrowed view of an image's raw fields, as in `sensor_msgs/Image`.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// Width in pixels (`width`).
    pub width: u32,
    /// Height in pixels (`height`).
    pub height: u32,
    /// Encoding string (`encoding`), e.g. `"bgr8"`.
    pub encoding: &'a str,
    /// Row length in bytes, padding included (`step`).
    pub step: u32,
    /// Byte order flag (`is_bigendian`); irrelevant to the 8-bit encodings supported here.
    pub is_bigendian: bool,
    /// Pixel bytes (`data`), at least `step * height` of them.
    pub data: &'a [u8],
}

/// The checked geometry of a view: what [`validate`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The parsed encoding.
    pub encoding: PixelEncoding,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row length in bytes, padding included.
    pub step: usize,
    /// Bytes of pixels in a row (`width * bytes_per_pixel`), padding excluded.
    pub row_bytes: usize,
}

/// Check a view's encoding, size, step and buffer length without converting anything.
pub fn validate(view: &ImageView<'_>) -> Result<Layout, EncodingError> {
    let encoding = PixelEncoding::parse(view.encoding)?;
    if view.width == 0 || view.height == 0 {
        return Err(EncodingError::ZeroSize {
            width: view.width,
            height: view.height,
        });
    }
    if encoding.is_yuv422() && view.width % 2 != 0 {
        return Err(EncodingError::OddWidth {
            encoding,
            width: view.width,
        });
    }
    let too_large = || EncodingError::TooLarge {
        width: view.width,
        height: view.height,
        step: view.step,
    };
    let width = usize::try_from(view.width).map_err(|_| too_large())?;
    let height = usize::try_from(view.height).map_err(|_| too_large())?;
    let step = usize::try_from(view.step).map_err(|_| too_large())?;
    let bpp = encoding.bytes_per_pixel();
    let row_bytes = width.checked_mul(bpp).ok_or_else(too_large)?;
    if step < row_bytes {
        return Err(EncodingError::StepTooSmall {
            step: view.step,
            width: view.width,
            bytes_per_pixel: bpp,
            min_step: row_bytes,
            encoding,
        });
    }
    let expected = step.checked_mul(height).ok_or_else(too_large)?;
    // The output buffer must be addressable too.
    width
        .checked_mul(height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(too_large)?;
    if view.data.len() < expected {
        return Err(EncodingError::Truncated {
            got: view.data.len(),
            expected,
            step: view.step,
            height: view.height,
        });
    }
    Ok(Layout {
        encoding,
        width,
        height,
        step,
        row_bytes,
    })
}

/// Convert a view to packed RGB8 (`width * height * 3` bytes, rows unpadded).
pub fn to_rgb8(view: &ImageView<'_>) -> Result<Vec<u8>, EncodingError> {
    let mut out = Vec::new();
    to_rgb8_into(view, &mut out)?;
    Ok(out)
}

/// Convert a view to packed RGB8 into `out`, reusing its allocation. On error `out` is left
/// empty. Returns the layout that was converted.
pub fn to_rgb8_into(view: &ImageView<'_>, out: &mut Vec<u8>) -> Result<Layout, EncodingError> {
    out.clear();
    let layout = validate(view)?;
    out.resize(layout.width * layout.height * 3, 0);
    let rows_in = view.data.chunks(layout.step).take(layout.height);
    let rows_out = out.chunks_exact_mut(layout.width * 3);
    for (row_in, row_out) in rows_in.zip(rows_out) {
        convert_row(layout.encoding, &row_in[..layout.row_bytes], row_out);
    }
    Ok(layout)
}

/// Convert one unpadded row; `src` and `dst` lengths are already checked by [`validate`].
fn convert_row(encoding: PixelEncoding, src: &[u8], dst: &mut [u8]) {
    match encoding {
        PixelEncoding::Rgb8 => dst.copy_from_slice(src),
        PixelEncoding::Bgr8 => {
            for (s, d) in src.chunks_exact(3).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        }
        PixelEncoding::Rgba8 => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&s[..3]);
            }
        }
        PixelEncoding::Bgra8 => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(3)) {
                d.copy_from_slice(&[s[2], s[1], s[0]]);
            }
        }
        PixelEncoding::Mono8 => {
            for (&y, d) in src.iter().zip(dst.chunks_exact_mut(3)) {
                d.fill(y);
            }
        }
        PixelEncoding::Uyvy => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                let (u, y0, v, y1) = (s[0], s[1], s[2], s[3]);
                d[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
                d[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
            }
        }
        PixelEncoding::Yuyv => {
            for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
                let (y0, u, y1, v) = (s[0], s[1], s[2], s[3]);
                d[..3].copy_from_slice(&yuv_to_rgb(y0, u, v));
                d[3..].copy_from_slice(&yuv_to_rgb(y1, u, v));
            }
        }
    }
}

/// One pixel, BT.601 limited range YUV to RGB, in 8.8 fixed point (see the module docs).
pub fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = 298 * (i32::from(y) - 16);
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}
