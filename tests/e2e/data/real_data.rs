//! Every reader on real MNIST pixels: IDX (gzipped and raw), PNG and JPEG folders, CIFAR.

use super::common::*;
use strata_data::*;

#[test]
fn idx_gz_folder_has_both_splits() {
    let train = mnist5k(Split::Train);
    let test = mnist5k(Split::Test);
    assert_eq!(train.len(), 4000);
    assert_eq!(test.len(), 1000);
    assert_eq!(train.shape, ImageShape::new(1, 28, 28));
    assert_eq!(train.class_names, (0..10).map(|c| c.to_string()).collect::<Vec<_>>());
    assert_eq!(train.class_counts(), vec![400; 10]);
    assert_eq!(test.class_counts(), vec![100; 10]);
    train.check_same_classes(&test).unwrap();
    assert!(train.source.contains("train split") && train.source.contains("IDX"), "{}", train.source);
    // The default split is train.
    let default = load(&DataSpec::new(mnist5k_dir()), &LoadOptions::default()).unwrap();
    assert_eq!(default.fingerprint(), train.fingerprint());
    let test_default =
        load(&DataSpec::new(mnist5k_dir()), &LoadOptions { default_split: Split::Test, ..Default::default() }).unwrap();
    assert_eq!(test_default.fingerprint(), test.fingerprint());
}

#[test]
fn idx_raw_equals_gz_and_files_load_directly() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
        gunzip(&mnist5k_dir().join(format!("{name}.gz")), &dir.path().join(name));
    }
    let spec: DataSpec = format!("{}:train", dir.path().display()).parse().unwrap();
    let raw = load(&spec, &LoadOptions { require_labels: true, ..Default::default() }).unwrap();
    assert_eq!(raw.fingerprint(), mnist5k(Split::Train).fingerprint());

    // An images file names its labels file; without it the data is unlabeled.
    let images = dir.path().join("train-images-idx3-ubyte");
    let direct = load(&DataSpec::new(&images), &LoadOptions::default()).unwrap();
    assert_eq!(direct.fingerprint(), raw.fingerprint());
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte")).unwrap();
    let unlabeled = load(&DataSpec::new(&images), &LoadOptions::default()).unwrap();
    assert!(unlabeled.labels().is_none());
    assert_eq!(unlabeled.images, raw.images);
    let msg = load(&DataSpec::new(&images), &LoadOptions { require_labels: true, ..Default::default() })
        .unwrap_err()
        .to_string();
    assert!(msg.contains("train-labels-idx1-ubyte") && msg.contains("labeled data is needed"), "{msg}");

    // A single file has no splits to choose from.
    let msg = load(&DataSpec::new(&images).with_split(Split::Test), &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("no separate test split"), "{msg}");
}

