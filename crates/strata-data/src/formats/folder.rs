//! Folders of image files (png, jpg, bmp, gif, tiff, webp), decoded with the `image` crate.
//!
//! `root/<class>/*.png` gives labeled data (classes = subfolder names, sorted); any other
//! tree of images gives unlabeled data. `root/train/` and `root/test/` are splits.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::{Format, MAX_SIDE, describe, is_hidden};
use crate::dataset::{Dataset, ImageShape, pixel_buffer};
use crate::error::{DataError, Result};
use crate::spec::LoadOptions;
use crate::split::Split;

/// Extensions read as images (compared case-insensitively).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "gif", "tif", "tiff", "webp"];

/// The image-folder reader.
pub struct Folder;

impl Format for Folder {
    fn name(&self) -> &'static str {
        "image folder"
    }

    fn layout(&self) -> &'static str {
        "folder of images: root/<class>/*.png|jpg|jpeg|bmp|gif|tiff|webp for labeled data, any tree of images for unlabeled data, optionally inside root/train/ and root/test/"
    }

    fn detect(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn has_splits(&self, path: &Path) -> bool {
        path.join("train").is_dir() || path.join("test").is_dir()
    }

    fn load(&self, path: &Path, split: Split, opts: &LoadOptions) -> Result<Dataset> {
        let (root, split_used) = split_root(path, split)?;
        let source = describe(path, split_used, self.name());
        match scan(&root)? {
            Layout::Classes(classes) => {
                let total = classes.iter().map(|(_, files)| files.len()).sum();
                let mut decoder = Decoder::new(opts, total, &source);
                let mut labels = Vec::with_capacity(total);
                let mut paths = Vec::with_capacity(total);
                for (label, (_, files)) in classes.iter().enumerate() {
                    for f in files {
                        paths.push(f.as_path());
                        labels.push(label as u32);
                    }
                }
                decoder.push_all(&paths)?;
                let (images, shape) = decoder.finish();
                let class_names = classes.into_iter().map(|(name, _)| name).collect();
                Ok(Dataset { images, shape, labels: Some(labels), class_names, source })
            }
            Layout::Tree { files, reason } => {
                if opts.require_labels {
                    return Err(DataError::NotClassFolders { path: root, reason });
                }
                let mut decoder = Decoder::new(opts, files.len(), &source);
                decoder.push_all(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
                let (images, shape) = decoder.finish();
                Ok(Dataset { images, shape, labels: None, class_names: Vec::new(), source })
            }
        }
    }
}

/// The folder holding `split`'s images: `path/train` or `path/test` when the folder has
/// splits (the split used is returned), else `path` itself.
pub(crate) fn split_root(path: &Path, split: Split) -> Result<(PathBuf, Option<Split>)> {
    if !Folder.has_splits(path) {
        return Ok((path.to_path_buf(), None));
    }
    let root = path.join(split.as_str());
    if !root.is_dir() {
        return Err(DataError::SplitNotFound {
            path: path.to_path_buf(),
            split,
            looked_for: format!("the subfolder {}", root.display()),
        });
    }
    Ok((root, Some(split)))
}

/// How the images under a root are arranged.
enum Layout {
    /// One subfolder per class, sorted by name, each with its sorted image files.
    Classes(Vec<(String, Vec<PathBuf>)>),
    /// Any other arrangement: all images, sorted, and why this is not a class layout.
    Tree { files: Vec<PathBuf>, reason: String },
}

/// True for files with an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Deepest folder nesting walked: a guard against pathological trees.
pub const MAX_DEPTH: usize = 64;

/// The visible entries of a folder, split into image files and subfolders, each sorted.
///
/// Symbolic links are followed: one to a file is read like any file, one to a folder is
/// walked (and refused by [`enter`] if it loops back up). An image-named link that cannot
/// be followed (dangling, or a loop of links) is an error naming it; links with other names
/// are ignored like any file that is not an image. Pipes, devices and sockets are ignored
/// whatever their name, since reading one could block forever.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        let ft = entry.file_type().map_err(|e| DataError::io(&path, e))?;
        if ft.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => dirs.push(path),
                Ok(m) if m.is_file() && is_image_path(&path) => files.push(path),
                Ok(_) => {}
                Err(e) if is_image_path(&path) => return Err(DataError::BrokenLink { path, reason: e.to_string() }),
                Err(_) => {}
            }
        } else if ft.is_dir() {
            dirs.push(path);
        } else if ft.is_file() && is_image_path(&path) {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// Checks that walking into `dir` cannot loop: its real location must not be one of the
/// folders it was reached through (`ancestors`, real locations, outermost first), and the
/// nesting must stay below [`MAX_DEPTH`]. Returns the real location.
fn enter(dir: &Path, ancestors: &[PathBuf]) -> Result<PathBuf> {
    let real = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    if ancestors.contains(&real) {
        return Err(DataError::SymlinkLoop { path: dir.to_path_buf(), target: real });
    }
    if ancestors.len() >= MAX_DEPTH {
        return Err(DataError::TooDeep { path: dir.to_path_buf(), max: MAX_DEPTH });
    }
    Ok(real)
}

/// Every image under `dir`, at any depth, where `dir` is `depth` folders below the root: the
/// same rules as [`list`] (hidden entries skipped, links followed, a loop refused, an
/// image-named link that cannot be followed an error, pipes and devices ignored), walked by
/// walkdir, which also finds links that lead back to a folder above them.
fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let walker = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name();
    for entry in walker.into_iter().filter_entry(|e| e.depth() == 0 || !is_hidden(e.path())) {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
                if let Some(target) = e.loop_ancestor() {
                    return Err(DataError::SymlinkLoop { path, target: target.to_path_buf() });
                }
                let link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
                match (link, is_image_path(&path)) {
                    (true, true) => return Err(DataError::BrokenLink { path, reason: e.to_string() }),
                    // a link with another name that leads nowhere is ignored like any non-image
                    (true, false) => continue,
                    _ => return Err(DataError::io(&path, e.into())),
                }
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() && depth + entry.depth() >= MAX_DEPTH {
            return Err(DataError::TooDeep { path: entry.into_path(), max: MAX_DEPTH });
        }
        if ft.is_file() && is_image_path(entry.path()) {
            out.push(entry.into_path());
        }
    }
    Ok(())
}

