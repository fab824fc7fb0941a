//! Layer compression whose bytes never depend on the thread count.
//!
//! gzip: the uncompressed stream is cut into fixed-size blocks; each block is
//! deflated on its own (primed with the previous block's last 32 KiB as a
//! dictionary, which is part of the data, not of the schedule) and ended with a
//! sync flush, so the compressed blocks concatenate into one valid deflate
//! stream. A final empty block, the combined CRC-32 and the length close the
//! gzip member. One thread or sixteen produce the same bytes, because the work
//! units and their inputs are fixed by the data alone.
//!
//! zstd: libzstd's multi-threaded mode produces identical frames for any
//! worker count of one or more, so at least one worker is always requested.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression as FlateLevel, FlushCompress, Status};
use serde::{Deserialize, Serialize};

/// Size of the independently compressed gzip blocks. Part of the
/// reproducibility contract: changing it changes layer digests.
pub const GZIP_BLOCK_SIZE: usize = 1 << 20;
/// Dictionary carried from one block to the next (deflate's window).
const GZIP_DICT_SIZE: usize = 32 * 1024;

/// The compression algorithm and level of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Algorithm {
    /// gzip (deflate), the most widely supported layer format.
    Gzip,
    /// zstd, much faster to compress and decompress; needs a recent runtime.
    Zstd,
    /// No compression (`application/vnd.oci.image.layer.v1.tar`).
    None,
}

/// Compression settings that are part of a layer's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compression {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The level (gzip 1–9, zstd 1–19; ignored for none).
    pub level: i32,
    /// gzip only: carry files that already are raw deflate streams (wheel
    /// members) as gzip members of their own instead of compressing again.
    pub splice: bool,
}

impl Compression {
    /// gzip level 6 with splicing, the default.
    pub const DEFAULT: Compression = Compression { algorithm: Algorithm::Gzip, level: 6, splice: true };

    /// The algorithm at its default level (splicing on for gzip).
    pub fn new(algorithm: Algorithm, level: i32) -> Compression {
        Compression { algorithm, level, splice: algorithm == Algorithm::Gzip }
    }

    /// The default level of an algorithm.
    pub fn default_level(algorithm: Algorithm) -> i32 {
        match algorithm {
            Algorithm::Gzip => 6,
            Algorithm::Zstd => 3,
            Algorithm::None => 0,
        }
    }

    /// The OCI media type of a layer compressed this way.
    pub fn layer_media_type(&self) -> &'static str {
        match self.algorithm {
            Algorithm::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Algorithm::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Algorithm::None => "application/vnd.oci.image.layer.v1.tar",
        }
    }

    /// A description of the exact compressor and its settings, recorded in
    /// layer annotations because it is part of the reproducibility contract.
    pub fn describe(&self) -> String {
        match self.algorithm {
            Algorithm::Gzip => format!(
                "gzip level={} impl=zlib-rs block={} dict={} os=3 mtime=0{}",
                self.level,
                GZIP_BLOCK_SIZE,
                GZIP_DICT_SIZE,
                if self.splice {
                    format!(" members=spliced-deflate,plain<={}", crate::layer::PLAIN_MEMBER_MAX)
                } else {
                    String::new()
                }
            ),
            Algorithm::Zstd => {
                format!("zstd level={} impl=libzstd-{} mt=1+", self.level, zstd::zstd_safe::version_string())
            }
            Algorithm::None => "none".to_string(),
        }
    }

    /// Checks the level range.
    pub fn validate(&self) -> Result<(), LevelError> {
        let ok = match self.algorithm {
            Algorithm::Gzip => (1..=9).contains(&self.level),
            Algorithm::Zstd => (1..=19).contains(&self.level),
            Algorithm::None => true,
        };
        if ok {
            Ok(())
        } else {
            Err(LevelError { level: self.level, algorithm: self.algorithm })
        }
    }
}

/// A compression level outside the algorithm's range.
#[derive(Debug, Clone, thiserror::Error)]
#[error("level {level} is out of range for {algorithm:?} (gzip: 1-9, zstd: 1-19)")]
pub struct LevelError {
    /// The level asked for.
    pub level: i32,
    /// The algorithm.
    pub algorithm: Algorithm,
}

