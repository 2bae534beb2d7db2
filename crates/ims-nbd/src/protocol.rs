//! Wire constants and message layouts of the NBD protocol (`doc/proto.md` of NetworkBlockDevice/nbd).
//!
//! Everything here is pure: parsing never reads past the bytes it is given and encoding never fails.
//! All integers on the wire are big-endian.

use bytes::{BufMut, Bytes, BytesMut};

/// `NBDMAGIC`, the first 8 bytes the server sends.
pub const NBD_MAGIC: u64 = 0x4e42_444d_4147_4943;
/// `IHAVEOPT`: second word of the greeting, and the prefix of every client option.
pub const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
/// Prefix of every option reply.
pub const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
/// Prefix of every transmission request.
pub const REQUEST_MAGIC: u32 = 0x2560_9513;
/// Prefix of a simple reply.
pub const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
/// Prefix of a structured reply chunk.
pub const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

// Handshake flags (server, 16 bits).
/// The server speaks fixed newstyle.
pub const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
/// The server can omit the 124 zero bytes after `NBD_OPT_EXPORT_NAME`.
pub const FLAG_NO_ZEROES: u16 = 1 << 1;

// Client flags (32 bits).
/// The client speaks fixed newstyle.
pub const FLAG_C_FIXED_NEWSTYLE: u32 = 1 << 0;
/// The client asks the server to omit the 124 zero bytes.
pub const FLAG_C_NO_ZEROES: u32 = 1 << 1;

// Transmission flags (16 bits).
/// Always set.
pub const FLAG_HAS_FLAGS: u16 = 1 << 0;
/// Writes, trims and write-zeroes fail with `EPERM`.
pub const FLAG_READ_ONLY: u16 = 1 << 1;
/// `NBD_CMD_FLUSH` is understood.
pub const FLAG_SEND_FLUSH: u16 = 1 << 2;
/// `NBD_CMD_FLAG_FUA` is honoured.
pub const FLAG_SEND_FUA: u16 = 1 << 3;
/// `NBD_CMD_TRIM` is understood.
pub const FLAG_SEND_TRIM: u16 = 1 << 5;
/// `NBD_CMD_WRITE_ZEROES` and `NBD_CMD_FLAG_NO_HOLE` are understood.
pub const FLAG_SEND_WRITE_ZEROES: u16 = 1 << 6;
/// `NBD_CMD_FLAG_DF` is understood on reads (only with structured replies).
pub const FLAG_SEND_DF: u16 = 1 << 7;
/// Flushes are visible across all connections to the export.
pub const FLAG_CAN_MULTI_CONN: u16 = 1 << 8;
/// `NBD_CMD_CACHE` is understood.
pub const FLAG_SEND_CACHE: u16 = 1 << 10;

// Options.
/// Choose an export and enter transmission; cannot return errors.
pub const OPT_EXPORT_NAME: u32 = 1;
/// End negotiation.
pub const OPT_ABORT: u32 = 2;
/// List exports.
pub const OPT_LIST: u32 = 3;
/// Upgrade to TLS.
pub const OPT_STARTTLS: u32 = 5;
/// Describe an export.
pub const OPT_INFO: u32 = 6;
/// Describe an export and enter transmission.
pub const OPT_GO: u32 = 7;
/// Use structured replies during transmission.
pub const OPT_STRUCTURED_REPLY: u32 = 8;
/// List metadata contexts.
pub const OPT_LIST_META_CONTEXT: u32 = 9;
/// Select metadata contexts.
pub const OPT_SET_META_CONTEXT: u32 = 10;

// Option reply types.
/// Success / end of a list.
pub const REP_ACK: u32 = 1;
/// One export of `NBD_OPT_LIST`.
pub const REP_SERVER: u32 = 2;
/// One information item of `NBD_OPT_INFO`/`NBD_OPT_GO`.
pub const REP_INFO: u32 = 3;
/// One metadata context.
pub const REP_META_CONTEXT: u32 = 4;
const REP_ERR: u32 = 1 << 31;
/// The option is unknown to this server.
pub const REP_ERR_UNSUP: u32 = REP_ERR | 1;
/// The option is known but refused by policy.
pub const REP_ERR_POLICY: u32 = REP_ERR | 2;
/// The option is syntactically or semantically invalid.
pub const REP_ERR_INVALID: u32 = REP_ERR | 3;
/// The server requires TLS: the client must send `NBD_OPT_STARTTLS` first.
pub const REP_ERR_TLS_REQD: u32 = REP_ERR | 5;
/// The requested export is not available.
pub const REP_ERR_UNKNOWN: u32 = REP_ERR | 6;
/// The server is shutting down.
pub const REP_ERR_SHUTDOWN: u32 = REP_ERR | 7;
/// The request or its reply is too large.
pub const REP_ERR_TOO_BIG: u32 = REP_ERR | 9;

