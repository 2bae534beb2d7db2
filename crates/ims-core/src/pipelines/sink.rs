//! A blocking [`std::io::Write`] whose bytes become an async stream, so that a format writer running on a
//! blocking thread feeds an upload without a staging file.

use std::io;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::jobs::JobContext;
use crate::{CoreError, Result};

/// Bytes handed to the stream at once.
const PIECE: usize = 1 << 20;
/// Pieces buffered between the writer and the upload.
const PIECES_IN_FLIGHT: usize = 8;

/// The writing end. Send it to a blocking thread; [`ChannelWriter::fail`] ends the stream with an error
/// so that the consumer never mistakes a failed write for a complete one.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes>>,
    buf: Vec<u8>,
    ctx: JobContext,
}

/// A connected writer and stream.
pub fn channel(ctx: JobContext) -> (ChannelWriter, BoxStream<'static, Result<Bytes>>) {
    let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed();
    (ChannelWriter { tx, buf: Vec::with_capacity(PIECE), ctx }, stream)
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.ctx.is_cancelled() {
            return Err(io::Error::other("the job was cancelled"));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx.blocking_send(Ok(piece)).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is buffered; the stream then ends when the writer is dropped.
    pub fn finish(mut self) -> io::Result<()> {
        self.send()
    }

    /// Ends the stream with `error` instead of its end.
    pub fn fail(self, error: CoreError) {
        let _ = self.tx.blocking_send(Err(error));
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PIECE - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == PIECE {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
