//! WAV files as recorders leave them: cut off mid-recording, with a streaming header whose
//! sizes say 0xFFFFFFFF, 64-bit float, read piece by piece.

use hlfp::audio::wav::{decode_wav, read_wav, WavStream};

/// A 16-bit mono WAV of `n` samples (ramp) written by hound.
fn pcm16(n: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    for i in 0..n {
        w.write_sample((i % 1000) as i16 * 16).unwrap();
    }
    w.finalize().unwrap();
    out.into_inner()
}

fn data_offset(wav: &[u8]) -> usize {
    wav.windows(4).position(|w| w == b"data").unwrap()
}

/// A WAV with a hand-written header: format tag, bits, channels, then the raw data bytes.
fn handmade(tag: u16, bits: u16, channels: u16, data: &[u8]) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&(8000 * align as u32).to_le_bytes());
    v.extend_from_slice(&align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&(data.len() as u32).to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn a_cut_off_recording_keeps_the_samples_it_has() {
    let full = pcm16(1000);
    let whole = decode_wav(&full[..], "full.wav").unwrap();
    assert_eq!((whole.samples.len(), whole.truncated), (1000, false));
    // The recorder died after 300 samples and a half: the header still says 1000.
    let cut = &full[..data_offset(&full) + 8 + 601];
    let clip = decode_wav(cut, "cut.wav").unwrap();
    assert_eq!(clip.samples.len(), 300);
    assert!(clip.truncated);
    assert_eq!(clip.samples[..], whole.samples[..300]);
}

#[test]
fn a_streaming_header_reads_to_the_end_of_the_file() {
    let mut wav = pcm16(500);
    let d = data_offset(&wav);
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    wav[d + 4..d + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let clip = decode_wav(&wav[..], "live.wav").unwrap();
    assert_eq!((clip.samples.len(), clip.truncated), (500, false));
    // Size 0 (written before the length was known) means the same.
    wav[d + 4..d + 8].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode_wav(&wav[..], "live.wav").unwrap().samples.len(), 500);
}

#[test]
fn sixty_four_bit_float_decodes_and_downmixes() {
    let frames: [[f64; 2]; 3] = [[0.5, -0.25], [-0.5, 0.5], [1e300, 0.0]];
    let data: Vec<u8> = frames
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let clip = decode_wav(&handmade(3, 64, 2, &data)[..], "f64.wav").unwrap();
    // 1e300 does not fit an f32: it becomes inf, then a sanitised 0.
    assert_eq!(clip.samples, vec![0.125, 0.0, 0.0]);
    assert_eq!(
        (clip.channels, clip.sample_rate_hz, clip.non_finite),
        (2, 8000, 1)
    );
}

#[test]
fn headers_outside_the_limits_are_clear_errors() {
    let e = decode_wav(&handmade(1, 16, 0, &[0; 4])[..], "c0.wav").unwrap_err();
    assert!(e.to_string().contains("0 channels"), "{e}");
    let e = decode_wav(&handmade(1, 16, 1000, &[0; 4])[..], "c1000.wav").unwrap_err();
    assert!(e.to_string().contains("at most 64"), "{e}");
    let e = decode_wav(&handmade(2, 16, 1, &[0; 4])[..], "adpcm.wav").unwrap_err();
    assert!(e.to_string().contains("format tag 0x0002"), "{e}");
    let e = decode_wav(&handmade(3, 16, 1, &[0; 4])[..], "f16.wav").unwrap_err();
    assert!(e.to_string().contains("16-bit float"), "{e}");
    let e = decode_wav(&b"RIFF\0\0\0\0WAVE"[..], "bare.wav").unwrap_err();
    assert!(e.to_string().contains("no fmt chunk"), "{e}");
    let e = decode_wav(&handmade(1, 16, 1, &[])[..], "empty.wav").unwrap_err();
    assert!(e.to_string().contains("no samples"), "{e}");
}

#[test]
fn a_stream_yields_pieces_that_equal_the_whole_clip() {
    let wav = pcm16(10_007);
    let whole = decode_wav(&wav[..], "w.wav").unwrap().samples;
    let mut s = WavStream::new(&wav[..], "w.wav").unwrap();
    let (mut got, mut piece) = (Vec::new(), Vec::new());
    while s.read_frames(320, &mut piece).unwrap() > 0 {
        assert!(piece.len() <= 320);
        got.extend_from_slice(&piece);
    }
    assert_eq!(got, whole);
    assert_eq!(s.frames_read(), 10_007);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.wav");
    std::fs::write(&p, &wav).unwrap();
    assert_eq!(read_wav(&p).unwrap().samples, whole);
}
