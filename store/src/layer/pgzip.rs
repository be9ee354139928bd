//! Parallel gzip, as pigz does it: the input is cut into fixed blocks, each
//! deflated on a worker thread with the 32 KiB before it as its dictionary
//! and ended with a sync flush (the last with the final block), and the
//! pieces are written in order as one raw deflate stream inside a single
//! gzip member. Every gunzip reads it as an ordinary gzip file; the output
//! depends only on the input and the level, not on the number of threads.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Crc, FlushCompress, Status};

/// Uncompressed bytes per block.
pub const BLOCK: usize = 1024 * 1024;
/// Deflate's window: the dictionary each block is primed with.
const WINDOW: usize = 32 * 1024;

struct Job {
    index: u64,
    data: Vec<u8>,
    dict: Vec<u8>,
    last: bool,
}

struct Done {
    index: u64,
    result: io::Result<Vec<u8>>,
    crc: Crc,
    /// The input buffer, back for reuse.
    data: Vec<u8>,
}

/// Writes a gzip stream to `out`, compressing blocks handed to
/// [`ParGz::block`] on `threads` workers.
pub struct ParGz<'a> {
    out: &'a mut dyn Write,
    jobs: Option<Sender<Job>>,
    results: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    pending: BTreeMap<u64, Done>,
    submitted: u64,
    written: u64,
    max_in_flight: u64,
    crc: Crc,
    dict: Vec<u8>,
    spare: Vec<Vec<u8>>,
}

fn deflate(c: &mut Compress, data: &[u8], dict: &[u8], last: bool) -> io::Result<Vec<u8>> {
    c.reset();
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let start = c.total_in();
    loop {
        if out.capacity() - out.len() < 16 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = (c.total_in() - start) as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let consumed = (c.total_in() - start) as usize;
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                // A sync flush is complete once all input is in and the
                // output was not filled to the brim.
                if !last && consumed == data.len() && out.len() < out.capacity() {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn worker(level: u32, jobs: Arc<Mutex<Receiver<Job>>>, results: Sender<Done>) {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else { return };
        let mut crc = Crc::new();
        crc.update(&job.data);
        let result = deflate(&mut c, &job.data, &job.dict, job.last);
        let done = Done {
            index: job.index,
            result,
            crc,
            data: job.data,
        };
        if results.send(done).is_err() {
            return;
        }
    }
}

impl<'a> ParGz<'a> {
    pub fn new(out: &'a mut dyn Write, level: u32, threads: usize) -> io::Result<ParGz<'a>> {
        let threads = threads.max(1);
        let (jobs_tx, jobs_rx) = channel::<Job>();
        let (results_tx, results_rx) = channel::<Done>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = jobs_rx.clone();
            let tx = results_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("layer-gzip-{i}"))
                .spawn(move || worker(level, rx, tx))?;
            workers.push(h);
        }
        // Header: no name, no mtime, no flags, OS unknown: reproducible.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(ParGz {
            out,
            jobs: Some(jobs_tx),
            results: results_rx,
            workers,
            pending: BTreeMap::new(),
            submitted: 0,
            written: 0,
            max_in_flight: 2 * threads as u64 + 2,
            crc: Crc::new(),
            dict: Vec::new(),
            spare: Vec::new(),
        })
    }

    /// An empty buffer of [`BLOCK`] capacity (reused where possible).
    pub fn buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        b.reserve(BLOCK);
        b
    }

    /// Compresses the next block of input; `last` for the final one.
    pub fn block(&mut self, data: Vec<u8>, last: bool) -> io::Result<()> {
        let dict = std::mem::take(&mut self.dict);
        self.dict = data[data.len().saturating_sub(WINDOW)..].to_vec();
        if data.len() < WINDOW {
            // A short block: the window reaches into the previous ones.
            let mut d = dict.clone();
            d.extend_from_slice(&data);
            self.dict = d[d.len().saturating_sub(WINDOW)..].to_vec();
        }
        let job = Job {
            index: self.submitted,
            data,
            dict,
            last,
        };
        self.submitted += 1;
        self.jobs
            .as_ref()
            .expect("not finished")
            .send(job)
            .map_err(|_| io::Error::other("gzip worker gone"))?;
        while self.submitted - self.written >= self.max_in_flight {
            self.collect_one()?;
        }
        while let Ok(done) = self.results.try_recv() {
            self.accept(done)?;
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let done = self
            .results
            .recv()
            .map_err(|_| io::Error::other("gzip worker gone"))?;
        self.accept(done)
    }

    fn accept(&mut self, done: Done) -> io::Result<()> {
        self.pending.insert(done.index, done);
        while let Some(done) = self.pending.remove(&self.written) {
            let bytes = done.result?;
            self.out.write_all(&bytes)?;
            self.crc.combine(&done.crc);
            self.spare.push(done.data);
            self.written += 1;
        }
        Ok(())
    }

    /// Waits for every block, writes the gzip trailer. The last block must
    /// have been handed in with `last`.
    pub fn finish(mut self) -> io::Result<()> {
        while self.written < self.submitted {
            self.collect_one()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
        Ok(())
    }
}

impl Drop for ParGz<'_> {
    fn drop(&mut self) {
        // Workers see the closed queue and end; results nobody reads are
        // dropped with the channel.
        self.jobs = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pgzip(data: &[u8], threads: usize, block: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut gz = ParGz::new(&mut out, 6, threads).unwrap();
        let mut chunks: Vec<&[u8]> = data.chunks(block).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let n = chunks.len();
        for (i, c) in chunks.into_iter().enumerate() {
            let mut b = gz.buffer();
            b.extend_from_slice(c);
            gz.block(b, i + 1 == n).unwrap();
        }
        gz.finish().unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial.
        let mut x = 12345u32;
        (0..len)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i % 7 == 0 {
                    (x >> 24) as u8
                } else {
                    b"tar layer "[i % 10]
                }
            })
            .collect()
    }

    #[test]
    fn one_gzip_member_any_reader_accepts() {
        for len in [0, 1, 1000, WINDOW + 5, 3 * BLOCK + 17] {
            let data = sample(len);
            for block in [BLOCK, 10_000] {
                let gz = pgzip(&data, 3, block);
                // A single-member decoder reads it all: one member.
                let mut back = Vec::new();
                flate2::read::GzDecoder::new(&gz[..])
                    .read_to_end(&mut back)
                    .unwrap();
                assert_eq!(back, data, "len {len} block {block}");
            }
        }
    }

    #[test]
    fn output_does_not_depend_on_threads() {
        let data = sample(5 * BLOCK + 3);
        let a = pgzip(&data, 1, BLOCK);
        let b = pgzip(&data, 2, BLOCK);
        let c = pgzip(&data, 7, BLOCK);
        assert_eq!(a, b);
        assert_eq!(a, c);
    }
}
