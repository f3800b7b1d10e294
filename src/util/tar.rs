//! A minimal POSIX ustar (POSIX.1-1988, as in POSIX.1-2001 `pax` "ustar interchange
//! format") writer and a strict reader, for backup archives: regular files only, names of at
//! most 100 bytes, sizes below 8 GiB. What `roost backup` writes, `tar tf` lists; the reader
//! accepts only what the writer writes (a valid checksum and magic on every header, regular
//! files, the two zero blocks at the end and nothing but zeros after them), so a truncated
//! or altered archive is refused rather than half read. Written here instead of the `tar`
//! crate: it is all the format roost needs, in a fraction of the code (see the commit
//! message for the measurement).

use std::fmt;
use std::io::{self, Read, Write};

const BLOCK: usize = 512;
/// Largest member: 11 octal digits.
pub const MAX_SIZE: u64 = 0o77777777777;
/// Longest member name (the ustar `name` field; `prefix` is not used).
pub const MAX_NAME: usize = 100;

/// A problem with an archive being read, or a member that cannot be written.
#[derive(Debug)]
pub enum TarError {
    Io(io::Error),
    /// Not an archive roost wrote, or damaged: says what was wrong.
    Invalid(String),
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarError::Io(e) => write!(f, "{e}"),
            TarError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for TarError {}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> TarError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            TarError::Invalid("the archive ends in the middle of a file (truncated)".into())
        } else {
            TarError::Io(e)
        }
    }
}

fn invalid(why: impl Into<String>) -> TarError {
    TarError::Invalid(why.into())
}

/// Writes `value` as zero-padded octal digits and a NUL into `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

fn checksum(header: &[u8; BLOCK]) -> u64 {
    header
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum()
}

/// A ustar header for a regular file.
fn header(name: &str, mode: u32, size: u64, mtime: u64) -> Result<[u8; BLOCK], TarError> {
    if name.is_empty() || name.len() > MAX_NAME || name.bytes().any(|b| b == 0) {
        return Err(invalid(format!(
            "{name}: a member name must have 1 to {MAX_NAME} bytes"
        )));
    }
    if size > MAX_SIZE {
        return Err(invalid(format!("{name}: larger than 8 GiB")));
    }
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime.min(MAX_SIZE));
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum = checksum(&h);
    // Six digits, NUL, space (what tar(1) writes).
    let text = format!("{sum:06o}");
    h[148..154].copy_from_slice(text.as_bytes());
    h[154] = 0;
    h[155] = b' ';
    Ok(h)
}

/// Writes members one after the other; [`Writer::finish`] writes the end of the archive.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out }
    }

    /// Appends a regular file of exactly `size` bytes read from `data`; a source that gives
    /// fewer or more bytes is an error (a file that changed while it was read).
    pub fn append(
        &mut self,
        name: &str,
        mode: u32,
        mtime: u64,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), TarError> {
        self.out.write_all(&header(name, mode, size, mtime)?)?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        let mut probe = [0u8; 1];
        if copied != size || data.read(&mut probe)? != 0 {
            return Err(invalid(format!(
                "{name}: its size changed while it was read"
            )));
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> Result<(), TarError> {
        let rest = (BLOCK - (size % BLOCK as u64) as usize) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..rest])?;
        Ok(())
    }

    /// Writes the two zero blocks that end an archive and gives the output back.
    pub fn finish(mut self) -> Result<W, TarError> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A member's header, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub size: u64,
    pub mtime: u64,
}

fn parse_octal(field: &[u8], what: &str) -> Result<u64, TarError> {
    let text: &[u8] = {
        let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
        field[..end].trim_ascii()
    };
    if text.is_empty() || !text.iter().all(|b| (b'0'..=b'7').contains(b)) {
        return Err(invalid(format!("a damaged header: bad {what} field")));
    }
    u64::from_str_radix(std::str::from_utf8(text).unwrap_or("x"), 8)
        .map_err(|_| invalid(format!("a damaged header: bad {what} field")))
}