#[test]
fn png_folder_matches_idx_pixels_exactly() {
    let train = mnist5k(Split::Train).subset(&(0..300).collect::<Vec<_>>());
    let test = mnist5k(Split::Test).subset(&(0..100).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let train_order = write_image_folder(&train, &dir.path().join("train"), "png");
    let test_order = write_image_folder(&test, &dir.path().join("test"), "png");

    let spec = DataSpec::parse(&format!("{}:train", dir.path().display())).unwrap();
    let got = load(&spec, &LoadOptions { require_labels: true, ..Default::default() }).unwrap();
    // Same pixels, labels and class names in folder order: the same fingerprint.
    assert_eq!(got.fingerprint(), train.subset(&train_order).fingerprint());
    assert!(got.source.contains("train split") && got.source.contains("image folder"), "{}", got.source);

    let got_test = load(&spec.clone().with_split(Split::Test), &LoadOptions::default()).unwrap();
    assert_eq!(got_test.images, test.subset(&test_order).images);
    got.check_same_classes(&got_test).unwrap();

    // Class folders are labeled even when labels are not required; callers drop them.
    let pretrain = load(&spec, &LoadOptions::default()).unwrap().unlabeled();
    assert!(pretrain.labels().is_none());
    assert_eq!(pretrain.images, got.images);

    // Channels and size can be changed on the way in, for folders and IDX alike.
    let opts = LoadOptions { channels: Some(3), resize: Some((32, 32)), ..Default::default() };
    let rgb = load(&spec, &opts).unwrap();
    assert_eq!(rgb.shape, ImageShape::new(3, 32, 32));
    let rgb_idx = load(&DataSpec::new(mnist5k_dir()), &opts).unwrap();
    assert_eq!(rgb_idx.shape, ImageShape::new(3, 32, 32));
    assert_eq!(rgb_idx.len(), 4000);
    // Folder (resized per image) and IDX (resized per plane) agree on the first image of class 0.
    let first_folder = rgb.image(0);
    let first_idx = rgb_idx.image(train_order[0]);
    assert_eq!(first_folder, first_idx);
}

#[test]
fn jpeg_folder_is_close_to_the_source_pixels() {
    let train = mnist5k(Split::Train).subset(&(0..100).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let order = write_image_folder(&train, dir.path(), "JPG");
    let got = load(&DataSpec::new(dir.path()), &LoadOptions::default()).unwrap();
    let want = train.subset(&order);
    assert_eq!(got.shape, want.shape);
    assert_eq!(got.labels(), want.labels());
    assert_eq!(got.class_names, want.class_names);
    let mae = got.images.iter().zip(&want.images).map(|(&a, &b)| (a as f64 - b as f64).abs()).sum::<f64>()
        / got.images.len() as f64;
    assert!(mae < 10.0, "JPEG mean absolute error {mae}");
}

#[test]
fn unlabeled_tree_of_mixed_formats() {
    let train = mnist5k(Split::Train).subset(&(0..6).collect::<Vec<_>>());
    let dir = tempfile::tempdir().unwrap();
    let s = train.shape;
    for i in 0..6 {
        let img = image::GrayImage::from_raw(s.width as u32, s.height as u32, train.image(i).to_vec()).unwrap();
        let ext = ["png", "bmp", "tif", "gif", "webp", "png"][i];
        let sub = if i % 2 == 0 { "a/b" } else { "." };
        let p = dir.path().join(sub).join(format!("{i}.{ext}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        // Some encoders take only colour; gray stored as colour still decodes to the same gray.
        let img = image::DynamicImage::ImageLuma8(img);
        match ext {
            "gif" => img.to_rgba8().save(&p).unwrap(),
            "webp" => img.to_rgb8().save(&p).unwrap(),
            _ => img.save(&p).unwrap(),
        }
    }
    // BMP, GIF and WebP decode gray pixels as colour, so without --channels they would mix.
    let msg = load(&DataSpec::new(dir.path()), &LoadOptions::default()).unwrap_err().to_string();
    assert!(msg.contains("--channels"), "{msg}");
    let got = load(&DataSpec::new(dir.path()), &LoadOptions { channels: Some(1), ..Default::default() }).unwrap();
    assert!(got.labels().is_none());
    assert_eq!(got.len(), 6);
    // Sorted paths: "1.bmp", "3.gif", "5.png", then "a/b/0.png", "a/b/2.tif", "a/b/4.webp".
    let want = train.subset(&[1, 3, 5, 0, 2, 4]);
    assert_eq!(got.images, want.images, "lossless formats decode to the same pixels");
}

#[test]
fn cifar_folder_through_load() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("cifar-10-batches-bin");
    std::fs::create_dir(&sub).unwrap();
    // Colour images made from MNIST digits: red = digit, green = inverse, blue = constant.
    let m = mnist5k(Split::Train);
    let mut px = Vec::new();
    let mut labels = Vec::new();
    for i in 0..20 {
        let digit = image::GrayImage::from_raw(28, 28, m.image(i).to_vec()).unwrap();
        let big = image::imageops::resize(&digit, 32, 32, image::imageops::FilterType::Triangle);
        px.extend_from_slice(big.as_raw());
        px.extend(big.as_raw().iter().map(|v| 255 - v));
        px.extend(std::iter::repeat_n(77u8, 1024));
        labels.push(m.labels().unwrap()[i] as u8);
    }
    write_cifar10_batch(sub.join("data_batch_1.bin"), &labels[..15], &px[..15 * 3072]).unwrap();
    write_cifar10_batch(sub.join("test_batch.bin"), &labels[15..], &px[15 * 3072..]).unwrap();
    let train =
        load(&DataSpec::parse(&format!("{}:train", dir.path().display())).unwrap(), &LoadOptions::default()).unwrap();
    let test =
        load(&DataSpec::parse(&format!("{}:test", dir.path().display())).unwrap(), &LoadOptions::default()).unwrap();
    assert_eq!((train.len(), test.len()), (15, 5));
    assert_eq!(train.shape, ImageShape::new(3, 32, 32));
    assert_eq!(train.class_names[0], "airplane");
    assert_eq!(test.images, px[15 * 3072..]);
    train.check_same_classes(&test).unwrap();
    let gray = load(&DataSpec::new(dir.path()), &LoadOptions { channels: Some(1), ..Default::default() }).unwrap();
    assert_eq!(gray.shape, ImageShape::new(1, 32, 32));
}

#[test]
fn subsets_and_normalisation_on_real_data() {
    let train = mnist5k(Split::Train);
    let few = train.take_per_class(10, 42).unwrap();
    assert_eq!(few.class_counts(), vec![10; 10]);
    assert_eq!(few.fingerprint(), train.take_per_class(10, 42).unwrap().fingerprint());
    assert_ne!(few.fingerprint(), train.take_per_class(10, 43).unwrap().fingerprint());
    let (t, v) = stratified_split(train.labels().unwrap(), 10, 0.1, 1).unwrap();
    assert_eq!((t.len(), v.len()), (3600, 400));
    let norm = Normalization::fit(&train);
    // MNIST's well-known statistics are about 0.13 and 0.31.
    assert!((norm.mean[0] - 0.13).abs() < 0.01 && (norm.std[0] - 0.31).abs() < 0.01, "{norm:?}");
}
