//! Source and sink traits of the runtime, with in-process channel and JSON-lines transports.

use std::future::Future;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::types::{CueInput, Frame, Record};
use crate::{Error, Result};

/// Where frames come from. `None` ends the run; an `Err` is counted and reported, and the run
/// goes on.
pub trait FrameSource: Send + 'static {
    /// The next frame.
    fn next_frame(&mut self) -> impl Future<Output = Option<Result<Frame>>> + Send;
}

/// Where cues come from. `None` means no more cues (the run goes on with frames only); an `Err`
/// (an unreadable message) is counted as a rejected cue.
pub trait CueSource: Send + 'static {
    /// The next cue message.
    fn next_cue(&mut self) -> impl Future<Output = Option<Result<CueInput>>> + Send;
}

/// Where records go. An error stops the run.
pub trait ResultSink: Send {
    /// Deliver one record.
    fn send(&mut self, record: &Record) -> impl Future<Output = Result<()>> + Send;
    /// Flush buffered records (end of run).
    fn flush(&mut self) -> impl Future<Output = Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

/// Frames from an in-process channel.
#[derive(Debug)]
pub struct ChannelFrameSource(pub mpsc::Receiver<Result<Frame>>);

impl ChannelFrameSource {
    /// A source and the sender that feeds it (`cap` frames may wait in the channel).
    pub fn new(cap: usize) -> (mpsc::Sender<Result<Frame>>, Self) {
        let (tx, rx) = mpsc::channel(cap.max(1));
        (tx, Self(rx))
    }
}

impl FrameSource for ChannelFrameSource {
    async fn next_frame(&mut self) -> Option<Result<Frame>> {
        self.0.recv().await
    }
}

/// Cues from an in-process channel.
#[derive(Debug)]
pub struct ChannelCueSource(pub mpsc::Receiver<Result<CueInput>>);

impl ChannelCueSource {
    /// A source and the sender that feeds it.
    pub fn new(cap: usize) -> (mpsc::Sender<Result<CueInput>>, Self) {
        let (tx, rx) = mpsc::channel(cap.max(1));
        (tx, Self(rx))
    }
}

impl CueSource for ChannelCueSource {
    async fn next_cue(&mut self) -> Option<Result<CueInput>> {
        self.0.recv().await
    }
}

/// No cues at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoCues;

impl CueSource for NoCues {
    async fn next_cue(&mut self) -> Option<Result<CueInput>> {
        None
    }
}

/// Records into an in-process channel (waits when the channel is full).
#[derive(Debug)]
pub struct ChannelSink(pub mpsc::Sender<Record>);

impl ChannelSink {
    /// A sink and the receiver that drains it.
    pub fn new(cap: usize) -> (Self, mpsc::Receiver<Record>) {
        let (tx, rx) = mpsc::channel(cap.max(1));
        (Self(tx), rx)
    }
}

impl ResultSink for ChannelSink {
    async fn send(&mut self, record: &Record) -> Result<()> {
        self.0
            .send(record.clone())
            .await
            .map_err(|_| Error::Runtime("result channel closed by its receiver".into()))
    }
}

/// Records to two sinks in turn (e.g. JSON lines and a recorded bag).
#[derive(Debug)]
pub struct TeeSink<A, B>(pub A, pub B);

impl<A: ResultSink, B: ResultSink> ResultSink for TeeSink<A, B> {
    async fn send(&mut self, record: &Record) -> Result<()> {
        self.0.send(record).await?;
        self.1.send(record).await
    }

