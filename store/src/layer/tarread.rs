//! A streaming tar reader for layers: ustar, GNU and PAX headers, with the
//! PAX records parsed by their lengths (a value may hold any byte,
//! newlines included, as binary xattrs do), and strict about the end: a
//! stream cut short, inside an entry or between two, is an error.

use std::io::{self, BufRead};

use super::apply::parse_pax_time;

const BLOCK: usize = 512;
/// Largest PAX or GNU long-name payload accepted.
const MAX_META: u64 = 16 << 20;

/// One entry's header, extensions applied.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Name as in the archive (not cleaned).
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub flag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: (i64, u32),
    pub devmajor: u32,
    pub devminor: u32,
    /// `SCHILY.xattr.*` records, in archive order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn eof(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, msg.into())
}

/// A numeric header field: octal (NUL/space terminated or padded), or
/// base-256 (GNU) when the first byte has its high bit set.
fn number(field: &[u8], what: &str) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(bad(format!("negative {what}")));
        }
        let mut v: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad(format!("{what} out of range")))?;
        }
        return Ok(v);
    }
    let s: &[u8] = {
        let start = field.iter().position(|&b| b != b' ' && b != 0);
        match start {
            None => return Ok(0),
            Some(st) => {
                let rest = &field[st..];
                let end = rest
                    .iter()
                    .position(|&b| b == b' ' || b == 0)
                    .unwrap_or(rest.len());
                if rest[end..].iter().any(|&b| b != b' ' && b != 0) {
                    return Err(bad(format!("malformed {what} field")));
                }
                &rest[..end]
            }
        }
    };
    let mut v: u64 = 0;
    for &b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad(format!("malformed {what} field")));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| bad(format!("{what} out of range")))?;
    }
    Ok(v)
}

fn cstr_field(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// PAX records "<len> <key>=<value>\n", by their lengths.
pub fn pax_records(mut data: &[u8]) -> io::Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        if data.iter().all(|&b| b == 0) {
            break;
        }
        let sp = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("malformed PAX record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("PAX record without '='"))?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

fn decimal(v: &[u8], what: &str) -> io::Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("malformed PAX {what}")))
}

pub struct TarReader<R> {
    r: R,
    /// Data bytes of the current entry not yet read, then its padding.
    left: u64,
    pad: u64,
    done: bool,
}

impl<R: BufRead> TarReader<R> {
    pub fn new(r: R) -> Self {
        TarReader {
            r,
            left: 0,
            pad: 0,
            done: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.r
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let buf = self.r.fill_buf()?;
            if buf.is_empty() {
                return Err(eof("stream ends inside an entry"));
            }
            let k = (buf.len() as u64).min(n) as usize;
            self.r.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    /// Fills `buf` completely; `false` if the stream ended right at its
    /// start.
    fn block(&mut self, buf: &mut [u8; BLOCK]) -> io::Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            let b = self.r.fill_buf()?;
            if b.is_empty() {
                if got == 0 {
                    return Ok(false);
                }
                return Err(eof("stream ends inside a header"));
            }
            let k = b.len().min(BLOCK - got);
            buf[got..got + k].copy_from_slice(&b[..k]);
            self.r.consume(k);
            got += k;
        }
        Ok(true)
    }

    fn payload(&mut self, size: u64, what: &str) -> io::Result<Vec<u8>> {
        if size > MAX_META {
            return Err(bad(format!("{what} of {size} bytes is too large")));
        }
        let mut v = Vec::with_capacity(size as usize);
        while (v.len() as u64) < size {
            let b = self.r.fill_buf()?;
            if b.is_empty() {
                return Err(eof(format!("stream ends inside a {what}")));
            }
            let k = b.len().min((size - v.len() as u64) as usize);
            v.extend_from_slice(&b[..k]);
            self.r.consume(k);
        }
        self.skip(size.next_multiple_of(BLOCK as u64) - size)?;
        Ok(v)
    }