// Information types.
/// Size and transmission flags (mandatory before `NBD_REP_ACK`).
pub const INFO_EXPORT: u16 = 0;
/// Canonical export name.
pub const INFO_NAME: u16 = 1;
/// Human-readable description.
pub const INFO_DESCRIPTION: u16 = 2;
/// Minimum, preferred and maximum block sizes.
pub const INFO_BLOCK_SIZE: u16 = 3;

// Commands.
/// Read `length` bytes at `offset`.
pub const CMD_READ: u16 = 0;
/// Write the `length`-byte payload that follows the header at `offset`.
pub const CMD_WRITE: u16 = 1;
/// Disconnect once outstanding requests are answered; has no reply.
pub const CMD_DISC: u16 = 2;
/// Make completed writes durable.
pub const CMD_FLUSH: u16 = 3;
/// Discard a range (a hint).
pub const CMD_TRIM: u16 = 4;
/// Prefetch a range (a hint).
pub const CMD_CACHE: u16 = 5;
/// Make a range read as zeros.
pub const CMD_WRITE_ZEROES: u16 = 6;
/// Query the metadata contexts for a range.
pub const CMD_BLOCK_STATUS: u16 = 7;

// Command flags.
/// Force unit access: persist before replying.
pub const CMD_FLAG_FUA: u16 = 1 << 0;
/// Write-zeroes must not punch a hole.
pub const CMD_FLAG_NO_HOLE: u16 = 1 << 1;
/// Read in a single content chunk.
pub const CMD_FLAG_DF: u16 = 1 << 2;
/// Block status: one extent only.
pub const CMD_FLAG_REQ_ONE: u16 = 1 << 3;
/// Write-zeroes: fail fast unless cheap (not advertised by this server).
pub const CMD_FLAG_FAST_ZERO: u16 = 1 << 4;

// Structured reply flags and types.
/// Last chunk of a structured reply.
pub const REPLY_FLAG_DONE: u16 = 1 << 0;
/// Empty final chunk.
pub const REPLY_TYPE_NONE: u16 = 0;
/// Data at an offset.
pub const REPLY_TYPE_OFFSET_DATA: u16 = 1;
/// Zeros at an offset.
pub const REPLY_TYPE_OFFSET_HOLE: u16 = 2;
/// Block status descriptors for one metadata context.
pub const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
/// An error for the whole request.
pub const REPLY_TYPE_ERROR: u16 = (1 << 15) | 1;

// Errors of the transmission phase.
/// Operation not permitted (write to a read-only export).
pub const EPERM: u32 = 1;
/// Input/output error.
pub const EIO: u32 = 5;
/// Cannot allocate memory.
pub const ENOMEM: u32 = 12;
/// Invalid argument.
pub const EINVAL: u32 = 22;
/// No space left on device (write past the end).
pub const ENOSPC: u32 = 28;
/// Value too large (request larger than the server accepts).
pub const EOVERFLOW: u32 = 75;
/// Operation not supported.
pub const ENOTSUP: u32 = 95;
/// Server shutting down.
pub const ESHUTDOWN: u32 = 108;

// `base:allocation` status flags.
/// The extent is not allocated.
pub const STATE_HOLE: u32 = 1 << 0;
/// The extent reads as zeros.
pub const STATE_ZERO: u32 = 1 << 1;

/// The one metadata context this server offers.
pub const BASE_ALLOCATION: &str = "base:allocation";
/// The id this server gives `base:allocation` when a client selects it.
pub const BASE_ALLOCATION_ID: u32 = 1;

/// Longest string (export name, query, message) the protocol allows.
pub const MAX_STRING_LEN: usize = 4096;

/// Size of the server's greeting: magic, `IHAVEOPT`, handshake flags.
pub const GREETING_LEN: usize = 18;
/// Size of an option header: magic, option, length.
pub const OPTION_HEADER_LEN: usize = 16;
/// Size of a transmission request header.
pub const REQUEST_HEADER_LEN: usize = 28;

