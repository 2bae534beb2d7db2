//! The transmission phase: requests in, replies out, pipelined.
//!
//! One reader parses requests in order and checks each against the export before anything touches
//! the backend; valid requests run concurrently (backend calls on blocking threads) and their
//! replies, each a complete message, go through one writer, so replies never interleave mid-message
//! but may come back in any order, as the protocol allows. Memory is bounded: a request first takes
//! its size in bytes from a per-connection budget and gives it back once its reply is written.
//!
//! A bad request magic, a client hanging up mid-request, or a write failure on the socket ends the
//! connection; every other problem is an NBD error reply for that request alone.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ims_formats::BlockStatus;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::export::{Export, Extent};
use crate::handshake::{discard, read_or_eof, Negotiated};
use crate::protocol::*;
use crate::server::{shutdown_requested, ServerConfig};
use crate::NbdError;

/// Budget charged per request on top of its payload, so that a flood of tiny requests is bounded too.
const REQUEST_OVERHEAD: u32 = 64 * 1024;
/// Most descriptors in one block status reply (the spec suggests at most 2^20); the client asks
/// again for the rest.
const MAX_STATUS_EXTENTS: usize = 16 * 1024;
/// Reads whose layout breaks into more chunks than this are sent as one data chunk.
const MAX_READ_CHUNKS: usize = 1024;
/// With `NBD_CMD_FLAG_REQ_ONE` only the first extent is sent, so only this much of the range is looked
/// up: the spec lets that extent be shorter than the run it starts, and the client asks again from its
/// end. Clients (qemu among them) send `REQ_ONE` with lengths of gigabytes and use the first extent only;
/// mapping all of it for each request would cost time in proportion to the disk, not to the answer.
const REQ_ONE_SPAN: u32 = 64 << 20;
/// Replies queued for the writer before request tasks wait.
const REPLY_QUEUE: usize = 64;

/// One complete reply message, in pieces that are written back to back.
type Reply = Vec<Bytes>;

/// Per-connection facts every request task needs.
struct Session {
    export: Export,
    structured: bool,
    base_allocation: bool,
    max_payload: u32,
}

/// A request that passed validation: what to do, with the range already checked against the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Read { df: bool },
    Write { fua: bool },
    Flush,
    Trim { fua: bool },
    Cache,
    WriteZeroes { fua: bool, may_trim: bool },
    BlockStatus { req_one: bool },
}

/// A refused request: the NBD error and a message for a human.
type Refusal = (u32, &'static str);

/// Serves requests until the client disconnects (`NBD_CMD_DISC` or EOF), the server shuts down, or
/// the connection breaks. Requests already accepted are always answered before the connection
/// closes (when the socket still works).
pub(crate) async fn serve<R, W>(
    mut r: R,
    w: W,
    negotiated: Negotiated,
    config: &ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NbdError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let session = Arc::new(Session {
        export: negotiated.export,
        structured: negotiated.structured,
        base_allocation: negotiated.base_allocation,
        max_payload: config.max_payload,
    });
    let (tx, rx) = mpsc::channel::<Reply>(REPLY_QUEUE);
    let writer = tokio::spawn(write_replies(w, rx));
    let budget = Arc::new(Semaphore::new(
        config.inflight_bytes_per_connection as usize,
    ));
    let mut tasks = JoinSet::new();

    let result = read_requests(&mut r, &session, &tx, &budget, &mut tasks, &mut shutdown).await;

    // Answer everything accepted so far, then let the backend save its state and the writer drain and close.
    while tasks.join_next().await.is_some() {}
    let backend = session.export.backend.clone();
    if let Err(e) = blocking(move || backend.close()).await {
        tracing::warn!(error = %e, "closing the export failed");
    }
    drop(tx);
    let written = writer.await.unwrap_or_else(|e| Err(io::Error::other(e)));
    result?;
    written.map_err(NbdError::Io)
}

async fn read_requests<R: AsyncRead + Unpin>(
    r: &mut R,
    session: &Arc<Session>,
    tx: &mpsc::Sender<Reply>,
    budget: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), NbdError> {
    let mut buf = [0u8; REQUEST_HEADER_LEN];
    loop {
        while tasks.try_join_next().is_some() {}
        let more = tokio::select! {
            biased;
            _ = shutdown_requested(shutdown) => return Ok(()),
            _ = tx.closed() => return Ok(()), // the writer failed; its error is reported
            more = read_or_eof(r, &mut buf) => more?,
        };
        if !more {
            return Ok(());
        }
        let req = RequestHeader::parse(&buf).ok_or(NbdError::Protocol("bad request magic"))?;
        if req.command == CMD_DISC {
            return Ok(());
        }

        let op = match validate(&req, session) {
            Ok(op) => op,
            Err((error, message)) => {
                if req.command == CMD_WRITE {
                    // Keep the stream in step: the payload follows whatever we think of it.
                    discard(r, u64::from(req.length)).await?;
                }
                let _ = tx
                    .send(error_reply(session, req.cookie, error, message))
                    .await;
                continue;
            }
        };

        let permit = budget
            .clone()
            .acquire_many_owned(cost(&req, op))
            .await
            .expect("the budget semaphore is never closed");
        let payload = if let Op::Write { .. } = op {
            let mut data = vec![0u8; req.length as usize];
            r.read_exact(&mut data).await?;
            Some(data)
        } else {
            None
        };
        let session = session.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let reply = execute(&session, &req, op, payload).await;
            let _ = tx.send(reply).await;
            drop::<OwnedSemaphorePermit>(permit);
        });
    }
}

