//! The ImageFolder reader: labels from the class list, and every skip counted and named.

use hlfp::data::image_folder::{decode_rgb8, parse_class_list, ImageFolder, Verify};
use image::{Rgb, RgbImage};
use std::path::Path;

fn write_img(path: &Path, w: u32, h: u32, px: [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(w, h, Rgb(px)).save(path).unwrap();
}

/// cat/ (2 jpg + a .txt + a corrupt jpg), dog/ (1 png, 1 JPEG upper-case ext, a nested jpg),
/// extra/ (1 jpg), a stray file in the root.
fn make_tree(root: &Path) {
    write_img(&root.join("cat/a.jpg"), 20, 10, [250, 0, 0]);
    write_img(&root.join("cat/b.jpg"), 12, 16, [240, 10, 10]);
    std::fs::write(root.join("cat/notes.txt"), "not an image").unwrap();
    std::fs::write(
        root.join("cat/broken.jpg"),
        b"\xFF\xD8\xFF\xE0 this is not really a jpeg",
    )
    .unwrap();
    write_img(&root.join("dog/c.png"), 8, 8, [0, 0, 250]);
    write_img(&root.join("dog/d.JPEG"), 9, 7, [0, 0, 240]);
    write_img(&root.join("dog/sub/e.jpg"), 9, 9, [0, 10, 240]);
    write_img(&root.join("extra/f.jpg"), 8, 8, [0, 250, 0]);
    std::fs::write(root.join("README"), "stray").unwrap();
}

#[test]
fn default_classes_are_sorted_folders_and_skips_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let ds = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    assert_eq!(ds.classes, ["cat", "dog", "extra"]);
    assert_eq!(ds.report.per_class, [2, 3, 1]);
    assert_eq!(ds.len(), 6);
    assert_eq!(ds.report.images, 6);
    assert_eq!(ds.report.corrupt.len(), 1);
    assert!(ds.report.corrupt[0].0.ends_with("cat/broken.jpg"));
    assert_eq!(ds.report.unsupported.len(), 1);
    assert!(ds.report.unsupported[0].ends_with("cat/notes.txt"));
    assert_eq!(ds.report.stray_files.len(), 1);
    assert_eq!(ds.report.warning_count(), 3);
    let w = ds.report.warnings().join("\n");
    assert!(
        w.contains("1 corrupt image(s)") && w.contains("1 unsupported file(s)"),
        "{w}"
    );
    // Every sample's label is its folder's index: decode each and check its colour family.
    for s in &ds.samples {
        let img = hlfp::data::image_folder::load_rgb8(&s.path).unwrap();
        let p = img.get_pixel(0, 0).0;
        let strongest = (0..3).max_by_key(|&c| p[c]).unwrap();
        let want = match ds.classes[s.label as usize].as_str() {
            "cat" => 0,
            "extra" => 1,
            _ => 2,
        };
        assert_eq!(strongest, want, "{:?}", s.path);
    }
    // Samples are in a deterministic order: by class, then path.
    let again = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    assert_eq!(again.samples, ds.samples);
}

#[test]
fn class_list_sets_labels_and_reports_unlisted_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let list_path = dir.path().join("classes.txt");
    // Note: "classes.txt" in the root is itself a stray file, and is reported as such.
    std::fs::write(&list_path, "# our classes\ndog\n\ncat  # meows\nbird\n").unwrap();
    let ds = ImageFolder::open_with_class_file(dir.path(), &list_path, Verify::Header).unwrap();
    assert_eq!(ds.classes, ["dog", "cat", "bird"]);
    assert_eq!(ds.report.per_class, [3, 2, 0]);
    assert_eq!(ds.report.skipped_folders, ["extra"]);
    assert_eq!(ds.report.missing_classes, ["bird"]);
    for s in &ds.samples {
        let folder = s
            .path
            .strip_prefix(dir.path())
            .unwrap()
            .components()
            .next()
            .unwrap();
        assert_eq!(folder.as_os_str(), ds.classes[s.label as usize].as_str());
    }
}

#[test]
fn class_list_parse_errors() {
    assert!(parse_class_list("a\nb\na\n")
        .unwrap_err()
        .to_string()
        .contains("duplicate class \"a\""));
    assert!(parse_class_list("\n# nothing\n").is_err());
    assert!(parse_class_list("x/y\n")
        .unwrap_err()
        .to_string()
        .contains("not a folder name"));
    assert_eq!(parse_class_list(" a \r\nb\n").unwrap(), ["a", "b"]);
}

#[test]
fn verify_decode_catches_truncated_files_that_pass_the_header_check() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("k/good.png");
    write_img(&good, 64, 64, [1, 2, 3]);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(dir.path().join("k/trunc.png"), &bytes[..bytes.len() / 2]).unwrap();
    let header = ImageFolder::open(dir.path(), None, Verify::Header).unwrap();
    assert_eq!(header.len(), 2, "the header of a truncated PNG is intact");
    let full = ImageFolder::open(dir.path(), None, Verify::Decode).unwrap();
    assert_eq!(full.len(), 1);
    assert_eq!(full.report.corrupt.len(), 1);
    assert!(full.report.corrupt[0].0.ends_with("k/trunc.png"));
}

#[test]
fn decode_handles_formats_by_content_and_rejects_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.png");
    RgbImage::from_pixel(3, 2, Rgb([9, 8, 7])).save(&p).unwrap();
    let img = decode_rgb8(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(img.dimensions(), (3, 2));
    assert_eq!(img.get_pixel(2, 1).0, [9, 8, 7]);
    // Grey-with-alpha PNG converts to RGB.
    let la = image::GrayAlphaImage::from_pixel(2, 2, image::LumaA([77, 10]));
    let q = dir.path().join("la.png");
    la.save(&q).unwrap();
    assert_eq!(
        decode_rgb8(&std::fs::read(&q).unwrap())
            .unwrap()
            .get_pixel(0, 0)
            .0,
        [77, 77, 77]
    );
    assert!(decode_rgb8(b"hello")
        .unwrap_err()
        .to_string()
        .contains("unknown format"));
    assert!(decode_rgb8(&[]).is_err());
}

#[test]
fn missing_root_is_an_error() {
    let err = ImageFolder::open(Path::new("/definitely/not/here"), None, Verify::None).unwrap_err();
    assert!(err.to_string().contains("is not a directory"));
}