/// Errors when two class folders have the same name once case is ignored (`Cat/`, `cat/`),
/// or the same name once bytes that are not UTF-8 are replaced.
fn check_distinct(dirs: &[PathBuf], classes: &[(String, Vec<PathBuf>)]) -> Result<()> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, (name, _)) in classes.iter().enumerate() {
        if let Some(&j) = seen.get(&name.to_lowercase()) {
            return Err(DataError::DuplicateClass { first: dirs[j].clone(), second: dirs[i].clone() });
        }
        seen.insert(name.to_lowercase(), i);
    }
    Ok(())
}

/// Works out whether `root` is laid out as class folders.
fn scan(root: &Path) -> Result<Layout> {
    let mut ancestors = vec![enter(root, &[])?];
    let (root_files, dirs) = list(root)?;
    let mut classes = Vec::with_capacity(dirs.len());
    let mut nested = Vec::new();
    for d in &dirs {
        ancestors.push(enter(d, &ancestors)?);
        let (files, subdirs) = list(d)?;
        for s in subdirs {
            walk(&s, ancestors.len(), &mut nested)?;
        }
        ancestors.pop();
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        classes.push((name, files));
    }
    let reason = if dirs.is_empty() {
        "it has no class subfolders".to_string()
    } else if let Some(f) = root_files.first() {
        format!("it holds images directly (e.g. {})", f.display())
    } else if let Some(f) = nested.first() {
        format!("images are nested deeper than one level (e.g. {})", f.display())
    } else {
        if classes.iter().all(|(_, files)| files.is_empty()) {
            return Err(DataError::NoImages { path: root.to_path_buf() });
        }
        if let Some(i) = classes.iter().position(|(_, files)| files.is_empty()) {
            return Err(DataError::EmptyClass { path: dirs[i].clone() });
        }
        check_distinct(&dirs, &classes)?;
        return Ok(Layout::Classes(classes));
    };
    let mut files = root_files;
    files.extend(classes.into_iter().flat_map(|(_, f)| f));
    files.extend(nested);
    if files.is_empty() {
        return Err(DataError::NoImages { path: root.to_path_buf() });
    }
    files.sort();
    Ok(Layout::Tree { files, reason })
}

