//! [`CriHandle::logs`]: a container's output from its CRI log file.
//!
//! containerd writes each line as `<RFC3339Nano> <stdout|stderr> <P|F> <message>`; `F` ends
//! a line, `P` is a partial one continued by the next entry. The stream yields the message
//! text (with its newline for `F`), in chunks of whole entries. With `follow`, it keeps
//! reading until the container instance has exited and the file has no more to give.

use std::{
    collections::VecDeque,
    fs,
    io::{self, Read as _, Seek as _, SeekFrom},
    path::PathBuf,
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use futures::Stream;

use super::{CriHandle, Error, api::ContainerState};

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most bytes read from the file per chunk.
const CHUNK_MAX: usize = 64 * 1024;

/// The message of one CRI log line (without its trailing newline), and whether it ends a
/// line (`F`). `None` for a line that is not in the CRI format.
pub fn parse_line(line: &[u8]) -> Option<(&[u8], bool)> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let _time = parts.next()?;
    let stream = parts.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some((parts.next().unwrap_or_default(), full))
}

/// Appends the message of each complete line in `buf` to `out`; returns how many bytes of
/// `buf` were consumed (a trailing incomplete line is left).
fn decode(buf: &[u8], out: &mut BytesMut) -> usize {
    let mut used = 0;
    while let Some(end) = buf
        .get(used..)
        .and_then(|b| b.iter().position(|c| *c == b'\n'))
    {
        let line = buf.get(used..used + end).unwrap_or_default();
        if let Some((msg, full)) = parse_line(line) {
            out.extend_from_slice(msg);
            if full {
                out.extend_from_slice(b"\n");
            }
        }
        used += end + 1;
    }
    used
}

/// The messages of the last `n` lines of `text` (a whole file).
fn tail(text: &[u8], n: u64) -> (BytesMut, usize) {
    let mut lines: VecDeque<BytesMut> = VecDeque::new();
    let mut current = BytesMut::new();
    let mut used = 0;
    while let Some(end) = text
        .get(used..)
        .and_then(|b| b.iter().position(|c| *c == b'\n'))
    {
        if let Some((msg, full)) = parse_line(text.get(used..used + end).unwrap_or_default()) {
            current.extend_from_slice(msg);
            if full {
                current.extend_from_slice(b"\n");
                lines.push_back(std::mem::take(&mut current));
                if u64::try_from(lines.len()).unwrap_or(u64::MAX) > n {
                    lines.pop_front();
                }
            }
        }
        used += end + 1;
    }
    let mut out = BytesMut::new();
    for l in lines {
        out.extend_from_slice(&l);
    }
    out.extend_from_slice(&current);
    (out, used)
}

/// The state of a log stream between chunks.
struct Reader {
    handle: CriHandle,
    id: String,
    path: PathBuf,
    offset: u64,
    /// Read but not yet decoded (an incomplete line).
    pending: Vec<u8>,
    /// The first chunk (the tail), if not yet sent.
    first: Option<Bytes>,
    follow: bool,
    done: bool,
}

impl Reader {
    /// Reads what was appended since the last read; the decoded messages.
    fn read_more(&mut self) -> io::Result<Bytes> {
        let mut file = fs::File::open(&self.path)?;
        let len = file.metadata()?.len();
        if len < self.offset {
            // Truncated or rotated: start over.
            self.offset = 0;
            self.pending.clear();
        }
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::with_capacity(
            CHUNK_MAX.min(usize::try_from(len - self.offset).unwrap_or(CHUNK_MAX)),
        );
        let n = file.take(CHUNK_MAX as u64).read_to_end(&mut buf)?;
        self.offset += n as u64;
        self.pending.extend_from_slice(&buf);
        let mut out = BytesMut::new();
        let used = decode(&self.pending, &mut out);
        self.pending.drain(..used);
        Ok(out.freeze())
    }

    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        if let Some(first) = self.first.take()
            && !first.is_empty()
        {
            return Some(Ok(first));
        }
        loop {
            if self.done {
                return None;
            }
            match self.read_more() {
                Ok(chunk) if !chunk.is_empty() => return Some(Ok(chunk)),
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
            if !self.follow || self.exited().await {
                // One last read: output written just before the exit.
                self.done = true;
                return match self.read_more() {
                    Ok(chunk) if !chunk.is_empty() => Some(Ok(chunk)),
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                };
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    async fn exited(&self) -> bool {
        match self.handle.container_status(&self.id).await {
            Ok(s) => s.state != ContainerState::ContainerRunning as i32,
            Err(_) => true,
        }
    }
}

impl CriHandle {
    /// The output of the newest instance of container `container` of pod `pod_uid`: the last
    /// `tail_lines` lines (all without it), then, with `follow`, what it writes until it exits.
    pub async fn logs(
        &self,
        pod_uid: &str,
        container: &str,
        follow: bool,
        tail_lines: Option<u64>,
    ) -> Result<impl Stream<Item = io::Result<Bytes>> + Send + 'static, Error> {
        let c = self.newest(pod_uid, container).await?;
        let status = self.container_status(&c.id).await?;
        let path = PathBuf::from(&status.log_path);
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let (first, offset) = match tail_lines {
            Some(n) => {
                let text = fs::read(&path).map_err(io_err)?;
                let (out, used) = tail(&text, n);
                (out.freeze(), used as u64)
            }
            None => (Bytes::new(), 0),
        };
        let reader = Reader {
            handle: self.clone(),
            id: c.id,
            path,
            offset,
            pending: Vec::new(),
            first: Some(first),
            follow,
            done: false,
        };
        Ok(futures::stream::unfold(reader, |mut r| async move {
            let item = r.next_chunk().await?;
            Some((item, r))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: CRI log lines decode to their messages. Method: full and partial lines of both
    /// streams, a malformed line (skipped) and an incomplete last line (left for later).
    #[test]
    fn decodes_cri_lines() {
        let text = b"2024-01-01T00:00:00.1Z stdout F hello\n\
                     2024-01-01T00:00:00.2Z stderr P par\n\
                     2024-01-01T00:00:00.3Z stderr F tial\n\
                     garbage\n\
                     2024-01-01T00:00:00.4Z stdout F \n\
                     2024-01-01T00:00:00.5Z stdout F unfinished";
        let mut out = BytesMut::new();
        let used = decode(text, &mut out);
        assert_eq!(&out[..], b"hello\npartial\n\n");
        assert_eq!(&text[used..], b"2024-01-01T00:00:00.5Z stdout F unfinished");
        assert_eq!(parse_line(b"t stdout X m"), None);
    }

    /// Goal: `tail_lines` keeps the last n whole lines, joining partial entries. Method: four
    /// lines, one split in two entries; tail 2 and tail 10.
    #[test]
    fn tail_keeps_last_lines() {
        let text = b"t stdout F a\nt stdout F b\nt stdout P c1\nt stdout F c2\nt stdout F d\n";
        assert_eq!(&tail(text, 2).0[..], b"c1c2\nd\n");
        assert_eq!(&tail(text, 10).0[..], b"a\nb\nc1c2\nd\n");
        assert_eq!(tail(text, 0).0.len(), 0);
    }
}
