//! Streaming MCAP reading: records from a file one at a time (memory bounded by the largest
//! chunk), schemas and channels linked as they appear, and damage contained: a chunk that does
//! not decompress or parse is reported and skipped, and reading goes on with the next record;
//! a file that ends inside a record ends the stream with an error after everything before it.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcap::read::ChunkReader;
use mcap::records::Record;
use mcap::sans_io::{LinearReadEvent, LinearReader, LinearReaderOptions};

use super::BagError;

/// A channel of the bag with its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagChannel {
    /// Channel id in the file.
    pub id: u16,
    /// Topic name.
    pub topic: String,
    /// How messages are encoded (`cdr` for ROS 2).
    pub message_encoding: String,
    /// Schema name (`sensor_msgs/msg/Image`), empty when the channel has no schema.
    pub schema_name: String,
    /// Schema encoding (`ros2msg`).
    pub schema_encoding: String,
    /// Schema text.
    pub schema_text: String,
}

/// One message read from a bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BagMessage {
    /// Its channel.
    pub channel: Arc<BagChannel>,
    /// When the recorder received it, ns since the epoch.
    pub log_time_ns: u64,
    /// When it was published, ns since the epoch.
    pub publish_time_ns: u64,
    /// The encoded message.
    pub data: Vec<u8>,
}

/// Reads the messages of an MCAP file in file order (the order rosbag2 records them in).
/// `next` yields messages and non-fatal errors (a damaged chunk, a channel naming an unknown
/// schema); after a fatal one (a truncated file, a read error) it yields `None`.
pub struct BagReader<R> {
    source: R,
    path: PathBuf,
    linear: LinearReader,
    schemas: HashMap<u16, (String, String, String)>,
    channels: HashMap<u16, Arc<BagChannel>>,
    pending: VecDeque<Result<BagMessage, BagError>>,
    done: bool,
    messages: u64,
}

impl BagReader<std::io::BufReader<std::fs::File>> {
    /// Open a file.
    pub fn open(path: &Path) -> Result<Self, BagError> {
        let file = std::fs::File::open(path).map_err(|source| BagError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::new(
            std::io::BufReader::with_capacity(1 << 16, file),
            path,
        ))
    }
}

impl<R: Read> BagReader<R> {
    /// Read from `source`; `path` names it in errors.
    pub fn new(source: R, path: &Path) -> Self {
        Self {
            source,
            path: path.to_path_buf(),
            linear: LinearReader::new_with_options(
                LinearReaderOptions::default().with_emit_chunks(true),
            ),
            schemas: HashMap::new(),
            channels: HashMap::new(),
            pending: VecDeque::new(),
            done: false,
            messages: 0,
        }
    }

    /// Messages yielded so far.
    pub fn messages_read(&self) -> u64 {
        self.messages
    }

    /// Read until the next message or error is queued, or the file ends.
    fn fill(&mut self) {
        while self.pending.is_empty() && !self.done {
            let event = match self.linear.next_event() {
                None => {
                    self.done = true;
                    return;
                }
                Some(Err(e)) => {
                    self.done = true;
                    let err = match e {
                        mcap::McapError::UnexpectedEof => BagError::Truncated {
                            path: self.path.clone(),
                            messages: self.messages,
                        },
                        other => BagError::Mcap {
                            path: self.path.clone(),
                            what: other.to_string(),
                        },
                    };
                    self.pending.push_back(Err(err));
                    return;
                }
                Some(Ok(event)) => event,
            };
            match event {
                LinearReadEvent::ReadRequest(need) => {
                    let buf = self.linear.insert(need);
                    let read = loop {
                        match self.source.read(buf) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(source) => {
                                self.done = true;
                                self.pending.push_back(Err(BagError::Io {
                                    path: self.path.clone(),
                                    source,
                                }));
                                return;
                            }
                        }
                    };
                    self.linear.notify_read(read);
                }
                LinearReadEvent::Record { data, opcode } => {
                    let mut links = Links {
                        schemas: &mut self.schemas,
                        channels: &mut self.channels,
                        pending: &mut self.pending,
                    };
                    match mcap::parse_record(opcode, data) {
                        Ok(Record::Chunk { header, data }) => {
                            let before = links.pending.len();
                            let outcome = ChunkReader::new(header, &data).and_then(|records| {
                                for r in records {
                                    links.take(r?);
                                }
                                Ok(())
                            });
                            if let Err(e) = outcome {
                                let read = links.pending.len() - before;
                                links.pending.push_back(Err(BagError::DamagedChunk {
                                    what: e.to_string(),
                                    messages_kept: read as u64,
                                }));
                            }
                        }
                        Ok(record) => links.take(record),
                        Err(e) => links.pending.push_back(Err(BagError::Mcap {
                            path: self.path.clone(),
                            what: format!("record 0x{opcode:02x}: {e}"),
                        })),
                    }
                }
            }
        }
    }
}

/// The reader's schema and channel tables and its output queue, borrowed apart from the
/// linear reader that holds the record being read.
struct Links<'a> {
    schemas: &'a mut HashMap<u16, (String, String, String)>,
    channels: &'a mut HashMap<u16, Arc<BagChannel>>,
    pending: &'a mut VecDeque<Result<BagMessage, BagError>>,
}

impl Links<'_> {
    fn take(&mut self, record: Record<'_>) {
        match record {
            Record::Schema { header, data } => {
                let text = String::from_utf8_lossy(&data).into_owned();
                self.schemas
                    .insert(header.id, (header.name, header.encoding, text));
            }
            Record::Channel(c) => {
                let (schema_name, schema_encoding, schema_text) = match c.schema_id {
                    0 => Default::default(),
                    id => match self.schemas.get(&id) {
                        Some(s) => s.clone(),
                        None => {
                            self.pending.push_back(Err(BagError::BadSchema(format!(
                                "channel {} ({}) names schema {id}, which the bag does not define",
                                c.id, c.topic
                            ))));
                            Default::default()
                        }
                    },
                };
                self.channels.insert(
                    c.id,
                    Arc::new(BagChannel {
                        id: c.id,
                        topic: c.topic,
                        message_encoding: c.message_encoding,
                        schema_name,
                        schema_encoding,
                        schema_text,
                    }),
                );
            }
            Record::Message { header, data } => {
                let msg = match self.channels.get(&header.channel_id) {
                    Some(channel) => Ok(BagMessage {
                        channel: channel.clone(),
                        log_time_ns: header.log_time,
                        publish_time_ns: header.publish_time,
                        data: data.into_owned(),
                    }),
                    None => Err(BagError::BadSchema(format!(
                        "message on channel {}, which the bag does not define",
                        header.channel_id
                    ))),
                };
                self.pending.push_back(msg);
            }
            _ => {}
        }
    }
}

impl<R: Read> Iterator for BagReader<R> {
    type Item = Result<BagMessage, BagError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.fill();
        let item = self.pending.pop_front()?;
        if item.is_ok() {
            self.messages += 1;
        }
        Some(item)
    }
}