/// Decodes images one by one into a single channel-first buffer, checking they agree.
/// Files decoded in parallel at a time.
const DECODE_CHUNK: usize = 512;

struct Decoder {
    channels: Option<usize>,
    resize: Option<(usize, usize)>,
    expected: usize,
    what: String,
    first: Option<(PathBuf, ImageShape)>,
    images: Vec<u8>,
}

impl Decoder {
    fn new(opts: &LoadOptions, expected: usize, what: &str) -> Self {
        Decoder {
            channels: opts.channels,
            resize: opts.resize,
            expected,
            what: what.to_string(),
            first: None,
            images: Vec::new(),
        }
    }

    /// Decodes `paths` on all cores, a chunk at a time (at most a chunk of decoded images is
    /// held), and appends them in order; the first failing file in that order is the error.
    fn push_all(&mut self, paths: &[&Path]) -> Result<()> {
        use rayon::prelude::*;
        for chunk in paths.chunks(DECODE_CHUNK) {
            let decoded: Vec<Result<DynamicImage>> = chunk.par_iter().map(|p| decode(p)).collect();
            for (path, img) in chunk.iter().zip(decoded) {
                self.push(path, img?)?;
            }
        }
        Ok(())
    }

    /// Appends the pixels of `img`, decoded from `path`.
    fn push(&mut self, path: &Path, img: DynamicImage) -> Result<()> {
        // Colour is judged per image; whether that is allowed to vary is checked below.
        let channels = self.channels.unwrap_or(if img.color().has_color() { 3 } else { 1 });
        let (w, h) = (img.width(), img.height());
        let (th, tw) = self.resize.unwrap_or((h as usize, w as usize));
        let shape = ImageShape::new(channels, th, tw);
        match &self.first {
            None => {
                self.images = pixel_buffer(self.expected, shape, &self.what)?;
                self.first = Some((path.to_path_buf(), shape));
            }
            Some((first_path, first)) if *first != shape => {
                return Err(DataError::MixedSizes {
                    path: path.to_path_buf(),
                    first_path: first_path.clone(),
                    first: first.as_tuple(),
                    found: shape.as_tuple(),
                });
            }
            Some(_) => {}
        }
        self.images.extend_from_slice(&pixels(img, shape));
        Ok(())
    }

    fn finish(self) -> (Vec<u8>, ImageShape) {
        let shape = self.first.map(|(_, s)| s).unwrap_or(ImageShape::new(0, 0, 0));
        (self.images, shape)
    }
}

/// The channel-first pixels of `img` converted to `shape` (channel count, and size when it
/// differs: resized with a triangle filter).
fn pixels(img: DynamicImage, shape: ImageShape) -> Vec<u8> {
    let (th, tw) = (shape.height, shape.width);
    let needs_resize = (th, tw) != (img.height() as usize, img.width() as usize);
    if shape.channels == 1 {
        let mut gray = if img.color().has_color() { to_gray(img.into_rgb8()) } else { img.into_luma8() };
        if needs_resize {
            gray = image::imageops::resize(&gray, tw as u32, th as u32, image::imageops::FilterType::Triangle);
        }
        gray.into_raw()
    } else {
        let mut rgb = img.into_rgb8();
        if needs_resize {
            rgb = image::imageops::resize(&rgb, tw as u32, th as u32, image::imageops::FilterType::Triangle);
        }
        let mut out = Vec::with_capacity(3 * th * tw);
        push_chw(&mut out, rgb.as_raw(), th * tw);
        out
    }
}

/// One image file of a folder read on its own: where it is and what came of decoding it.
#[derive(Debug)]
pub struct FileImage {
    /// the path below the folder, `/`-separated
    pub relative: String,
    /// its pixels (channel-first) and shape, or why it could not be read
    pub decoded: Result<(Vec<u8>, ImageShape)>,
}