    async fn flush(&mut self) -> Result<()> {
        let a = self.0.flush().await;
        let b = self.1.flush().await;
        a.and(b)
    }
}

/// Longest cue line read, in bytes. A longer line (a sender that never writes a newline)
/// is skipped up to its newline and reported as one refused cue, so reading a line never
/// holds more than this.
pub const MAX_CUE_LINE_BYTES: usize = 4096;

/// Cue messages as JSON lines (`{"class":"cat","score":0.9,"source":"audio"}`) from any
/// buffered reader, e.g. stdin. A line that is not JSON is taken as a bare class name with
/// score 1; blank lines are skipped; lines longer than [`MAX_CUE_LINE_BYTES`] and lines that
/// are not UTF-8 are refused.
#[derive(Debug)]
pub struct JsonLinesCueSource<R> {
    reader: R,
    line: Vec<u8>,
    line_no: u64,
    name: String,
}

impl<R: AsyncBufRead + Unpin + Send + 'static> JsonLinesCueSource<R> {
    /// Read cues from `reader`; `name` (e.g. "stdin") appears in error messages and is the
    /// default source of the cues.
    pub fn new(reader: R, name: impl Into<String>) -> Self {
        Self {
            reader,
            line: Vec::new(),
            line_no: 0,
            name: name.into(),
        }
    }

    /// Read the next line into `self.line` (without its newline). `Ok(None)` at the end;
    /// `Ok(Some(false))` when the line was longer than the limit (its bytes are dropped).
    async fn read_line(&mut self) -> std::io::Result<Option<bool>> {
        self.line.clear();
        let (mut any, mut fits) = (false, true);
        loop {
            let avail = self.reader.fill_buf().await?;
            if avail.is_empty() {
                return Ok(any.then_some(fits));
            }
            any = true;
            let newline = avail.iter().position(|&b| b == b'\n');
            let part = &avail[..newline.unwrap_or(avail.len())];
            if fits && self.line.len() + part.len() <= MAX_CUE_LINE_BYTES {
                self.line.extend_from_slice(part);
            } else {
                fits = false;
                self.line.clear();
            }
            let used = newline.map_or(avail.len(), |i| i + 1);
            self.reader.consume(used);
            if newline.is_some() {
                return Ok(Some(fits));
            }
        }
    }
}

/// Cues from the process's standard input.
pub fn stdin_cues() -> JsonLinesCueSource<tokio::io::BufReader<tokio::io::Stdin>> {
    JsonLinesCueSource::new(tokio::io::BufReader::new(tokio::io::stdin()), "stdin")
}

impl<R: AsyncBufRead + Unpin + Send + 'static> CueSource for JsonLinesCueSource<R> {
    async fn next_cue(&mut self) -> Option<Result<CueInput>> {
        loop {
            let fits = match self.read_line().await {
                Ok(Some(fits)) => fits,
                Ok(None) => return None,
                Err(e) => {
                    return Some(Err(Error::Io {
                        path: self.name.clone().into(),
                        source: e,
                    }))
                }
            };
            self.line_no += 1;
            let bad = |what: &str| {
                Some(Err(Error::BadInput(format!(
                    "{} line {}: {what}",
                    self.name, self.line_no
                ))))
            };
            if !fits {
                return bad(&format!("longer than {MAX_CUE_LINE_BYTES} bytes: skipped"));
            }
            let Ok(line) = std::str::from_utf8(&self.line) else {
                return bad("not UTF-8 text");
            };
            let text = line.trim();
            if text.is_empty() {
                continue;
            }
            if !text.starts_with('{') {
                return Some(Ok(CueInput {
                    class: text.to_string(),
                    score: 1.0,
                    source: self.name.clone(),
                }));
            }
            return Some(
                serde_json::from_str::<CueInput>(text)
                    .map(|mut c| {
                        if c.source.is_empty() {
                            c.source = self.name.clone();
                        }
                        c
                    })
                    .map_err(|e| {
                        Error::BadInput(format!(
                            "{} line {}: {e}: expected {{\"class\": name, \"score\": 0..1, \"source\": text}} or a class name",
                            self.name, self.line_no
                        ))
                    }),
            );
        }
    }
}

/// Records as JSON lines to any writer (stdout, a file). Each line is flushed at once when
/// `flush_each` is set (live use), else only at the end.
#[derive(Debug)]
pub struct JsonLinesSink<W> {
    out: W,
    flush_each: bool,
    name: String,
}