/// Budget a request holds while in flight: its data buffer plus a fixed overhead.
fn cost(req: &RequestHeader, op: Op) -> u32 {
    let buffer = match op {
        Op::Read { .. } | Op::Write { .. } => req.length,
        // The default write-zeroes writes through a buffer of up to 1 MiB.
        Op::WriteZeroes { .. } => req.length.min(1 << 20),
        Op::BlockStatus { .. } => (MAX_STATUS_EXTENTS * 8) as u32,
        Op::Flush | Op::Trim { .. } | Op::Cache => 0,
    };
    buffer.saturating_add(REQUEST_OVERHEAD)
}

/// Checks a request against the protocol and the export, in the spec's order of precedence:
/// unknown command or flags (`EINVAL`), read-only (`EPERM`), size limits, then bounds (`ENOSPC` for
/// writes, `EINVAL` otherwise).
fn validate(req: &RequestHeader, s: &Session) -> Result<Op, Refusal> {
    // FUA is valid on every command (clients are known to set it on reads); unknown bits are not.
    let flags_ok = |allowed: u16| -> Result<(), Refusal> {
        if req.flags & !(allowed | CMD_FLAG_FUA) != 0 {
            Err((EINVAL, "unsupported command flags"))
        } else {
            Ok(())
        }
    };
    let writable = || {
        if s.export.read_only {
            Err((EPERM, "export is read-only"))
        } else {
            Ok(())
        }
    };
    let end = req.offset.checked_add(u64::from(req.length));
    let in_bounds = end.is_some_and(|end| end <= s.export.size);
    let fua = req.flags & CMD_FLAG_FUA != 0;

    match req.command {
        CMD_READ => {
            flags_ok(if s.structured { CMD_FLAG_DF } else { 0 })?;
            if req.length > s.max_payload {
                return Err(if s.structured {
                    (EOVERFLOW, "read larger than the maximum payload")
                } else {
                    (EINVAL, "read larger than the maximum payload")
                });
            }
            if !in_bounds {
                return Err((EINVAL, "read past the end of the export"));
            }
            Ok(Op::Read {
                df: req.flags & CMD_FLAG_DF != 0,
            })
        }
        CMD_WRITE => {
            flags_ok(0)?;
            writable()?;
            if req.length > s.max_payload {
                return Err((EINVAL, "write larger than the maximum payload"));
            }
            if !in_bounds {
                return Err((ENOSPC, "write past the end of the export"));
            }
            Ok(Op::Write { fua })
        }
        CMD_FLUSH => {
            flags_ok(0)?;
            if req.offset != 0 || req.length != 0 {
                return Err((EINVAL, "flush offset and length must be zero"));
            }
            Ok(Op::Flush)
        }
        CMD_TRIM => {
            flags_ok(0)?;
            writable()?;
            if !in_bounds {
                return Err((EINVAL, "trim past the end of the export"));
            }
            Ok(Op::Trim { fua })
        }
        CMD_CACHE => {
            flags_ok(0)?;
            if !in_bounds {
                return Err((EINVAL, "cache past the end of the export"));
            }
            Ok(Op::Cache)
        }
        CMD_WRITE_ZEROES => {
            // NBD_CMD_FLAG_FAST_ZERO is not advertised, so it is an invalid flag here.
            flags_ok(CMD_FLAG_NO_HOLE)?;
            writable()?;
            if !in_bounds {
                return Err((ENOSPC, "write past the end of the export"));
            }
            Ok(Op::WriteZeroes {
                fua,
                may_trim: req.flags & CMD_FLAG_NO_HOLE == 0,
            })
        }
        CMD_BLOCK_STATUS => {
            flags_ok(CMD_FLAG_REQ_ONE)?;
            if !s.base_allocation {
                return Err((EINVAL, "no metadata context was negotiated"));
            }
            if req.length == 0 {
                return Err((EINVAL, "empty block status request"));
            }
            if !in_bounds {
                return Err((EINVAL, "block status past the end of the export"));
            }
            Ok(Op::BlockStatus {
                req_one: req.flags & CMD_FLAG_REQ_ONE != 0,
            })
        }
        _ => Err((EINVAL, "unknown command")),
    }
}

