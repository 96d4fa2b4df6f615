//! Opening the files a (re)load reads: the config and list files. Outside
//! the query flow, but a reload runs it on a signal, so a hostile or
//! mistaken path must fail fast instead of hanging or filling memory:
//!
//! - only regular files are read: a FIFO (whose `open` blocks until a
//!   writer comes), a character device such as `/dev/zero` (endless), a
//!   socket or a directory is refused by name, symlinks to them included;
//! - the open itself never blocks (`O_NONBLOCK`, checked with `fstat` on
//!   the opened file, so a swap after a check cannot slip through);
//! - reads are capped by the caller ([`read_capped`]).

#![deny(clippy::arithmetic_side_effects)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading if it is a regular file (after symlinks).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file; cutoff reads only regular files"),
    ))
}

/// Reads a regular file as UTF-8 text of at most `max` bytes; a longer
/// file is refused without reading more than `max + 1` bytes.
pub fn read_capped(path: &Path, max: u64) -> io::Result<String> {
    let file = open_regular(path)?;
    let mut text = String::new();
    file.take(max.saturating_add(1)).read_to_string(&mut text)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} KiB", max >> 10),
        ));
    }
    Ok(text)
}

/// Makes a FIFO (tests).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.unwrap().success(), "mkfifo {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_files_are_refused_by_kind_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let link = dir.path().join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (link.as_path(), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = open_regular(path).unwrap_err().to_string();
            assert!(e.starts_with(kind), "{}: {e}", path.display());
            assert!(e.contains("only regular files"), "{e}");
        }
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "x".repeat(2048)).unwrap();
        assert_eq!(read_capped(&path, 2048).unwrap().len(), 2048);
        let e = read_capped(&path, 2047).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("larger than 1 KiB"), "{e}");
    }
}