/// The server's first message.
pub fn greeting(handshake_flags: u16) -> [u8; GREETING_LEN] {
    let mut out = [0u8; GREETING_LEN];
    out[0..8].copy_from_slice(&NBD_MAGIC.to_be_bytes());
    out[8..16].copy_from_slice(&IHAVEOPT.to_be_bytes());
    out[16..18].copy_from_slice(&handshake_flags.to_be_bytes());
    out
}

/// The header of one client option. Parsing checks the magic only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionHeader {
    /// The option number (`NBD_OPT_*`).
    pub option: u32,
    /// Length of the data that follows.
    pub length: u32,
}

impl OptionHeader {
    /// Parses a header; `None` when the magic is not `IHAVEOPT`.
    pub fn parse(buf: &[u8; OPTION_HEADER_LEN]) -> Option<OptionHeader> {
        let mut r = WireReader::new(buf);
        if r.u64()? != IHAVEOPT {
            return None;
        }
        Some(OptionHeader {
            option: r.u32()?,
            length: r.u32()?,
        })
    }

    /// Encodes a header (used by test clients).
    pub fn encode(&self) -> [u8; OPTION_HEADER_LEN] {
        let mut out = [0u8; OPTION_HEADER_LEN];
        out[0..8].copy_from_slice(&IHAVEOPT.to_be_bytes());
        out[8..12].copy_from_slice(&self.option.to_be_bytes());
        out[12..16].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// One option reply: header and payload in one buffer.
pub fn option_reply(option: u32, reply_type: u32, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(20 + payload.len());
    out.put_u64(OPTION_REPLY_MAGIC);
    out.put_u32(option);
    out.put_u32(reply_type);
    // Payloads are built by the server from bounded pieces; they always fit in 32 bits.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// A transmission request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// Command flags (`NBD_CMD_FLAG_*`).
    pub flags: u16,
    /// Command type (`NBD_CMD_*`), possibly unknown.
    pub command: u16,
    /// Opaque value echoed in the reply.
    pub cookie: u64,
    /// Byte offset into the export.
    pub offset: u64,
    /// Length of the range (and of the payload, for writes).
    pub length: u32,
}

impl RequestHeader {
    /// Parses a header; `None` when the magic is not `NBD_REQUEST_MAGIC`.
    pub fn parse(buf: &[u8; REQUEST_HEADER_LEN]) -> Option<RequestHeader> {
        let mut r = WireReader::new(buf);
        if r.u32()? != REQUEST_MAGIC {
            return None;
        }
        Some(RequestHeader {
            flags: r.u16()?,
            command: r.u16()?,
            cookie: r.u64()?,
            offset: r.u64()?,
            length: r.u32()?,
        })
    }

    /// Encodes a header (used by test clients).
    pub fn encode(&self) -> [u8; REQUEST_HEADER_LEN] {
        let mut out = [0u8; REQUEST_HEADER_LEN];
        out[0..4].copy_from_slice(&REQUEST_MAGIC.to_be_bytes());
        out[4..6].copy_from_slice(&self.flags.to_be_bytes());
        out[6..8].copy_from_slice(&self.command.to_be_bytes());
        out[8..16].copy_from_slice(&self.cookie.to_be_bytes());
        out[16..24].copy_from_slice(&self.offset.to_be_bytes());
        out[24..28].copy_from_slice(&self.length.to_be_bytes());
        out
    }
}

/// A simple reply header (the read payload, if any, follows separately).
pub fn simple_reply(error: u32, cookie: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(16);
    out.put_u32(SIMPLE_REPLY_MAGIC);
    out.put_u32(error);
    out.put_u64(cookie);
    out.freeze()
}

/// A structured reply chunk header followed by the fixed part of its payload (`prefix`).
///
/// `payload_len` is the length of the whole payload, `prefix` included; the rest of the payload
/// (read data) is sent separately so it is never copied.
pub fn chunk_header(
    flags: u16,
    chunk_type: u16,
    cookie: u64,
    payload_len: u32,
    prefix: &[u8],
) -> Bytes {
    let mut out = BytesMut::with_capacity(20 + prefix.len());
    out.put_u32(STRUCTURED_REPLY_MAGIC);
    out.put_u16(flags);
    out.put_u16(chunk_type);
    out.put_u64(cookie);
    out.put_u32(payload_len);
    out.put_slice(prefix);
    out.freeze()
}

/// A complete `NBD_REPLY_TYPE_ERROR` chunk with the `DONE` flag.
pub fn error_chunk(cookie: u64, error: u32, message: &str) -> Bytes {
    let message = truncate_str(message, MAX_STRING_LEN);
    let mut prefix = BytesMut::with_capacity(6 + message.len());
    prefix.put_u32(error);
    prefix.put_u16(message.len() as u16);
    prefix.put_slice(message.as_bytes());
    chunk_header(
        REPLY_FLAG_DONE,
        REPLY_TYPE_ERROR,
        cookie,
        prefix.len() as u32,
        &prefix,
    )
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Checks a protocol string (export name, query): UTF-8, no NUL, at most [`MAX_STRING_LEN`] bytes.
pub fn parse_string(bytes: &[u8]) -> Option<&str> {
    if bytes.len() > MAX_STRING_LEN || bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// A bounds-checked big-endian cursor over untrusted bytes. Every read returns `None` rather than
/// reading past the end.
#[derive(Debug)]
pub struct WireReader<'a> {
    buf: &'a [u8],
}

impl<'a> WireReader<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> WireReader<'a> {
        WireReader { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    /// The next big-endian u16.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.bytes(2)?.try_into().ok()?))
    }

    /// The next big-endian u32.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }

    /// The next big-endian u64.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.bytes(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_round_trips() {
        let h = RequestHeader {
            flags: 5,
            command: CMD_WRITE,
            cookie: 0xdead_beef,
            offset: 1 << 40,
            length: 4096,
        };
        assert_eq!(RequestHeader::parse(&h.encode()), Some(h));
    }

    #[test]
    fn request_header_rejects_bad_magic() {
        let mut raw = RequestHeader {
            flags: 0,
            command: 0,
            cookie: 0,
            offset: 0,
            length: 0,
        }
        .encode();
        raw[0] ^= 1;
        assert_eq!(RequestHeader::parse(&raw), None);
    }

    #[test]
    fn option_header_round_trips_and_rejects_bad_magic() {
        let h = OptionHeader {
            option: OPT_GO,
            length: 77,
        };
        assert_eq!(OptionHeader::parse(&h.encode()), Some(h));
        let mut raw = h.encode();
        raw[7] = 0;
        assert_eq!(OptionHeader::parse(&raw), None);
    }

    #[test]
    fn wire_reader_never_reads_past_the_end() {
        let mut r = WireReader::new(&[0, 1, 2]);
        assert_eq!(r.u16(), Some(1));
        assert_eq!(r.u16(), None);
        assert_eq!(r.remaining(), 1);
        assert_eq!(r.bytes(2), None);
        assert_eq!(r.bytes(1), Some(&[2u8][..]));
        assert_eq!(r.u64(), None);
    }

    #[test]
    fn strings_are_checked() {
        assert_eq!(parse_string(b"abc"), Some("abc"));
        assert_eq!(parse_string(b""), Some(""));
        assert_eq!(parse_string(b"a\0b"), None);
        assert_eq!(parse_string(&[0xff, 0xfe]), None);
        assert_eq!(parse_string(&vec![b'a'; MAX_STRING_LEN + 1]), None);
        assert!(parse_string(&vec![b'a'; MAX_STRING_LEN]).is_some());
    }

    #[test]
    fn error_chunk_layout() {
        let c = error_chunk(7, EINVAL, "bad");
        assert_eq!(c.len(), 20 + 6 + 3);
        assert_eq!(&c[0..4], &STRUCTURED_REPLY_MAGIC.to_be_bytes());
        assert_eq!(&c[4..6], &REPLY_FLAG_DONE.to_be_bytes());
        assert_eq!(&c[6..8], &REPLY_TYPE_ERROR.to_be_bytes());
        assert_eq!(&c[16..20], &9u32.to_be_bytes());
        assert_eq!(&c[20..24], &EINVAL.to_be_bytes());
        assert_eq!(&c[24..26], &3u16.to_be_bytes());
        assert_eq!(&c[26..], b"bad");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_str("héllo", 2), "h");
        assert_eq!(truncate_str("héllo", 3), "hé");
        assert_eq!(truncate_str("abc", 10), "abc");
    }
}