/// Reads members strictly; see the module's documentation.
pub struct Reader<R: Read> {
    input: R,
    /// Bytes of the current member (and its padding) not yet read.
    left: u64,
    pad: u64,
    ended: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader {
            input,
            left: 0,
            pad: 0,
            ended: false,
        }
    }

    /// The next member's header, or None at the end of the archive (after checking that
    /// only zeros follow). The member's data must be read with [`Reader::data`] (or is
    /// skipped by the next call).
    pub fn next_member(&mut self) -> Result<Option<Member>, TarError> {
        if self.ended {
            return Ok(None);
        }
        io::copy(
            &mut (&mut self.input).take(self.left + self.pad),
            &mut io::sink(),
        )?;
        self.left = 0;
        self.pad = 0;
        let mut h = [0u8; BLOCK];
        self.input.read_exact(&mut h).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid("the archive is truncated: its end marker is missing")
            } else {
                TarError::Io(e)
            }
        })?;
        if h.iter().all(|b| *b == 0) {
            let mut second = [0u8; BLOCK];
            self.input
                .read_exact(&mut second)
                .map_err(|_| invalid("the archive is truncated: its end marker is incomplete"))?;
            if second.iter().any(|b| *b != 0) {
                return Err(invalid("a damaged archive: data inside its end marker"));
            }
            let mut rest = [0u8; 4096];
            loop {
                let n = self.input.read(&mut rest)?;
                if n == 0 {
                    break;
                }
                if rest[..n].iter().any(|b| *b != 0) {
                    return Err(invalid("a damaged archive: data after its end marker"));
                }
            }
            self.ended = true;
            return Ok(None);
        }
        if parse_octal(&h[148..156], "checksum")? != checksum(&h) {
            return Err(invalid(
                "a damaged archive: a header's checksum does not match",
            ));
        }
        if &h[257..263] != b"ustar\0" || &h[263..265] != b"00" {
            return Err(invalid("not a ustar archive written by roost backup"));
        }
        let end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(&h[..end])
            .map_err(|_| invalid("a member name is not UTF-8"))?
            .to_owned();
        if h[345] != 0 {
            return Err(invalid(format!("{name}: a long name (ustar prefix)")));
        }
        if !matches!(h[156], b'0' | 0) {
            return Err(invalid(format!(
                "{name}: not a regular file (links, directories and devices are refused)"
            )));
        }
        let size = parse_octal(&h[124..136], "size")?;
        let member = Member {
            mode: parse_octal(&h[100..108], "mode")? as u32,
            mtime: parse_octal(&h[136..148], "mtime")?,
            name,
            size,
        };
        self.left = size;
        self.pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        Ok(Some(member))
    }

    /// The current member's data (exactly its size; a short archive is an error).
    pub fn data(&mut self) -> MemberData<'_, R> {
        MemberData { reader: self }
    }
}

/// Reads the current member's bytes; EOF of the archive before the member's end is an
/// `UnexpectedEof` error.
pub struct MemberData<'a, R: Read> {
    reader: &'a mut Reader<R>,
}

impl<R: Read> Read for MemberData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(r.left.min(usize::MAX as u64) as usize);
        let n = r.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends in the middle of a file",
            ));
        }
        r.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for (name, data) in members {
            w.append(
                name,
                0o600,
                1_700_000_000,
                data.len() as u64,
                &mut &data[..],
            )
            .unwrap();
        }
        w.finish().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(Member, Vec<u8>)>, TarError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(m) = r.next_member()? {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data)?;
            out.push((m, data));
        }
        Ok(out)
    }

    #[test]
    fn round_trip_with_padding_and_empty_files() {
        let big = vec![7u8; 1300];
        let bytes = archive(&[("a", b"hello"), ("upload/x", &big), ("empty", b"")]);
        assert_eq!(bytes.len() % BLOCK, 0);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0.name, "a");
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[1].1, big);
        assert_eq!(got[1].0.mode, 0o600);
        assert_eq!(got[1].0.mtime, 1_700_000_000);
        assert_eq!(got[2].1, b"");
    }

    #[test]
    fn skipping_data_reaches_the_next_member() {
        let bytes = archive(&[("a", &[1u8; 700]), ("b", b"x")]);
        let mut r = Reader::new(&bytes[..]);
        assert_eq!(r.next_member().unwrap().unwrap().name, "a");
        assert_eq!(r.next_member().unwrap().unwrap().name, "b");
        assert!(r.next_member().unwrap().is_none());
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let bytes = archive(&[("a", &[1u8; 700]), ("b", b"xyz")]);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn altered_headers_trailing_data_and_other_types_are_refused() {
        let bytes = archive(&[("a", b"hello")]);
        let mut bad = bytes.clone();
        bad[3] = b'z'; // the name: checksum no longer matches
        assert!(read_all(&bad).is_err());
        let mut bad = bytes.clone();
        bad.extend_from_slice(b"junk");
        assert!(read_all(&bad).is_err());
        // A symlink with a correct checksum.
        let mut h = header("l", 0o777, 0, 0).unwrap();
        h[156] = b'2';
        h[148..156].copy_from_slice(b"        ");
        let sum = format!("{:06o}\0 ", checksum(&h));
        h[148..156].copy_from_slice(sum.as_bytes());
        let mut link = h.to_vec();
        link.extend_from_slice(&[0u8; 1024]);
        let err = read_all(&link).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        // Zero padding after the end is fine (tar(1) pads to 10 KiB records).
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0u8; 9216]);
        assert_eq!(read_all(&padded).unwrap().len(), 1);
    }

    #[test]
    fn a_source_that_changes_size_is_refused() {
        let mut w = Writer::new(Vec::new());
        assert!(w.append("a", 0o600, 0, 3, &mut &b"ab"[..]).is_err());
        let mut w = Writer::new(Vec::new());
        assert!(w.append("a", 0o600, 0, 3, &mut &b"abcd"[..]).is_err());
        let mut w = Writer::new(Vec::new());
        assert!(w
            .append(&"n".repeat(101), 0o600, 0, 0, &mut &b""[..])
            .is_err());
    }
}