/// Every image file under `root` (class folders or any tree, the rules of the folder reader),
/// in path order, each decoded on its own to `channels` and, with `resize`, to that size: a
/// file that fails keeps its error, so a caller can name it or report it in its row (what
/// `strata predict` does), never drop it.
pub fn decode_each(root: &Path, channels: usize, resize: Option<(usize, usize)>) -> Result<Vec<FileImage>> {
    use rayon::prelude::*;
    let mut files = match scan(root)? {
        Layout::Classes(classes) => classes.into_iter().flat_map(|(_, f)| f).collect(),
        Layout::Tree { files, .. } => files,
    };
    files.sort();
    Ok(files
        .par_iter()
        .map(|path| {
            let relative = path.strip_prefix(root).unwrap_or(path);
            let relative = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
            let decoded = decode(path).map(|img| {
                let (h, w) = resize.unwrap_or((img.height() as usize, img.width() as usize));
                let shape = ImageShape::new(channels, h, w);
                (pixels(img, shape), shape)
            });
            FileImage { relative, decoded }
        })
        .collect())
}

/// Colour to gray with the crate's own luma, so folders and binary formats agree.
fn to_gray(rgb: image::RgbImage) -> image::GrayImage {
    let (w, h) = rgb.dimensions();
    let px = rgb.as_raw().chunks_exact(3).map(|p| crate::convert::luma(p[0], p[1], p[2])).collect();
    image::GrayImage::from_raw(w, h, px).unwrap_or_default()
}

/// Appends interleaved RGB pixels as three channel planes.
fn push_chw(out: &mut Vec<u8>, rgb: &[u8], plane: usize) {
    let start = out.len();
    out.resize(start + 3 * plane, 0);
    let (r, rest) = out[start..].split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        r[i] = px[0];
        g[i] = px[1];
        b[i] = px[2];
    }
}

/// A reader over in-memory bytes, its format taken from the content (or else the extension).
fn reader<'a>(path: &Path, bytes: &'a [u8], limits: Limits) -> Result<ImageReader<Cursor<&'a [u8]>>> {
    let mut r = ImageReader::new(Cursor::new(bytes));
    if let Ok(f) = ImageFormat::from_path(path) {
        r.set_format(f);
    }
    r.limits(limits);
    r.with_guessed_format().map_err(|e| DataError::io(path, e))
}

/// Width and height as a PNG's IHDR chunk states them, when `bytes` starts like a PNG.
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
    let header = bytes.get(..24)?;
    if header[..8] != SIGNATURE || &header[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&header[16..20]), be(&header[20..24])))
}

