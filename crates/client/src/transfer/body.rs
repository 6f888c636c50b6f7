//! A byte range of a local file as a request body, read in bounded chunks on the blocking
//! pool and hashed (MD5) as it goes, so that a part of any size costs one chunk of memory.

use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use md5::{Digest, Md5};

use crate::error::ClientError;

/// Bytes read per step: large enough that the blocking pool's hops cost little, small enough
/// that `concurrency` bodies in flight stay a few tens of MiB.
const CHUNK: u64 = 512 * 1024;
/// Bodies up to this size are read whole, in one step.
const SMALL: u64 = 1024 * 1024;

/// A file opened once for all its parts' reads and writes.
#[derive(Debug, Clone)]
pub(super) struct SharedFile {
    file: Arc<std::fs::File>,
    path: Arc<Path>,
    /// One write at a time: the kernel serialises a file's buffered writes on its inode's lock
    /// anyway, and the writers that wait there spin on it (with 32 ranges of a download writing
    /// at once, a sixth as much CPU as the writes' copying). Waiting here costs no CPU.
    writing: Arc<tokio::sync::Semaphore>,
}

impl SharedFile {
    pub(super) fn open(path: &Path) -> Result<SharedFile, ClientError> {
        let file = std::fs::File::open(path).map_err(ClientError::io(path))?;
        Ok(SharedFile::new(file, path))
    }

    pub(super) fn create(path: &Path, size: u64) -> Result<SharedFile, ClientError> {
        let file = std::fs::File::create(path).map_err(ClientError::io(path))?;
        file.set_len(size).map_err(ClientError::io(path))?;
        Ok(SharedFile::new(file, path))
    }

    fn new(file: std::fs::File, path: &Path) -> SharedFile {
        SharedFile { file: Arc::new(file), path: path.into(), writing: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    /// Reads `len` bytes at `offset`, on the blocking pool.
    pub(super) async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ClientError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut buffer = vec![0; usize::try_from(len).unwrap_or(usize::MAX)];
            read_exact_at(&this.file, &mut buffer, offset).map_err(ClientError::io(&*this.path))?;
            Ok(buffer)
        })
        .await
        .map_err(|e| ClientError::Usage(format!("a read stopped: {e}")))?
    }

    /// Writes `chunks` one after the other from `offset`, on the blocking pool, in one gathering
    /// write: the chunks are the HTTP client's own buffers, written without a copy of their own.
    /// Gives the list back, emptied, for the next write.
    pub(super) async fn write(&self, offset: u64, mut chunks: Vec<Bytes>) -> Result<Vec<Bytes>, ClientError> {
        let this = self.clone();
        let turn = self
            .writing
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Usage("the file was closed".to_owned()))?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            write_all_vectored_at(&this.file, &chunks, offset).map_err(ClientError::io(&*this.path))?;
            chunks.clear();
            Ok(chunks)
        })
        .await
        .map_err(|e| ClientError::Usage(format!("a write stopped: {e}")))?
    }

    /// The MD5 of `len` bytes at `offset`, read in chunks.
    pub(super) async fn md5(&self, offset: u64, len: u64) -> Result<[u8; 16], ClientError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut hasher = Md5::new();
            let mut buffer = vec![0; usize::try_from(CHUNK.min(len)).unwrap_or(0)];
            let mut done = 0;
            while done < len {
                let n = usize::try_from(CHUNK.min(len - done)).unwrap_or(0);
                read_exact_at(&this.file, &mut buffer[..n], offset + done).map_err(ClientError::io(&*this.path))?;
                hasher.update(&buffer[..n]);
                done += n as u64;
            }
            Ok(hasher.finalize().into())
        })
        .await
        .map_err(|e| ClientError::Usage(format!("a read stopped: {e}")))?
    }

    /// `len` bytes at `offset` as a request body, and where its MD5 is once it was all sent.
    pub(super) async fn body(&self, offset: u64, len: u64) -> Result<(reqwest::Body, Hashed), ClientError> {
        let hashed = Hashed::default();
        if len <= SMALL {
            let bytes = self.read(offset, len).await?;
            hashed.set(Md5::digest(&bytes).into());
            return Ok((reqwest::Body::from(bytes), hashed));
        }
        let state = (self.clone(), 0u64, Md5::new(), hashed.clone());
        // The digest is kept with the last chunk: the HTTP client stops reading a body once it
        // sent Content-Length bytes, so the stream's end may never be polled.
        let stream = futures_util::stream::try_unfold(state, move |(file, done, mut hasher, hashed)| async move {
            if done == len {
                return Ok::<_, ClientError>(None);
            }
            let n = CHUNK.min(len - done);
            let chunk = file.read(offset + done, n).await?;
            hasher.update(&chunk);
            if done + n == len {
                hashed.set(hasher.clone().finalize().into());
            }
            Ok(Some((Bytes::from(chunk), (file, done + n, hasher, hashed))))
        });
        Ok((reqwest::Body::wrap_stream(stream), hashed))
    }
}

/// The MD5 of a body, known once the body was read to its end.
#[derive(Debug, Clone, Default)]
pub(super) struct Hashed(Arc<Mutex<Option<[u8; 16]>>>);

impl Hashed {
    fn set(&self, digest: [u8; 16]) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(digest);
        }
    }

    pub(super) fn get(&self) -> Option<[u8; 16]> {
        self.0.lock().ok().and_then(|slot| *slot)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

/// The most chunks one [`SharedFile::write`] takes: Linux's `IOV_MAX` is 1,024.
pub(super) const MAX_CHUNKS: usize = 512;

#[cfg(unix)]
fn write_all_vectored_at(file: &std::fs::File, chunks: &[Bytes], mut offset: u64) -> std::io::Result<()> {
    let mut slices: Vec<std::io::IoSlice<'_>> = chunks.iter().map(|chunk| std::io::IoSlice::new(chunk)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = rustix::io::pwritev(file, slices, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        std::io::IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buffer: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buffer.is_empty() {
        let n = file.seek_read(buffer, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer = &mut buffer[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(windows)]
fn write_all_vectored_at(file: &std::fs::File, chunks: &[Bytes], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    for chunk in chunks {
        let mut buffer = &chunk[..];
        while !buffer.is_empty() {
            let n = file.seek_write(buffer, offset)?;
            buffer = &buffer[n..];
            offset += n as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks of uneven sizes, written in two batches at two offsets, land where they belong,
    /// and each batch's list comes back empty.
    #[tokio::test]
    async fn chunks_are_written_in_order_at_their_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let file = SharedFile::create(&path, bytes.len() as u64).unwrap();
        let chunks = |range: std::ops::Range<usize>, size: usize| -> Vec<Bytes> {
            bytes[range].chunks(size).map(Bytes::copy_from_slice).collect()
        };
        // The second half first: the writes are positioned, not appended.
        let back = file.write(150_000, chunks(150_000..300_000, 7_001)).await.unwrap();
        assert!(back.is_empty());
        let back = file.write(0, chunks(0..150_000, 1_000)).await.unwrap();
        assert!(back.is_empty() && back.capacity() >= 150);
        assert!(std::fs::read(&path).unwrap() == bytes, "the file holds the chunks in order");
    }
}