/// The NBD error for a backend failure. Backend messages are logged, never sent: they may name
/// files or internal state.
fn errno(e: &io::Error) -> u32 {
    use io::ErrorKind::*;
    match e.kind() {
        PermissionDenied | ReadOnlyFilesystem => EPERM,
        StorageFull | QuotaExceeded | FileTooLarge => ENOSPC,
        InvalidInput => EINVAL,
        OutOfMemory => ENOMEM,
        _ => EIO,
    }
}

fn error_reply(s: &Session, cookie: u64, error: u32, message: &str) -> Reply {
    if s.structured {
        vec![error_chunk(cookie, error, message)]
    } else {
        vec![simple_reply(error, cookie)]
    }
}

fn io_error_reply(s: &Session, cookie: u64, e: &io::Error) -> Reply {
    tracing::warn!(error = %e, "backend request failed");
    let code = errno(e);
    let message = match code {
        EPERM => "operation not permitted",
        ENOSPC => "no space left on the export",
        EINVAL => "invalid request",
        ENOMEM => "out of memory",
        _ => "input/output error",
    };
    error_reply(s, cookie, code, message)
}

/// Runs a backend call on a blocking thread; a panicking backend is an I/O error, not a crash.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("backend task failed: {e}"))),
    }
}

async fn execute(s: &Arc<Session>, req: &RequestHeader, op: Op, payload: Option<Vec<u8>>) -> Reply {
    let backend = s.export.backend.clone();
    let (offset, len) = (req.offset, u64::from(req.length));
    let done = || vec![simple_reply(0, req.cookie)];
    let result = match op {
        Op::Read { df } => return read(s, req, df).await,
        Op::BlockStatus { req_one } => return block_status(s, req, req_one).await,
        Op::Write { fua } => {
            let data = payload.unwrap_or_default();
            blocking(move || {
                backend.write_at(&data, offset)?;
                if fua {
                    backend.flush()?;
                }
                Ok(())
            })
            .await
        }
        Op::Flush => blocking(move || backend.flush()).await,
        Op::Trim { fua } => {
            blocking(move || {
                if len > 0 {
                    backend.trim(offset, len)?;
                }
                if fua {
                    backend.flush()?;
                }
                Ok(())
            })
            .await
        }
        Op::Cache => {
            blocking(move || {
                if len > 0 {
                    backend.cache(offset, len)
                } else {
                    Ok(())
                }
            })
            .await
        }
        Op::WriteZeroes { fua, may_trim } => {
            blocking(move || {
                if len > 0 {
                    backend.write_zeroes(offset, len, may_trim)?;
                }
                if fua {
                    backend.flush()?;
                }
                Ok(())
            })
            .await
        }
    };
    match result {
        Ok(()) => done(),
        Err(e) => io_error_reply(s, req.cookie, &e),
    }
}

/// A piece of a read: `len` bytes at `start` (relative to the request), data or known zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    start: u64,
    len: u64,
    zero: bool,
}

/// Splits a read of `len` bytes into data and zero segments following `extents` (from the
/// request's offset). Extents are clipped to the request; whatever they leave uncovered is data.
/// Adjacent segments of one kind are merged; a layout of more than [`MAX_READ_CHUNKS`] pieces
/// becomes one data segment.
fn plan_read(len: u64, extents: &[Extent]) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut covered = 0u64;
    let push =
        |segments: &mut Vec<Segment>, start: u64, n: u64, zero: bool| match segments.last_mut() {
            Some(last) if last.zero == zero => last.len += n,
            _ => segments.push(Segment {
                start,
                len: n,
                zero,
            }),
        };
    for e in extents {
        if covered == len {
            break;
        }
        let n = e.length.min(len - covered);
        if n == 0 {
            continue;
        }
        push(&mut segments, covered, n, e.status != BlockStatus::Data);
        covered += n;
    }
    if covered < len {
        push(&mut segments, covered, len - covered, false);
    }
    if segments.len() > MAX_READ_CHUNKS {
        return vec![Segment {
            start: 0,
            len,
            zero: false,
        }];
    }
    segments
}