/// Reads and decodes one image, refusing huge ones before any pixel buffer is allocated.
fn decode(path: &Path) -> Result<DynamicImage> {
    let corrupt = |e: image::ImageError| DataError::CorruptImage { path: path.to_path_buf(), reason: e.to_string() };
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() {
        return Err(DataError::CorruptImage { path: path.to_path_buf(), reason: "the file is empty (0 bytes)".into() });
    }
    let (w, h) = match reader(path, &bytes, Limits::default())?.into_dimensions() {
        Ok(size) => size,
        // The PNG decoder reads past the header before it answers; when what follows is
        // garbage, a header that claims an absurd size is still the thing to report.
        Err(e) => match png_header_size(&bytes) {
            Some((w, h)) if w > MAX_SIDE || h > MAX_SIDE => (w, h),
            _ => return Err(corrupt(e)),
        },
    };
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(DataError::ImageTooLarge { path: path.to_path_buf(), width: w, height: h, max: MAX_SIDE });
    }
    if w == 0 || h == 0 {
        return Err(DataError::CorruptImage { path: path.to_path_buf(), reason: format!("it is {w}x{h}") });
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader(path, &bytes, limits)?.decode().map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(dir: &Path, rel: &str, w: u32, h: u32, v: u8) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::GrayImage::from_pixel(w, h, image::Luma([v])).save(&p).unwrap();
        p
    }

    fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
        Folder.load(path, Split::Train, opts)
    }

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(is_image_path(Path::new("a/B.PNG")));
        assert!(is_image_path(Path::new("a/b.JpEg")));
        assert!(!is_image_path(Path::new("a/b.txt")));
        assert!(!is_image_path(Path::new("a/png")));
    }

    #[test]
    fn class_folders_give_sorted_labels() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "b/2.png", 3, 2, 20);
        gray(d.path(), "b/1.png", 3, 2, 10);
        gray(d.path(), "a/x.PNG", 3, 2, 5);
        std::fs::write(d.path().join("a/notes.txt"), "ignored").unwrap();
        std::fs::write(d.path().join("a/.hidden.png"), "ignored").unwrap();
        let ds = load(d.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ds.class_names, vec!["a", "b"]);
        assert_eq!(ds.labels(), Some(&[0, 1, 1][..]));
        assert_eq!(ds.shape, ImageShape::new(1, 2, 3));
        assert_eq!(ds.image(1), &[10; 6]);
        assert_eq!(ds.image(2), &[20; 6]);
    }

    #[test]
    fn tree_is_unlabeled_unless_labels_required() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "top.png", 2, 2, 1);
        gray(d.path(), "deep/er/x.tif", 2, 2, 2);
        let ds = load(d.path(), &LoadOptions::default()).unwrap();
        assert!(ds.labels().is_none());
        assert_eq!(ds.len(), 2);
        let opts = LoadOptions { require_labels: true, ..Default::default() };
        let msg = load(d.path(), &opts).unwrap_err().to_string();
        assert!(msg.contains("top.png") && msg.contains("one subfolder per class"), "{msg}");
    }

    #[test]
    fn colour_is_converted_and_channel_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c/rgb.png");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        image::RgbaImage::from_pixel(2, 1, image::Rgba([10, 20, 30, 40])).save(&p).unwrap();
        let ds = load(d.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ds.shape, ImageShape::new(3, 1, 2));
        assert_eq!(ds.images, vec![10, 10, 20, 20, 30, 30]);
        let ds = load(d.path(), &LoadOptions { channels: Some(1), ..Default::default() }).unwrap();
        assert_eq!(ds.shape.channels, 1);
        assert_eq!(ds.images[0], crate::convert::luma(10, 20, 30));
    }

    #[test]
    fn mixed_channels_need_an_explicit_choice() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "a.png", 2, 2, 1);
        let p = d.path().join("b.png");
        image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3])).save(&p).unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("b.png") && msg.contains("a.png") && msg.contains("--channels"), "{msg}");
        assert!(load(d.path(), &LoadOptions { channels: Some(3), ..Default::default() }).is_ok());
    }

    #[test]
    fn splits_pick_a_subfolder() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "train/a/1.png", 2, 2, 1);
        gray(d.path(), "train/a/2.png", 2, 2, 1);
        assert!(Folder.has_splits(d.path()));
        assert_eq!(load(d.path(), &LoadOptions::default()).unwrap().len(), 2);
        let msg = Folder.load(d.path(), Split::Test, &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("no test split"), "{msg}");
    }

    #[test]
    fn huge_header_is_refused_before_decoding() {
        // A PNG whose header claims 20000x20000 but carries no pixel data.
        let d = tempfile::tempdir().unwrap();
        let mut png = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut ihdr_data = 20_000u32.to_be_bytes().to_vec();
        ihdr_data.extend(20_000u32.to_be_bytes());
        ihdr_data.extend([8, 0, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr_data);
        chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        chunk(&mut png, b"IEND", &[]);
        std::fs::write(d.path().join("big.png"), &png).unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("big.png") && msg.contains("20000x20000") && msg.contains("limit"), "{msg}");
        // The same header followed by garbage, or by nothing at all.
        for tail in [&b"garbage where chunks should be"[..], b""] {
            png.truncate(8 + 25);
            png.extend_from_slice(tail);
            std::fs::write(d.path().join("big.png"), &png).unwrap();
            let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
            assert!(msg.contains("big.png") && msg.contains("20000x20000") && msg.contains("limit"), "{msg}");
        }
        // A small size in a broken file is a decoding error.
        png[16..24].copy_from_slice(&[0, 0, 0, 4, 0, 0, 0, 4]);
        std::fs::write(d.path().join("big.png"), &png).unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("big.png") && msg.contains("cannot decode image"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_but_loops_are_refused() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        gray(d.path(), "x/1.png", 2, 2, 1);
        gray(elsewhere.path(), "y/2.png", 2, 2, 1);
        // A class folder that is a link to another place, and an image that is a link.
        symlink(elsewhere.path().join("y"), d.path().join("y")).unwrap();
        symlink(d.path().join("x/1.png"), d.path().join("x/3.png")).unwrap();
        // A loop of links that are not named as images is ignored like any other file.
        symlink(d.path().join("x/b"), d.path().join("x/a")).unwrap();
        symlink(d.path().join("x/a"), d.path().join("x/b")).unwrap();
        let ds = load(d.path(), &LoadOptions::default()).unwrap();
        assert_eq!((ds.len(), ds.class_names.clone()), (3, vec!["x".to_string(), "y".to_string()]));

        // An image-named loop of links is named.
        symlink(d.path().join("x/b.png"), d.path().join("x/a.png")).unwrap();
        symlink(d.path().join("x/a.png"), d.path().join("x/b.png")).unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("a.png") && msg.contains("symbolic link cannot be followed"), "{msg}");
        std::fs::remove_file(d.path().join("x/a.png")).unwrap();
        std::fs::remove_file(d.path().join("x/b.png")).unwrap();

        // A folder link back up the tree is a loop, at any depth.
        for (link, target) in [("x/up", d.path().to_path_buf()), ("x/deep/er/up", d.path().join("x"))] {
            let link = d.path().join(link);
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            symlink(&target, &link).unwrap();
            let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
            assert!(msg.contains(&link.display().to_string()) && msg.contains("loop"), "{msg}");
            std::fs::remove_file(&link).unwrap();
        }
    }

    #[test]
    fn too_deep_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let rel: String = (0..MAX_DEPTH + 1).map(|_| "d/").collect::<String>() + "x.png";
        gray(d.path(), &rel, 2, 2, 1);
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("nested more than 64"), "{msg}");
    }

    #[test]
    fn class_names_equal_but_for_case_are_refused() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "Cat/1.png", 2, 2, 1);
        gray(d.path(), "cat/1.png", 2, 2, 1);
        gray(d.path(), "dog/1.png", 2, 2, 1);
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("Cat") && msg.contains("/cat") && msg.contains("differ only in case"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_names_are_read_and_collisions_named() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let name = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_owned();
        let a = d.path().join(name(b"a\xff"));
        std::fs::create_dir(&a).unwrap();
        image::GrayImage::from_pixel(2, 2, image::Luma([7]))
            .save_with_format(a.join(name(b"\xfe.png")), ImageFormat::Png)
            .unwrap();
        gray(d.path(), "b/1.png", 2, 2, 1);
        let ds = load(d.path(), &LoadOptions::default()).unwrap();
        assert_eq!(ds.class_names, vec!["a\u{fffd}".to_string(), "b".to_string()]);
        assert_eq!(ds.image(0), &[7; 4]);
        // Two names that only differ in bytes that are not UTF-8 read as one class name.
        let a2 = d.path().join(name(b"a\xfe"));
        std::fs::create_dir(&a2).unwrap();
        std::fs::copy(d.path().join("b/1.png"), a2.join("1.png")).unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("a\u{fffd}") && msg.contains("not UTF-8"), "{msg}");
    }

    #[test]
    fn empty_file_is_named_as_empty() {
        let d = tempfile::tempdir().unwrap();
        gray(d.path(), "a/1.png", 2, 2, 1);
        std::fs::write(d.path().join("a/0.png"), b"").unwrap();
        let msg = load(d.path(), &LoadOptions::default()).unwrap_err().to_string();
        assert!(msg.contains("0.png") && msg.contains("empty (0 bytes)") && msg.contains("remove or replace"), "{msg}");
    }

    /// Appends a PNG chunk: length, type, data, CRC of type and data.
    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    }

    /// PNG chunk CRC (CRC-32/ISO-HDLC), enough to hand-build a header.
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
