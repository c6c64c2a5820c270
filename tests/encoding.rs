//! Tests of `hlfp::vision::encoding`: every encoding against known pixel values, padded rows,
//! and every kind of bad input as a typed error (never a panic).

use hlfp::vision::encoding::{
    to_rgb8, to_rgb8_into, validate, yuv_to_rgb, EncodingError, ImageView, PixelEncoding,
    SUPPORTED_ENCODINGS,
};
use proptest::prelude::*;

/// A 5x3 RGB image whose every channel value differs, so a swapped or shifted channel shows.
fn reference_rgb(width: usize, height: usize) -> Vec<u8> {
    (0..width * height * 3)
        .map(|i| (i * 37 % 251) as u8)
        .collect()
}

/// Pack `rgb` into `encoding`'s byte order with `pad` bytes of 0xEE after each row.
fn pack(rgb: &[u8], width: usize, encoding: &str, pad: usize) -> (Vec<u8>, u32) {
    let mut out = Vec::new();
    for row in rgb.chunks_exact(width * 3) {
        for p in row.chunks_exact(3) {
            match encoding {
                "rgb8" => out.extend_from_slice(p),
                "bgr8" => out.extend_from_slice(&[p[2], p[1], p[0]]),
                "rgba8" => out.extend_from_slice(&[p[0], p[1], p[2], 0x7F]),
                "bgra8" => out.extend_from_slice(&[p[2], p[1], p[0], 0x7F]),
                other => panic!("test packer has no {other}"),
            }
        }
        out.extend(std::iter::repeat_n(0xEE, pad));
    }
    let bpp = if encoding.contains('a') { 4 } else { 3 };
    let step = (width * bpp + pad) as u32;
    (out, step)
}

fn view<'a>(
    width: u32,
    height: u32,
    encoding: &'a str,
    step: u32,
    data: &'a [u8],
) -> ImageView<'a> {
    ImageView {
        width,
        height,
        encoding,
        step,
        is_bigendian: false,
        data,
    }
}

#[test]
fn rgb_family_round_trips_with_and_without_row_padding() {
    let (w, h) = (5usize, 3usize);
    let rgb = reference_rgb(w, h);
    for encoding in ["rgb8", "bgr8", "rgba8", "bgra8"] {
        for pad in [0usize, 1, 3, 16] {
            let (data, step) = pack(&rgb, w, encoding, pad);
            let out = to_rgb8(&view(w as u32, h as u32, encoding, step, &data))
                .unwrap_or_else(|e| panic!("{encoding} pad {pad}: {e}"));
            assert_eq!(out, rgb, "{encoding} with {pad} bytes of row padding");
        }
    }
}

#[test]
fn bgr8_swaps_red_and_blue_of_a_known_pixel() {
    // One pure-blue pixel in BGR order is (255, 0, 0) in memory.
    let out = to_rgb8(&view(1, 1, "bgr8", 3, &[255, 0, 0])).unwrap();
    assert_eq!(out, vec![0, 0, 255]);
    let out = to_rgb8(&view(1, 1, "bgra8", 4, &[10, 20, 30, 40])).unwrap();
    assert_eq!(out, vec![30, 20, 10]);
    let out = to_rgb8(&view(1, 1, "rgba8", 4, &[10, 20, 30, 40])).unwrap();
    assert_eq!(out, vec![10, 20, 30]);
}

#[test]
fn mono8_copies_gray_to_all_channels_and_skips_padding() {
    // 3x2 with step 4: the fourth byte of each row is padding (0xEE) and must not appear.
    let data = [0u8, 100, 255, 0xEE, 7, 8, 9, 0xEE];
    let out = to_rgb8(&view(3, 2, "mono8", 4, &data)).unwrap();
    assert_eq!(
        out,
        vec![0, 0, 0, 100, 100, 100, 255, 255, 255, 7, 7, 7, 8, 8, 8, 9, 9, 9]
    );
}