async fn read(s: &Arc<Session>, req: &RequestHeader, df: bool) -> Reply {
    let cookie = req.cookie;
    if req.length == 0 {
        return if s.structured {
            vec![chunk_header(
                REPLY_FLAG_DONE,
                REPLY_TYPE_NONE,
                cookie,
                0,
                &[],
            )]
        } else {
            vec![simple_reply(0, cookie)]
        };
    }
    let backend = s.export.backend.clone();
    let (offset, len) = (req.offset, u64::from(req.length));
    // Holes are only worth finding when they can be sent as holes.
    let find_holes = s.structured && !df;
    let result = blocking(move || {
        let segments = if find_holes {
            match backend.block_status(offset, len) {
                Ok(extents) => plan_read(len, &extents),
                // Status is an optimisation; reading everything is always correct.
                Err(_) => vec![Segment {
                    start: 0,
                    len,
                    zero: false,
                }],
            }
        } else {
            vec![Segment {
                start: 0,
                len,
                zero: false,
            }]
        };
        let mut buf = vec![0u8; len as usize];
        for seg in segments.iter().filter(|seg| !seg.zero) {
            let range = seg.start as usize..(seg.start + seg.len) as usize;
            backend.read_at(&mut buf[range], offset + seg.start)?;
        }
        Ok((segments, Bytes::from(buf)))
    })
    .await;
    let (segments, data) = match result {
        Ok(r) => r,
        Err(e) => return io_error_reply(s, cookie, &e),
    };

    if !s.structured {
        return vec![simple_reply(0, cookie), data];
    }
    let mut reply = Vec::with_capacity(segments.len() * 2);
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        let flags = if i == last { REPLY_FLAG_DONE } else { 0 };
        let at = offset + seg.start;
        // Segment lengths are at most the request length, a u32.
        if seg.zero {
            let mut prefix = [0u8; 12];
            prefix[..8].copy_from_slice(&at.to_be_bytes());
            prefix[8..].copy_from_slice(&(seg.len as u32).to_be_bytes());
            reply.push(chunk_header(
                flags,
                REPLY_TYPE_OFFSET_HOLE,
                cookie,
                12,
                &prefix,
            ));
        } else {
            let payload_len = 8 + seg.len as u32;
            reply.push(chunk_header(
                flags,
                REPLY_TYPE_OFFSET_DATA,
                cookie,
                payload_len,
                &at.to_be_bytes(),
            ));
            reply.push(data.slice(seg.start as usize..(seg.start + seg.len) as usize));
        }
    }
    reply
}

/// `base:allocation` flags of a status.
fn allocation_flags(status: BlockStatus) -> u32 {
    match status {
        BlockStatus::Data => 0,
        BlockStatus::Zero => STATE_ZERO,
        BlockStatus::Unallocated => STATE_HOLE | STATE_ZERO,
    }
}

/// Block status descriptors `(length, flags)` for a request of `len` bytes: extents clipped to the
/// request, empty ones dropped, neighbours with equal flags merged, at most [`MAX_STATUS_EXTENTS`]
/// (one with `req_one`). Lengths fit in 32 bits because `len` does.
fn plan_status(len: u32, extents: &[Extent], req_one: bool) -> Vec<(u32, u32)> {
    let max = if req_one { 1 } else { MAX_STATUS_EXTENTS };
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut covered = 0u32;
    for e in extents {
        if covered == len {
            break;
        }
        let n = e.length.min(u64::from(len - covered)) as u32;
        if n == 0 {
            continue;
        }
        let flags = allocation_flags(e.status);
        if let Some(last) = out.last_mut().filter(|last| last.1 == flags) {
            last.0 += n;
        } else if out.len() == max {
            break;
        } else {
            out.push((n, flags));
        }
        covered += n;
    }
    out
}