impl<W: AsyncWrite + Unpin + Send> JsonLinesSink<W> {
    /// Write to `out`; `name` appears in error messages.
    pub fn new(out: W, name: impl Into<String>, flush_each: bool) -> Self {
        Self {
            out,
            flush_each,
            name: name.into(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.name.clone().into(),
            source: e,
        }
    }
}

/// Records to standard output, one flushed line each.
pub fn stdout_sink() -> JsonLinesSink<tokio::io::Stdout> {
    JsonLinesSink::new(tokio::io::stdout(), "stdout", true)
}

impl<W: AsyncWrite + Unpin + Send> ResultSink for JsonLinesSink<W> {
    async fn send(&mut self, record: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::Runtime(format!("serialising a record: {e}")))?;
        line.push(b'\n');
        if let Err(e) = self.out.write_all(&line).await {
            return Err(self.io(e));
        }
        if self.flush_each {
            if let Err(e) = self.out.flush().await {
                return Err(self.io(e));
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        match self.out.flush().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::types::DroppedFrame;

    #[tokio::test]
    async fn json_lines_cues_parse_bare_names_and_report_bad_lines() {
        let text = "{\"class\":\"cat\",\"score\":0.5}\n\n dog \n{\"class\":1}\n{\"class\":\"x\",\"extra\":2}\n";
        let mut src = JsonLinesCueSource::new(text.as_bytes(), "test");
        let a = src.next_cue().await.unwrap().unwrap();
        assert_eq!(
            (a.class.as_str(), a.score, a.source.as_str()),
            ("cat", 0.5, "test")
        );
        let b = src.next_cue().await.unwrap().unwrap();
        assert_eq!((b.class.as_str(), b.score), ("dog", 1.0));
        let e = src.next_cue().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("test line 4") && e.contains("expected"), "{e}");
        assert!(
            src.next_cue().await.unwrap().is_err(),
            "unknown field refused"
        );
        assert!(src.next_cue().await.is_none());
    }

    #[tokio::test]
    async fn an_endless_line_is_refused_and_the_next_line_still_read() {
        // A sender that never writes a newline used to grow the line without limit.
        let mut text = vec![b'x'; 10 * MAX_CUE_LINE_BYTES];
        text.extend_from_slice(b"\ncat\n\xff\xfe\n");
        text.extend(std::iter::repeat_n(b'y', MAX_CUE_LINE_BYTES + 1));
        // A tiny read buffer makes the long line arrive in many pieces.
        let reader = tokio::io::BufReader::with_capacity(7, std::io::Cursor::new(text));
        let mut src = JsonLinesCueSource::new(reader, "pipe");
        let e = src.next_cue().await.unwrap().unwrap_err().to_string();
        assert!(
            e.contains("pipe line 1") && e.contains("longer than 4096"),
            "{e}"
        );
        assert!(src.line.capacity() <= 2 * MAX_CUE_LINE_BYTES);
        assert_eq!(src.next_cue().await.unwrap().unwrap().class, "cat");
        let e = src.next_cue().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("UTF-8"), "{e}");
        let e = src.next_cue().await.unwrap().unwrap_err().to_string();
        assert!(e.contains("line 4") && e.contains("longer"), "{e}");
        assert!(src.next_cue().await.is_none());
        // A line of exactly the limit is read.
        let mut exact = vec![b'z'; MAX_CUE_LINE_BYTES];
        exact.push(b'\n');
        let mut src = JsonLinesCueSource::new(std::io::Cursor::new(exact), "pipe");
        assert_eq!(
            src.next_cue().await.unwrap().unwrap().class.len(),
            MAX_CUE_LINE_BYTES
        );
    }

    #[tokio::test]
    async fn json_lines_sink_writes_one_record_per_line() {
        let mut sink = JsonLinesSink::new(Vec::new(), "mem", false);
        for id in 0..2 {
            let r = Record::Dropped(DroppedFrame {
                id,
                stamp_ns: 0,
                time_ms: 0,
            });
            sink.send(&r).await.unwrap();
        }
        sink.flush().await.unwrap();
        let out = String::from_utf8(sink.into_inner()).unwrap();
        assert_eq!(out.lines().count(), 2);
        assert!(out
            .lines()
            .all(|l| serde_json::from_str::<Record>(l).is_ok()));
    }
}
