//! A zip archive written front to back to any [`Write`], for streaming: each file is deflated as
//! it is written, its CRC-32 and sizes follow it in a data descriptor (general-purpose flag
//! bit 3), and the central directory comes last. Nothing is buffered beyond the compressor's
//! window, so memory stays bounded whatever the archive's size. No ZIP64: an archive or file
//! of 4 GiB or more is refused with an error rather than written wrong.

use std::io::{self, Write};

use flate2::write::DeflateEncoder;
use flate2::Compression;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL_DIRECTORY: u32 = 0x0605_4b50;
/// Sizes and CRC follow the data; names are UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const DEFLATE: u16 = 8;
const VERSION: u16 = 20;
/// 1980-01-01 00:00 in MS-DOS format (the time of every entry; the export's time is inside).
const DOS_DATE: u16 = (1 << 5) | 1;

struct Counting<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct Finished {
    name: String,
    crc: u32,
    compressed: u32,
    size: u32,
    offset: u32,
}

struct Open {
    name: String,
    offset: u64,
    started_at: u64,
    crc: crc32fast::Hasher,
    size: u64,
    encoder: DeflateEncoder<Vec<u8>>,
    /// Bytes written but not yet compressed: callers write field by field, and the compressor
    /// works far better on larger pieces.
    pending: Vec<u8>,
}

/// Bytes gathered before they are compressed and handed on.
const PENDING: usize = 32 * 1024;

/// A zip archive being written.
pub struct ZipStream<W: Write> {
    out: Counting<W>,
    done: Vec<Finished>,
    open: Option<Open>,
}

fn too_large() -> io::Error {
    io::Error::other("the archive would need ZIP64 (4 GiB or more)")
}

fn narrow(value: u64) -> io::Result<u32> {
    u32::try_from(value).map_err(|_| too_large())
}

impl<W: Write> ZipStream<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        ZipStream {
            out: Counting {
                inner: out,
                written: 0,
            },
            done: Vec::new(),
            open: None,
        }
    }

    /// Ends the current file, if any, and starts one named `name`.
    pub(crate) fn start_file(&mut self, name: &str) -> io::Result<()> {
        self.finish_file()?;
        let offset = self.out.written;
        let mut header = Vec::with_capacity(30 + name.len());
        header.extend_from_slice(&LOCAL_HEADER.to_le_bytes());
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&FLAGS.to_le_bytes());
        header.extend_from_slice(&DEFLATE.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // time
        header.extend_from_slice(&DOS_DATE.to_le_bytes());
        header.extend_from_slice(&[0; 12]); // CRC and sizes: in the data descriptor
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // extra field
        header.extend_from_slice(name.as_bytes());
        self.out.write_all(&header)?;
        self.open = Some(Open {
            name: name.to_owned(),
            offset,
            started_at: self.out.written,
            crc: crc32fast::Hasher::new(),
            size: 0,
            encoder: DeflateEncoder::new(Vec::new(), Compression::fast()),
            pending: Vec::with_capacity(PENDING),
        });
        Ok(())
    }

    /// Compresses what is pending and hands the compressed bytes on.
    fn compress_pending(out: &mut Counting<W>, open: &mut Open) -> io::Result<()> {
        if open.pending.is_empty() {
            return Ok(());
        }
        open.encoder.write_all(&open.pending)?;
        open.crc.update(&open.pending);
        open.size += open.pending.len() as u64;
        open.pending.clear();
        let compressed = std::mem::take(open.encoder.get_mut());
        out.write_all(&compressed)
    }

    fn finish_file(&mut self) -> io::Result<()> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        Self::compress_pending(&mut self.out, &mut open)?;
        let tail = open.encoder.finish()?;
        self.out.write_all(&tail)?;
        let crc = open.crc.finalize();
        let compressed = narrow(self.out.written - open.started_at)?;
        let size = narrow(open.size)?;
        let mut descriptor = Vec::with_capacity(16);
        descriptor.extend_from_slice(&DATA_DESCRIPTOR.to_le_bytes());
        descriptor.extend_from_slice(&crc.to_le_bytes());
        descriptor.extend_from_slice(&compressed.to_le_bytes());
        descriptor.extend_from_slice(&size.to_le_bytes());
        self.out.write_all(&descriptor)?;
        self.done.push(Finished {
            name: open.name,
            crc,
            compressed,
            size,
            offset: narrow(open.offset)?,
        });
        Ok(())
    }

    /// Ends the last file, writes the central directory, and gives back the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.finish_file()?;
        let start = narrow(self.out.written)?;
        for file in &self.done {
            let mut entry = Vec::with_capacity(46 + file.name.len());
            entry.extend_from_slice(&CENTRAL_HEADER.to_le_bytes());
            entry.extend_from_slice(&VERSION.to_le_bytes()); // made by
            entry.extend_from_slice(&VERSION.to_le_bytes()); // needed
            entry.extend_from_slice(&FLAGS.to_le_bytes());
            entry.extend_from_slice(&DEFLATE.to_le_bytes());
            entry.extend_from_slice(&0u16.to_le_bytes());
            entry.extend_from_slice(&DOS_DATE.to_le_bytes());
            entry.extend_from_slice(&file.crc.to_le_bytes());
            entry.extend_from_slice(&file.compressed.to_le_bytes());
            entry.extend_from_slice(&file.size.to_le_bytes());
            entry.extend_from_slice(&(file.name.len() as u16).to_le_bytes());
            entry.extend_from_slice(&[0; 8]); // extra, comment, disk, internal attributes
            entry.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            entry.extend_from_slice(&file.offset.to_le_bytes());
            entry.extend_from_slice(file.name.as_bytes());
            self.out.write_all(&entry)?;
        }
        let size = narrow(self.out.written)? - start;
        let count = u16::try_from(self.done.len()).map_err(|_| too_large())?;
        let mut end = Vec::with_capacity(22);
        end.extend_from_slice(&END_OF_CENTRAL_DIRECTORY.to_le_bytes());
        end.extend_from_slice(&[0; 4]); // disk numbers
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&count.to_le_bytes());
        end.extend_from_slice(&size.to_le_bytes());
        end.extend_from_slice(&start.to_le_bytes());
        end.extend_from_slice(&0u16.to_le_bytes()); // comment
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok(self.out.inner)
    }
}

impl<W: Write> Write for ZipStream<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| io::Error::other("no file started in the archive"))?;
        open.pending.extend_from_slice(buf);
        if open.pending.len() >= PENDING {
            Self::compress_pending(&mut self.out, open)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_archive_reads_back_with_a_standard_reader() {
        let mut zip = ZipStream::new(Vec::new());
        zip.start_file("a.csv").unwrap();
        zip.write_all(b"x,y\n1,2\n").unwrap();
        zip.start_file("b.txt").unwrap();
        for _ in 0..10_000 {
            zip.write_all(b"the same line again\n").unwrap();
        }
        let bytes = zip.finish().unwrap();
        let mut archive = ::zip::ZipArchive::new(io::Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 2);
        let mut text = String::new();
        io::Read::read_to_string(&mut archive.by_name("a.csv").unwrap(), &mut text).unwrap();
        assert_eq!(text, "x,y\n1,2\n");
        let mut b = archive.by_name("b.txt").unwrap();
        assert_eq!(b.size(), 200_000);
        assert!(b.compressed_size() < 10_000);
        let mut all = Vec::new();
        io::Read::read_to_end(&mut b, &mut all).unwrap();
        assert_eq!(all.len(), 200_000);
    }
}
