//! The guards every reader shares, so a new format gets them by calling these: plain files
//! only (a FIFO or a device would block or never end), gzip sniffed from the bytes rather
//! than the name, exact lengths checked before anything large is allocated, nothing left
//! over at the end.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use crate::error::{DataError, Result};

/// Checks that `path` is a plain file (following links) and returns its metadata.
pub(crate) fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::NotFound { path: path.to_path_buf() },
        _ => DataError::io(path, e),
    })?;
    if !meta.is_file() {
        return Err(DataError::NotAFile { path: path.to_path_buf() });
    }
    Ok(meta)
}

/// The bytes of the plain file `path`.
pub(crate) fn read_all(path: &Path) -> Result<Vec<u8>> {
    regular_file(path)?;
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Opens a file for reading, transparently decompressing gzip (sniffed from its first bytes,
/// not its name). Also returns the file's length when it is not compressed, so that a header
/// can be checked against what the file really holds before anything is allocated.
pub(crate) fn open(path: &Path) -> Result<(Box<dyn Read>, Option<u64>)> {
    let meta = regular_file(path)?;
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let head = reader.fill_buf().map_err(|e| DataError::io(path, e))?;
    if is_gzip(head) {
        Ok((Box::new(MultiGzDecoder::new(reader)), None))
    } else {
        Ok((Box::new(reader), Some(meta.len())))
    }
}

/// True when `head` starts with the gzip magic bytes.
pub(crate) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// A reader over bytes in memory, decompressing gzip, with the length when it is known.
pub(crate) fn from_bytes(bytes: &[u8]) -> (Box<dyn Read + '_>, Option<u64>) {
    if is_gzip(bytes) {
        (Box::new(MultiGzDecoder::new(bytes)), None)
    } else {
        (Box::new(bytes), Some(bytes.len() as u64))
    }
}

/// Reads exactly `expected` bytes and checks nothing follows.
///
/// The buffer grows only as data actually arrives, so a header claiming a trillion
/// items costs nothing before a short (compressed) file is found out.
/// `checked` says the input's length was already checked against `expected`, so the whole
/// buffer can be had at once.
pub(crate) fn read_exact_len(reader: &mut dyn Read, expected: u64, checked: bool, path: &Path) -> Result<Vec<u8>> {
    const FIRST_CHUNK: u64 = 1 << 20;
    let mut buf = Vec::with_capacity(if checked { expected } else { expected.min(FIRST_CHUNK) } as usize);
    reader.take(expected).read_to_end(&mut buf).map_err(|e| DataError::io(path, e))?;
    if (buf.len() as u64) < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected_bytes: expected,
            found_bytes: buf.len() as u64,
        });
    }
    Ok(buf)
}

/// Errors if any byte is left in the reader.
pub(crate) fn expect_end(reader: &mut dyn Read, expected: u64, path: &Path) -> Result<()> {
    let mut one = [0u8; 1];
    loop {
        match reader.read(&mut one) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(DataError::TrailingBytes { path: path.to_path_buf(), expected_bytes: expected });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
}

/// Fills as much of `buf` as the reader has; returns how much that was.
pub(crate) fn read_up_to(reader: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(read_all(dir.path()), Err(DataError::NotAFile { .. })));
        assert!(matches!(read_all(&dir.path().join("missing")), Err(DataError::NotFound { .. })));
        #[cfg(unix)]
        {
            // a FIFO would block a reader forever: refused from its metadata alone
            let fifo = dir.path().join("batches.meta.txt");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
            if made {
                assert!(matches!(read_all(&fifo), Err(DataError::NotAFile { .. })));
                assert!(matches!(open(&fifo), Err(DataError::NotAFile { .. })));
            }
        }
        let f = dir.path().join("x.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"abc").unwrap();
        std::fs::write(&f, gz.finish().unwrap()).unwrap();
        let (mut r, len) = open(&f).unwrap();
        assert_eq!(len, None, "a compressed file's length says nothing about its content");
        assert_eq!(read_exact_len(&mut r, 3, false, &f).unwrap(), b"abc");
        expect_end(&mut r, 3, &f).unwrap();
    }
}