async fn block_status(s: &Arc<Session>, req: &RequestHeader, req_one: bool) -> Reply {
    let backend = s.export.backend.clone();
    let (offset, len) = (
        req.offset,
        if req_one {
            req.length.min(REQ_ONE_SPAN)
        } else {
            req.length
        },
    );
    let extents = match blocking(move || backend.block_status(offset, u64::from(len))).await {
        Ok(extents) => extents,
        Err(e) => return io_error_reply(s, req.cookie, &e),
    };
    let descriptors = plan_status(len, &extents, req_one);
    if descriptors.is_empty() {
        tracing::warn!("backend returned no block status for a non-empty range");
        return error_reply(s, req.cookie, EIO, "block status unavailable");
    }
    let mut payload = BytesMut::with_capacity(4 + descriptors.len() * 8);
    payload.put_u32(BASE_ALLOCATION_ID);
    for (length, flags) in descriptors {
        payload.put_u32(length);
        payload.put_u32(flags);
    }
    vec![chunk_header(
        REPLY_FLAG_DONE,
        REPLY_TYPE_BLOCK_STATUS,
        req.cookie,
        payload.len() as u32,
        &payload,
    )]
}

/// Writes replies as they come, flushing whenever the queue runs dry; closes the write side when
/// every sender is gone.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Reply>,
) -> io::Result<()> {
    while let Some(reply) = rx.recv().await {
        for piece in reply {
            w.write_all(&piece).await?;
        }
        if rx.is_empty() {
            w.flush().await?;
        }
    }
    w.flush().await?;
    w.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::ExportBackend;

    struct Zeros;
    impl ExportBackend for Zeros {
        fn read_at(&self, buf: &mut [u8], _: u64) -> io::Result<()> {
            buf.fill(0);
            Ok(())
        }
    }

    fn session(read_only: bool, structured: bool, base_allocation: bool) -> Session {
        let export = Export {
            size: 1 << 20,
            read_only,
            description: None,
            backend: Arc::new(Zeros),
        };
        Session {
            export,
            structured,
            base_allocation,
            max_payload: 1 << 16,
        }
    }

    fn req(command: u16, flags: u16, offset: u64, length: u32) -> RequestHeader {
        RequestHeader {
            flags,
            command,
            cookie: 1,
            offset,
            length,
        }
    }

    fn ext(length: u64, status: BlockStatus) -> Extent {
        Extent { length, status }
    }

    #[test]
    fn validation_follows_the_spec() {
        let rw = session(false, true, true);
        let ro = session(true, false, false);
        let size = 1u64 << 20;
        assert_eq!(
            validate(&req(CMD_READ, 0, 0, 512), &rw),
            Ok(Op::Read { df: false })
        );
        assert_eq!(
            validate(&req(CMD_READ, CMD_FLAG_DF | CMD_FLAG_FUA, 0, 512), &rw),
            Ok(Op::Read { df: true })
        );
        // DF without structured replies, unknown flags, flags of another command.
        assert_eq!(
            validate(&req(CMD_READ, CMD_FLAG_DF, 0, 512), &ro)
                .unwrap_err()
                .0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_READ, 1 << 9, 0, 512), &rw).unwrap_err().0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_WRITE, CMD_FLAG_NO_HOLE, 0, 512), &rw)
                .unwrap_err()
                .0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_WRITE_ZEROES, CMD_FLAG_FAST_ZERO, 0, 512), &rw)
                .unwrap_err()
                .0,
            EINVAL
        );
        // Bounds: EINVAL for reads, ENOSPC for writes, overflow-safe.
        assert_eq!(
            validate(&req(CMD_READ, 0, size - 1, 2), &rw).unwrap_err().0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_READ, 0, u64::MAX, 2), &rw).unwrap_err().0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_READ, 0, size, 0), &rw),
            Ok(Op::Read { df: false })
        );
        assert_eq!(
            validate(&req(CMD_WRITE, 0, size - 1, 2), &rw)
                .unwrap_err()
                .0,
            ENOSPC
        );
        assert_eq!(
            validate(&req(CMD_WRITE_ZEROES, 0, u64::MAX, 1), &rw)
                .unwrap_err()
                .0,
            ENOSPC
        );
        assert_eq!(
            validate(&req(CMD_TRIM, 0, size, 1), &rw).unwrap_err().0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_CACHE, 0, size, 1), &rw).unwrap_err().0,
            EINVAL
        );
        // Size cap.
        assert_eq!(
            validate(&req(CMD_READ, 0, 0, (1 << 16) + 1), &rw)
                .unwrap_err()
                .0,
            EOVERFLOW
        );
        assert_eq!(
            validate(&req(CMD_READ, 0, 0, (1 << 16) + 1), &ro)
                .unwrap_err()
                .0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_WRITE, 0, 0, (1 << 16) + 1), &rw)
                .unwrap_err()
                .0,
            EINVAL
        );
        // Write-zeroes and trim have no payload, so no cap.
        assert!(validate(&req(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 0, 1 << 20), &rw).is_ok());
        // Read-only.
        for cmd in [CMD_WRITE, CMD_TRIM, CMD_WRITE_ZEROES] {
            assert_eq!(validate(&req(cmd, 0, 0, 512), &ro).unwrap_err().0, EPERM);
        }
        assert_eq!(validate(&req(CMD_FLUSH, 0, 0, 0), &ro), Ok(Op::Flush));
        assert_eq!(
            validate(&req(CMD_FLUSH, 0, 0, 1), &ro).unwrap_err().0,
            EINVAL
        );
        // Block status needs a negotiated context and a non-empty range.
        assert_eq!(
            validate(&req(CMD_BLOCK_STATUS, 0, 0, 512), &ro)
                .unwrap_err()
                .0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_BLOCK_STATUS, 0, 0, 0), &rw)
                .unwrap_err()
                .0,
            EINVAL
        );
        assert_eq!(
            validate(&req(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 0, 512), &rw),
            Ok(Op::BlockStatus { req_one: true })
        );
        // Unknown commands.
        assert_eq!(validate(&req(8, 0, 0, 0), &rw).unwrap_err().0, EINVAL);
        assert_eq!(validate(&req(0xffff, 0, 0, 0), &rw).unwrap_err().0, EINVAL);
    }

    #[test]
    fn read_plan_clips_merges_and_fills() {
        use BlockStatus::*;
        assert_eq!(
            plan_read(100, &[]),
            vec![Segment {
                start: 0,
                len: 100,
                zero: false
            }]
        );
        let plan = plan_read(
            100,
            &[
                ext(10, Data),
                ext(20, Zero),
                ext(20, Unallocated),
                ext(0, Data),
                ext(1000, Data),
            ],
        );
        assert_eq!(
            plan,
            vec![
                Segment {
                    start: 0,
                    len: 10,
                    zero: false
                },
                Segment {
                    start: 10,
                    len: 40,
                    zero: true
                },
                Segment {
                    start: 50,
                    len: 50,
                    zero: false
                },
            ]
        );
        // Short coverage: the rest is read as data.
        assert_eq!(
            plan_read(100, &[ext(60, Zero)]),
            vec![
                Segment {
                    start: 0,
                    len: 60,
                    zero: true
                },
                Segment {
                    start: 60,
                    len: 40,
                    zero: false
                }
            ]
        );
        // Fragmented layouts collapse to one read.
        let many: Vec<Extent> = (0..4000)
            .map(|i| ext(1, if i % 2 == 0 { Data } else { Zero }))
            .collect();
        assert_eq!(
            plan_read(4000, &many),
            vec![Segment {
                start: 0,
                len: 4000,
                zero: false
            }]
        );
    }

    #[test]
    fn status_plan_clips_merges_and_caps() {
        use BlockStatus::*;
        assert_eq!(plan_status(100, &[], false), vec![]);
        assert_eq!(
            plan_status(
                100,
                &[
                    ext(10, Data),
                    ext(10, Data),
                    ext(50, Unallocated),
                    ext(u64::MAX, Zero)
                ],
                false
            ),
            vec![(20, 0), (50, STATE_HOLE | STATE_ZERO), (30, STATE_ZERO)]
        );
        assert_eq!(
            plan_status(100, &[ext(10, Data), ext(10, Data), ext(50, Zero)], true),
            vec![(20, 0)]
        );
        assert_eq!(
            plan_status(5, &[ext(u64::MAX, Zero)], true),
            vec![(5, STATE_ZERO)]
        );
        let many: Vec<Extent> = (0..100_000)
            .map(|i| ext(1, if i % 2 == 0 { Data } else { Zero }))
            .collect();
        assert_eq!(
            plan_status(u32::MAX, &many, false).len(),
            MAX_STATUS_EXTENTS
        );
    }

    #[test]
    fn backend_errors_map_to_nbd_errors() {
        assert_eq!(
            errno(&io::Error::from(io::ErrorKind::PermissionDenied)),
            EPERM
        );
        assert_eq!(errno(&io::Error::from(io::ErrorKind::StorageFull)), ENOSPC);
        assert_eq!(errno(&io::Error::from(io::ErrorKind::InvalidData)), EIO);
        assert_eq!(errno(&io::Error::other("x")), EIO);
    }
}