/// A writer that compresses into `W`; call [`Compressor::finish`] to end the stream.
pub enum Compressor<W: Write + Send + 'static> {
    /// Parallel gzip.
    Gzip(ParallelGzip<W>),
    /// zstd.
    Zstd(zstd::stream::write::Encoder<'static, W>),
    /// Pass-through.
    None(W),
}

impl<W: Write + Send + 'static> Compressor<W> {
    /// A compressor writing into `out` with `threads` worker threads.
    pub fn new(c: Compression, threads: usize, out: W) -> io::Result<Self> {
        Ok(match c.algorithm {
            Algorithm::Gzip => Compressor::Gzip(ParallelGzip::new(out, c.level as u32, threads)?),
            Algorithm::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, c.level)?;
                // Always at least one worker: the frame is then the same for any count.
                enc.multithread(threads.max(1) as u32)?;
                enc.include_checksum(false)?;
                enc.include_contentsize(false)?;
                Compressor::Zstd(enc)
            }
            Algorithm::None => Compressor::None(out),
        })
    }

    /// Ends the stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(g) => g.finish(),
            Compressor::Zstd(z) => z.finish(),
            Compressor::None(w) => Ok(w),
        }
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(g) => g.write(buf),
            Compressor::Zstd(z) => z.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(g) => g.flush(),
            Compressor::Zstd(z) => z.flush(),
            Compressor::None(w) => w.flush(),
        }
    }
}

struct Job {
    index: u64,
    dict: Arc<Vec<u8>>,
    data: Vec<u8>,
}

struct Done {
    index: u64,
    deflated: io::Result<Vec<u8>>,
    crc: u32,
    len: u64,
}

/// Deterministic block-parallel gzip writer (see the module docs).
pub struct ParallelGzip<W: Write> {
    out: W,
    level: u32,
    block: Vec<u8>,
    prev_tail: Arc<Vec<u8>>,
    next_index: u64,
    next_to_write: u64,
    crc: crc32fast::Hasher,
    total: u64,
    pending: BTreeMap<u64, Done>,
    // Worker machinery; empty for the single-threaded path.
    jobs: Option<mpsc::SyncSender<Job>>,
    results: Option<mpsc::Receiver<Done>>,
    workers: Vec<JoinHandle<()>>,
    in_flight: usize,
    max_in_flight: usize,
}

/// Raw-deflates one block, primed with `dict`, ending on a byte boundary.
fn deflate_block(level: u32, dict: &[u8], data: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(FlateLevel::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let status = c.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync).map_err(io::Error::other)?;
        let done = c.total_in() as usize == data.len() && out.len() < out.capacity();
        match status {
            Status::Ok | Status::BufError if !done => continue,
            _ => break,
        }
    }
    Ok(out)
}