/// The BT.601 limited-range formula in floating point, written independently of the library's
/// fixed-point form: R = 1.164(Y-16) + 1.596(V-128), G = 1.164(Y-16) - 0.392(U-128) - 0.813(V-128),
/// B = 1.164(Y-16) + 2.017(U-128).
fn bt601_float(y: u8, u: u8, v: u8) -> [f64; 3] {
    let c = 1.164 * (f64::from(y) - 16.0);
    let d = f64::from(u) - 128.0;
    let e = f64::from(v) - 128.0;
    [
        (c + 1.596 * e).clamp(0.0, 255.0),
        (c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
        (c + 2.017 * d).clamp(0.0, 255.0),
    ]
}

#[test]
fn yuv_to_rgb_matches_the_bt601_float_formula_everywhere() {
    let mut worst = 0.0f64;
    for y in (0..=255u8).step_by(3) {
        for u in (0..=255u8).step_by(5) {
            for v in (0..=255u8).step_by(5) {
                let got = yuv_to_rgb(y, u, v);
                let want = bt601_float(y, u, v);
                for c in 0..3 {
                    worst = worst.max((f64::from(got[c]) - want[c]).abs());
                }
            }
        }
    }
    assert!(
        worst <= 1.5,
        "fixed point differs from float BT.601 by {worst}"
    );
}

#[test]
fn yuv_to_rgb_of_the_bt601_colour_bar_values() {
    // Textbook BT.601 limited-range (Y, Cb, Cr) of black, white and the primaries.
    let cases: [((u8, u8, u8), [u8; 3]); 5] = [
        ((16, 128, 128), [0, 0, 0]),
        ((235, 128, 128), [255, 255, 255]),
        ((81, 90, 240), [255, 0, 0]),
        ((145, 54, 34), [0, 255, 0]),
        ((41, 240, 110), [0, 0, 255]),
    ];
    for ((y, u, v), want) in cases {
        let got = yuv_to_rgb(y, u, v);
        for c in 0..3 {
            assert!(
                (i32::from(got[c]) - i32::from(want[c])).abs() <= 2,
                "YUV ({y},{u},{v}) -> {got:?}, expected about {want:?}"
            );
        }
    }
    // Mid grey: Y = 126 (= 16 + 219/2) with neutral chroma is R = G = B = 128.
    assert_eq!(yuv_to_rgb(126, 128, 128), [128, 128, 128]);
}

#[test]
fn uyvy_and_yuyv_byte_orders_and_both_spellings() {
    // Two pixels sharing chroma: left black (Y=16), right white (Y=235), neutral U, V.
    let uyvy = [128u8, 16, 128, 235];
    let yuyv = [16u8, 128, 235, 128];
    let want = vec![0, 0, 0, 255, 255, 255];
    for name in ["yuv422", "uyvy"] {
        assert_eq!(
            to_rgb8(&view(2, 1, name, 4, &uyvy)).unwrap(),
            want,
            "{name}"
        );
    }
    for name in ["yuv422_yuy2", "yuyv"] {
        assert_eq!(
            to_rgb8(&view(2, 1, name, 4, &yuyv)).unwrap(),
            want,
            "{name}"
        );
    }
    // Chroma is shared by the pair: red chroma with two luma values gives two reds.
    let red_pair = [90u8, 81, 240, 81];
    let out = to_rgb8(&view(2, 1, "uyvy", 4, &red_pair)).unwrap();
    assert_eq!(&out[..3], &out[3..]);
    assert!(out[0] >= 253 && out[1] <= 2 && out[2] <= 2, "{out:?}");
}

#[test]
fn yuv_rows_with_padding() {
    // 2x2 UYVY, step 6: two bytes of padding per row that would decode as colour if read.
    let data = [
        128u8, 16, 128, 16, 0, 255, //
        128, 235, 128, 235, 255, 0,
    ];
    let out = to_rgb8(&view(2, 2, "yuv422", 6, &data)).unwrap();
    assert_eq!(out, vec![0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255]);
}

#[test]
fn extra_bytes_after_the_last_row_are_ignored() {
    let data = [1u8, 2, 3, 99, 99];
    assert_eq!(
        to_rgb8(&view(1, 1, "rgb8", 3, &data)).unwrap(),
        vec![1, 2, 3]
    );
}

#[test]
fn unknown_encodings_are_rejected_by_name() {
    for bad in ["mono16", "RGB8", "", "16UC1", "bayer_rggb8", "nv21", "jpeg"] {
        let err = to_rgb8(&view(1, 1, bad, 3, &[0, 0, 0])).unwrap_err();
        assert_eq!(err, EncodingError::UnknownEncoding(bad.to_string()));
        assert_eq!(err.kind(), "unknown_encoding");
        assert!(err.to_string().contains("supported"), "{err}");
    }
}

#[test]
fn every_supported_name_parses_and_round_trips_its_canonical_name() {
    for name in SUPPORTED_ENCODINGS {
        let enc = PixelEncoding::parse(name).unwrap();
        assert_eq!(PixelEncoding::parse(enc.ros_name()).unwrap(), enc);
    }
}

#[test]
fn zero_size_images_are_rejected() {
    for (w, h) in [(0, 1), (1, 0), (0, 0)] {
        let err = to_rgb8(&view(w, h, "rgb8", 3, &[0, 0, 0])).unwrap_err();
        assert_eq!(
            err,
            EncodingError::ZeroSize {
                width: w,
                height: h
            }
        );
    }
}

#[test]
fn a_step_shorter_than_a_row_is_rejected_with_the_minimum() {
    let data = vec![0u8; 64];
    let err = to_rgb8(&view(4, 2, "rgba8", 15, &data)).unwrap_err();
    match err {
        EncodingError::StepTooSmall {
            step: 15,
            min_step: 16,
            bytes_per_pixel: 4,
            ..
        } => {}
        other => panic!("expected StepTooSmall(15 < 16), got {other:?}"),
    }
    assert!(err.to_string().contains("16"), "{err}");
    // mono8 with step 0.
    let err = to_rgb8(&view(2, 2, "mono8", 0, &data)).unwrap_err();
    assert_eq!(err.kind(), "step_too_small");
}

#[test]
fn truncated_buffers_are_rejected_one_byte_short() {
    for (enc, bpp) in [("rgb8", 3u32), ("bgra8", 4), ("mono8", 1), ("yuyv", 2)] {
        let (w, h, pad) = (4u32, 3u32, 2u32);
        let step = w * bpp + pad;
        let need = (step * h) as usize;
        let data = vec![0u8; need - 1];
        let err = to_rgb8(&view(w, h, enc, step, &data)).unwrap_err();
        assert_eq!(
            err,
            EncodingError::Truncated {
                got: need - 1,
                expected: need,
                step,
                height: h
            },
            "{enc}"
        );
        // Exactly enough is fine.
        assert!(
            to_rgb8(&view(w, h, enc, step, &vec![0u8; need])).is_ok(),
            "{enc}"
        );
    }
}

#[test]
fn a_huge_claimed_size_with_little_data_is_rejected_without_allocating() {
    let err = to_rgb8(&view(100_000, 100_000, "rgb8", 300_000, &[0u8; 16])).unwrap_err();
    assert_eq!(err.kind(), "truncated");
    let err = to_rgb8(&view(u32::MAX, u32::MAX, "mono8", u32::MAX, &[0u8; 16])).unwrap_err();
    assert!(matches!(err.kind(), "too_large" | "truncated"), "{err:?}");
}

#[test]
fn odd_width_yuv_is_rejected_but_odd_width_rgb_is_fine() {
    for enc in ["yuv422", "uyvy", "yuv422_yuy2", "yuyv"] {
        let err = to_rgb8(&view(3, 1, enc, 8, &[128u8; 8])).unwrap_err();
        assert_eq!(err.kind(), "odd_width", "{enc}");
    }
    assert!(to_rgb8(&view(3, 1, "rgb8", 9, &[0u8; 9])).is_ok());
}

#[test]
fn into_reuses_the_buffer_and_clears_it_on_error() {
    let mut out = Vec::with_capacity(64);
    let layout = to_rgb8_into(&view(2, 1, "rgb8", 6, &[1, 2, 3, 4, 5, 6]), &mut out).unwrap();
    assert_eq!((layout.width, layout.height, layout.row_bytes), (2, 1, 6));
    assert_eq!(out, vec![1, 2, 3, 4, 5, 6]);
    let err = to_rgb8_into(&view(2, 1, "rgb8", 6, &[1, 2]), &mut out).unwrap_err();
    assert_eq!(err.kind(), "truncated");
    assert!(out.is_empty());
}

#[test]
fn validate_reports_the_layout_and_errors_convert_to_the_crate_error() {
    let data = vec![0u8; 40];
    let layout = validate(&view(4, 2, "bgr8", 20, &data)).unwrap();
    assert_eq!(layout.encoding, PixelEncoding::Bgr8);
    assert_eq!((layout.step, layout.row_bytes), (20, 12));
    let err: hlfp::Error = EncodingError::UnknownEncoding("x".into()).into();
    assert!(
        matches!(err, hlfp::Error::BadInput(ref m) if m.contains("\"x\"")),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    /// Any geometry and any buffer length: either a typed error or an output of w*h*3 bytes.
    #[test]
    fn never_panics_and_ok_means_full_output(
        width in 0u32..40,
        height in 0u32..12,
        step in 0u32..200,
        len in 0usize..3000,
        enc in prop::sample::select(vec!["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "yuv422",
            "uyvy", "yuv422_yuy2", "yuyv", "mono16", ""]),
    ) {
        let data = vec![0x55u8; len];
        match to_rgb8(&view(width, height, enc, step, &data)) {
            Ok(out) => prop_assert_eq!(out.len(), (width * height * 3) as usize),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