    /// The next entry, or `None` after the end-of-archive marker. The
    /// previous entry's unread data is skipped.
    pub fn next(&mut self) -> io::Result<Option<Header>> {
        if self.done {
            return Ok(None);
        }
        self.skip(self.left + self.pad)?;
        self.left = 0;
        self.pad = 0;
        let mut pax: Option<Vec<u8>> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut h = [0u8; BLOCK];
        loop {
            if !self.block(&mut h)? {
                return Err(eof(
                    "the archive ends without an end-of-archive marker (truncated)",
                ));
            }
            if h.iter().all(|&b| b == 0) {
                self.done = true;
                return Ok(None);
            }
            let want = number(&h[148..156], "checksum")?;
            let unsigned: u64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        u64::from(b)
                    }
                })
                .sum();
            let signed: i64 = h
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        i64::from(b as i8)
                    }
                })
                .sum();
            if want != unsigned && want as i64 != signed {
                return Err(bad("header checksum mismatch (not a tar, or corrupt)"));
            }
            let flag = h[156];
            let size = number(&h[124..136], "size")?;
            match flag {
                b'x' => {
                    pax = Some(self.payload(size, "PAX header")?);
                    continue;
                }
                b'g' => {
                    // Global records: nothing in them matters for a layer.
                    self.payload(size, "PAX global header")?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr_field(&self.payload(size, "long name")?).to_vec());
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr_field(&self.payload(size, "long link")?).to_vec());
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..263] == b"ustar\0";
            let mut name = cstr_field(&h[..100]).to_vec();
            if ustar {
                let prefix = cstr_field(&h[345..500]);
                if !prefix.is_empty() {
                    name = [prefix, b"/", &name].concat();
                }
            }
            let mut hdr = Header {
                name,
                link: cstr_field(&h[157..257]).to_vec(),
                flag: if flag == 0 { b'0' } else { flag },
                mode: (number(&h[100..108], "mode")? & 0o7777) as u32,
                uid: number(&h[108..116], "uid")?,
                gid: number(&h[116..124], "gid")?,
                size,
                mtime: (
                    i64::try_from(number(&h[136..148], "mtime")?).unwrap_or(i64::MAX),
                    0,
                ),
                devmajor: 0,
                devminor: 0,
                xattrs: Vec::new(),
            };
            if matches!(flag, b'3' | b'4') {
                let dev = |f: &[u8], w| {
                    number(f, w)
                        .and_then(|v| u32::try_from(v).map_err(|_| bad(format!("{w} too large"))))
                };
                hdr.devmajor = dev(&h[329..337], "device major")?;
                hdr.devminor = dev(&h[337..345], "device minor")?;
            }
            if let Some(n) = long_name {
                hdr.name = n;
            }
            if let Some(l) = long_link {
                hdr.link = l;
            }
            if let Some(p) = &pax {
                for (k, v) in pax_records(p)? {
                    match k {
                        b"path" => hdr.name = v.to_vec(),
                        b"linkpath" => hdr.link = v.to_vec(),
                        b"size" => hdr.size = decimal(v, "size")?,
                        b"uid" => hdr.uid = decimal(v, "uid")?,
                        b"gid" => hdr.gid = decimal(v, "gid")?,
                        b"mtime" => {
                            hdr.mtime =
                                parse_pax_time(v).ok_or_else(|| bad("malformed PAX mtime"))?
                        }
                        k if k.starts_with(b"GNU.sparse.") => {
                            return Err(bad("sparse files are not supported in layers"));
                        }
                        k => {
                            if let Some(x) = k.strip_prefix(b"SCHILY.xattr.") {
                                hdr.xattrs.push((x.to_vec(), v.to_vec()));
                            }
                        }
                    }
                }
            }
            // As Go's archive/tar (which docker and containerd use) reads
            // them: these types carry no data, whatever their size says.
            self.left = match hdr.flag {
                b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => 0,
                _ => hdr.size,
            };
            self.pad = self.left.next_multiple_of(BLOCK as u64) - self.left;
            return Ok(Some(hdr));
        }
    }

    /// The current entry's next bytes (empty at its end), to be handed to
    /// [`TarReader::consume`].
    pub fn data(&mut self) -> io::Result<&[u8]> {
        if self.left == 0 {
            return Ok(&[]);
        }
        let left = self.left;
        let b = self.r.fill_buf()?;
        if b.is_empty() {
            return Err(eof("stream ends inside an entry's content"));
        }
        let k = (b.len() as u64).min(left) as usize;
        Ok(&b[..k])
    }

    pub fn consume(&mut self, n: usize) {
        self.r.consume(n);
        self.left -= n as u64;
    }

    /// Bytes of the current entry's data not yet read.
    pub fn remaining(&self) -> u64 {
        self.left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0", "m").unwrap(), 0o644);
        assert_eq!(number(b"  644 \0\0", "m").unwrap(), 0o644);
        assert_eq!(number(b"\0\0\0\0", "m").unwrap(), 0);
        assert_eq!(
            number(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], "s").unwrap(),
            1 << 32
        );
        assert!(number(b"0008\0", "m").is_err());
        assert!(number(b"12 34\0", "m").is_err());
    }

    #[test]
    fn pax_values_may_hold_newlines() {
        let mut data = Vec::new();
        // "NN SCHILY.xattr.user.x=a\nb\n"
        let rec = b" SCHILY.xattr.user.x=a\nb\n";
        let len = rec.len() + 2;
        data.extend_from_slice(len.to_string().as_bytes());
        data.extend_from_slice(rec);
        data.extend_from_slice(b"12 path=abc\n");
        let recs = pax_records(&data).unwrap();
        assert_eq!(
            recs,
            vec![
                (&b"SCHILY.xattr.user.x"[..], &b"a\nb"[..]),
                (&b"path"[..], &b"abc"[..])
            ]
        );
        assert!(pax_records(b"99 path=abc\n").is_err());
        assert!(pax_records(b"5 x\n").is_err());
    }
}