impl<W: Write> ParallelGzip<W> {
    /// Starts a gzip member on `out`.
    pub fn new(mut out: W, level: u32, threads: usize) -> io::Result<Self> {
        // Fixed header: no name, mtime 0, XFL 0, OS 3 (Unix).
        out.write_all(&[0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0x03])?;
        let mut me = ParallelGzip {
            out,
            level,
            block: Vec::with_capacity(GZIP_BLOCK_SIZE),
            prev_tail: Arc::new(Vec::new()),
            next_index: 0,
            next_to_write: 0,
            crc: crc32fast::Hasher::new(),
            total: 0,
            pending: BTreeMap::new(),
            jobs: None,
            results: None,
            workers: Vec::new(),
            in_flight: 0,
            max_in_flight: 0,
        };
        if threads > 1 {
            let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads);
            let (done_tx, done_rx) = mpsc::channel::<Done>();
            let job_rx = Arc::new(Mutex::new(job_rx));
            for _ in 0..threads {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                me.workers.push(std::thread::spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(guard) => match guard.recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        },
                        Err(_) => return,
                    };
                    let crc = crc32fast::hash(&job.data);
                    let deflated = deflate_block(level, &job.dict, &job.data);
                    if tx.send(Done { index: job.index, deflated, crc, len: job.data.len() as u64 }).is_err() {
                        return;
                    }
                }));
            }
            me.jobs = Some(job_tx);
            me.results = Some(done_rx);
            me.max_in_flight = threads * 2;
        }
        Ok(me)
    }

    fn submit_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK_SIZE));
        let tail_start = data.len().saturating_sub(GZIP_DICT_SIZE);
        let next_tail = Arc::new(data[tail_start..].to_vec());
        let dict = std::mem::replace(&mut self.prev_tail, next_tail);
        let index = self.next_index;
        self.next_index += 1;
        match self.jobs.clone() {
            None => {
                let crc = crc32fast::hash(&data);
                let deflated = deflate_block(self.level, &dict, &data);
                self.pending.insert(index, Done { index, deflated, crc, len: data.len() as u64 });
                self.write_ready()?;
            }
            Some(tx) => {
                while self.in_flight >= self.max_in_flight {
                    self.collect_one()?;
                }
                tx.send(Job { index, dict, data }).map_err(|_| io::Error::other("gzip worker thread stopped"))?;
                self.in_flight += 1;
                // Opportunistically write what is finished.
                while let Some(Ok(done)) = self.results.as_ref().map(|r| r.try_recv()) {
                    self.in_flight -= 1;
                    self.pending.insert(done.index, done);
                }
                self.write_ready()?;
            }
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let rx = self.results.as_ref().ok_or_else(|| io::Error::other("no gzip workers"))?;
        let done = rx.recv().map_err(|_| io::Error::other("gzip worker thread stopped"))?;
        self.in_flight -= 1;
        self.pending.insert(done.index, done);
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(done) = self.pending.remove(&self.next_to_write) {
            let bytes = done.deflated?;
            self.out.write_all(&bytes)?;
            self.crc.combine(&crc32fast::Hasher::new_with_initial_len(done.crc, done.len));
            self.total += done.len;
            self.next_to_write += 1;
            debug_assert_eq!(done.index + 1, self.next_to_write);
        }
        Ok(())
    }

    /// Writes the last block and the gzip trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit_block()?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        self.jobs = None; // workers see a closed channel and exit
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if self.next_to_write != self.next_index {
            return Err(io::Error::other("gzip blocks were lost"));
        }
        // Final empty fixed-Huffman block (BFINAL=1), then CRC-32 and ISIZE.
        self.out.write_all(&[0x03, 0x00])?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.write_all(&(self.total as u32).to_le_bytes())?;
        self.out.flush()?;
        let ParallelGzip { out, .. } = self;
        Ok(out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let room = GZIP_BLOCK_SIZE - self.block.len();
            let take = room.min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == GZIP_BLOCK_SIZE {
                self.submit_block()?;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        // Block boundaries are fixed by the data; flushing never cuts a block.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: a text-like pattern with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i: u64 = 0;
        while v.len() < len {
            v.extend_from_slice(format!("line {} of the sample {}\n", i, i.wrapping_mul(2654435761) % 1000).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    fn gz(data: &[u8], threads: usize, level: u32) -> Vec<u8> {
        let mut g = ParallelGzip::new(Vec::new(), level, threads).unwrap();
        // Feed in odd-sized pieces so write boundaries do not line up with blocks.
        for chunk in data.chunks(77_777) {
            g.write_all(chunk).unwrap();
        }
        g.finish().unwrap()
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_thread_count() {
        let data = sample(5 * GZIP_BLOCK_SIZE + 12_345);
        let one = gz(&data, 1, 6);
        assert_eq!(one, gz(&data, 2, 6));
        assert_eq!(one, gz(&data, 16, 6));
    }

    #[test]
    fn gzip_output_decompresses_with_a_standard_decoder() {
        for len in [0, 1, 1000, GZIP_BLOCK_SIZE, 3 * GZIP_BLOCK_SIZE + 5] {
            let data = sample(len);
            let out = gz(&data, 4, 6);
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "len {len}");
        }
    }

    #[test]
    fn gzip_header_is_fixed() {
        let out = gz(b"hello", 1, 6);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_thread_count() {
        let data = sample(9 * GZIP_BLOCK_SIZE);
        let run = |threads| {
            let mut c = Compressor::new(Compression::new(Algorithm::Zstd, 3), threads, Vec::new()).unwrap();
            c.write_all(&data).unwrap();
            c.finish().unwrap()
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(8));
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}
