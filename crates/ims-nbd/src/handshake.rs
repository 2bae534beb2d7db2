//! The fixed newstyle handshake: greeting, client flags, then option haggling until the client
//! picks an export (`NBD_OPT_GO` / `NBD_OPT_EXPORT_NAME`) or leaves.
//!
//! With TLS configured the server is in the protocol's FORCEDTLS mode: before `NBD_OPT_STARTTLS`
//! every option but `NBD_OPT_ABORT` is refused with `NBD_REP_ERR_TLS_REQD` (and
//! `NBD_OPT_EXPORT_NAME`, which has no error reply, closes the connection); after it, haggling
//! starts afresh on the encrypted stream.
//!
//! Every option is answered (errors included) except where the protocol leaves no way to answer,
//! in which case the connection is closed: a bad magic, unknown client flags, an unknown export in
//! `NBD_OPT_EXPORT_NAME`, or an option too long to be anything but abuse.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf,
};

use crate::export::{Export, ExportRegistry};
use crate::protocol::*;
use crate::server::ServerConfig;
use crate::tls::{BoxedTransport, TlsUpgrade};
use crate::NbdError;

/// The buffered reading side of a connection.
pub(crate) type Reader = BufReader<ReadHalf<BoxedTransport>>;
/// The buffered writing side of a connection.
pub(crate) type Writer = BufWriter<WriteHalf<BoxedTransport>>;

fn buffered(stream: BoxedTransport) -> (Reader, Writer) {
    let (r, w) = tokio::io::split(stream);
    (
        BufReader::with_capacity(64 << 10, r),
        BufWriter::with_capacity(256 << 10, w),
    )
}

/// Option data longer than this is not read into memory. Large enough for any real option: an
/// export name and a few metadata queries are each at most 4 KiB.
pub(crate) const MAX_OPTION_LEN: u32 = 64 * 1024;
/// Overlong option data up to this size is skipped and answered with `NBD_REP_ERR_TOO_BIG`;
/// beyond it the client is abusive and the connection is closed.
const MAX_DISCARDED_OPTION_LEN: u32 = 1 << 20;
/// Options accepted per connection before the server gives up on the client.
const MAX_OPTIONS: u32 = 1024;
/// Preferred block size advertised in `NBD_INFO_BLOCK_SIZE`.
pub(crate) const PREFERRED_BLOCK_SIZE: u32 = 4096;

/// What the handshake settled, carried into transmission.
pub(crate) struct Negotiated {
    pub export: Export,
    /// Structured replies were negotiated.
    pub structured: bool,
    /// `base:allocation` was selected for this export's name.
    pub base_allocation: bool,
}

/// Metadata contexts selected by the last `NBD_OPT_SET_META_CONTEXT`, for one export name.
struct MetaSelection {
    export_name: String,
    base_allocation: bool,
}

/// Where the connection stands on TLS.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum TlsState {
    /// The server has no TLS: `NBD_OPT_STARTTLS` is unsupported.
    #[default]
    Unavailable,
    /// The server requires TLS and the client has not started it yet.
    Required,
    /// The connection is encrypted.
    Established,
}

#[derive(Default)]
struct State {
    no_zeroes: bool,
    tls: TlsState,
    structured: bool,
    meta: Option<MetaSelection>,
}

impl State {
    fn base_allocation_for(&self, name: &str) -> bool {
        self.meta
            .as_ref()
            .is_some_and(|m| m.base_allocation && m.export_name == name)
    }
}

/// The transmission flags of `export` for a client that did (or did not) negotiate structured
/// replies. The same inputs always give the same flags, as `NBD_OPT_INFO` then `NBD_OPT_GO` requires.
pub(crate) fn transmission_flags(export: &Export, structured: bool) -> u16 {
    let mut flags = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_CACHE;
    if export.read_only {
        // Nothing changes, so every connection sees the same bytes.
        flags |= FLAG_READ_ONLY | FLAG_CAN_MULTI_CONN;
    } else {
        flags |= FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
    }
    if structured {
        flags |= FLAG_SEND_DF;
    }
    flags
}

/// What one option led to.
enum Step {
    /// Haggling goes on.
    Continue,
    /// The client entered transmission (`Some`) or left cleanly (`None`).
    Finished(Option<Negotiated>),
    /// `NBD_OPT_STARTTLS` was acknowledged: the connection must be upgraded now.
    StartTls,
}

/// Runs the handshake on a fresh connection; with `tls`, the client must upgrade the connection
/// first. Returns the buffered connection (encrypted if TLS was negotiated) and what was settled,
/// or `Ok(None)` when the client ended it cleanly (`NBD_OPT_ABORT` or hanging up between options).
pub(crate) async fn negotiate(
    stream: BoxedTransport,
    registry: &dyn ExportRegistry,
    config: &ServerConfig,
    tls: Option<&dyn TlsUpgrade>,
) -> Result<Option<(Reader, Writer, Negotiated)>, NbdError> {
    let (mut r, mut w) = buffered(stream);
    w.write_all(&greeting(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        .await?;
    w.flush().await?;

    let client_flags = r.read_u32().await?;
    if client_flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
        return Err(NbdError::Protocol("unknown client flags"));
    }
    // A client without FLAG_C_FIXED_NEWSTYLE is still answered in fixed newstyle (the spec allows
    // it): such a client only ever sends NBD_OPT_EXPORT_NAME, which has no reply header anyway.
    let mut state = State {
        no_zeroes: client_flags & FLAG_C_NO_ZEROES != 0,
        tls: if tls.is_some() {
            TlsState::Required
        } else {
            TlsState::Unavailable
        },
        ..State::default()
    };

    for _ in 0..MAX_OPTIONS {
        match (
            option(&mut r, &mut w, &mut state, registry, config).await?,
            tls,
        ) {
            (Step::Continue, _) => {}
            (Step::Finished(None), _) => return Ok(None),
            (Step::Finished(Some(negotiated)), _) => return Ok(Some((r, w, negotiated))),
            (Step::StartTls, Some(tls)) => {
                // The client must wait for the ACK before its TLS hello: anything already buffered
                // was sent in the clear out of turn.
                if !r.buffer().is_empty() {
                    return Err(NbdError::Protocol("data sent before the TLS handshake"));
                }
                let stream = r.into_inner().unsplit(w.into_inner());
                let stream = tls.upgrade(stream).await.map_err(NbdError::Tls)?;
                (r, w) = buffered(stream);
                // Nothing negotiated in the clear carries over.
                state = State {
                    no_zeroes: state.no_zeroes,
                    tls: TlsState::Established,
                    ..State::default()
                };
            }
            (Step::StartTls, None) => {
                return Err(NbdError::Protocol("TLS started without TLS configured"))
            }
        }
    }
    Err(NbdError::Protocol("too many options"))
}

/// Reads one option and answers it.
async fn option(
    r: &mut Reader,
    w: &mut Writer,
    state: &mut State,
    registry: &dyn ExportRegistry,
    config: &ServerConfig,
) -> Result<Step, NbdError> {
    let mut header = [0u8; OPTION_HEADER_LEN];
    if !read_or_eof(r, &mut header).await? {
        return Ok(Step::Finished(None));
    }
    let opt = OptionHeader::parse(&header).ok_or(NbdError::Protocol("bad option magic"))?;

    if opt.length > MAX_OPTION_LEN {
        if opt.option == OPT_EXPORT_NAME || opt.length > MAX_DISCARDED_OPTION_LEN {
            return Err(NbdError::Protocol("option data too long"));
        }
        discard(r, u64::from(opt.length)).await?;
        send(
            w,
            &[reply_error(
                opt.option,
                REP_ERR_TOO_BIG,
                "option data too long",
            )],
        )
        .await?;
        return Ok(Step::Continue);
    }
    let mut data = vec![0u8; opt.length as usize];
    r.read_exact(&mut data).await?;

    if state.tls == TlsState::Required && !matches!(opt.option, OPT_STARTTLS | OPT_ABORT) {
        if opt.option == OPT_EXPORT_NAME {
            return Err(NbdError::Protocol("NBD_OPT_EXPORT_NAME before TLS"));
        }
        let message = "TLS is required: send NBD_OPT_STARTTLS first";
        send(w, &[reply_error(opt.option, REP_ERR_TLS_REQD, message)]).await?;
        return Ok(Step::Continue);
    }

    match opt.option {
        OPT_EXPORT_NAME => {
            let negotiated = export_name(w, &data, state, registry).await?;
            return Ok(Step::Finished(Some(negotiated)));
        }
        OPT_ABORT => {
            // The client may already have closed its end; the reply is a courtesy.
            let _ = send(w, &[option_reply(OPT_ABORT, REP_ACK, &[])]).await;
            return Ok(Step::Finished(None));
        }
        OPT_INFO | OPT_GO => {
            let go = opt.option == OPT_GO;
            let (replies, export) = info_or_go(opt.option, &data, state, registry, config).await;
            send(w, &replies).await?;
            if let (true, Some((name, export))) = (go, export) {
                let base_allocation = state.base_allocation_for(&name);
                return Ok(Step::Finished(Some(Negotiated {
                    export,
                    structured: state.structured,
                    base_allocation,
                })));
            }
        }
        OPT_LIST => {
            let replies = if data.is_empty() {
                list(registry)
            } else {
                vec![reply_error(
                    OPT_LIST,
                    REP_ERR_INVALID,
                    "NBD_OPT_LIST takes no data",
                )]
            };
            send(w, &replies).await?;
        }
        OPT_STARTTLS => {
            let reply = match (data.is_empty(), state.tls) {
                (false, _) => reply_error(
                    OPT_STARTTLS,
                    REP_ERR_INVALID,
                    "NBD_OPT_STARTTLS takes no data",
                ),
                (true, TlsState::Unavailable) => reply_error(
                    OPT_STARTTLS,
                    REP_ERR_UNSUP,
                    "TLS is not configured on this server",
                ),
                (true, TlsState::Established) => {
                    reply_error(OPT_STARTTLS, REP_ERR_INVALID, "TLS is already in use")
                }
                (true, TlsState::Required) => {
                    send(w, &[option_reply(OPT_STARTTLS, REP_ACK, &[])]).await?;
                    return Ok(Step::StartTls);
                }
            };
            send(w, &[reply]).await?;
        }
        OPT_STRUCTURED_REPLY => {
            let reply = if data.is_empty() {
                state.structured = true;
                option_reply(OPT_STRUCTURED_REPLY, REP_ACK, &[])
            } else {
                reply_error(
                    OPT_STRUCTURED_REPLY,
                    REP_ERR_INVALID,
                    "NBD_OPT_STRUCTURED_REPLY takes no data",
                )
            };
            send(w, &[reply]).await?;
        }
        OPT_SET_META_CONTEXT => {
            let replies = set_meta_context(&data, state);
            send(w, &replies).await?;
        }
        OPT_LIST_META_CONTEXT => {
            let replies = list_meta_context(&data, state);
            send(w, &replies).await?;
        }
        other => {
            send(
                w,
                &[reply_error(other, REP_ERR_UNSUP, "option not supported")],
            )
            .await?;
        }
    }
    Ok(Step::Continue)
}

/// Fills `buf`, or returns `false` if the peer closed the connection before sending any of it.
pub(crate) async fn read_or_eof<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> Result<bool, NbdError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(false);
            }
            return Err(NbdError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
    }
    Ok(true)
}

/// Reads and drops `len` bytes.
pub(crate) async fn discard<R: AsyncRead + Unpin>(r: &mut R, len: u64) -> Result<(), NbdError> {
    let copied = tokio::io::copy(&mut r.take(len), &mut tokio::io::sink()).await?;
    if copied < len {
        return Err(NbdError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(())
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, replies: &[Bytes]) -> Result<(), NbdError> {
    for reply in replies {
        w.write_all(reply).await?;
    }
    w.flush().await?;
    Ok(())
}

/// An error reply whose payload is a message for a human.
fn reply_error(option: u32, reply_type: u32, message: &str) -> Bytes {
    option_reply(
        option,
        reply_type,
        truncate_str(message, MAX_STRING_LEN).as_bytes(),
    )
}

async fn resolve(registry: &dyn ExportRegistry, name: &str) -> Option<Export> {
    match registry.resolve(name).await {
        Ok(export) => export,
        Err(e) => {
            // The name is a secret: log the failure, never the name.
            tracing::warn!(error = %e, "export lookup failed");
            None
        }
    }
}

/// `NBD_OPT_EXPORT_NAME`: no error reply exists, so an unknown export closes the connection.
async fn export_name<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    state: &State,
    registry: &dyn ExportRegistry,
) -> Result<Negotiated, NbdError> {
    let name = parse_string(data).ok_or(NbdError::Protocol("invalid export name"))?;
    let export = resolve(registry, name)
        .await
        .ok_or(NbdError::Protocol("unknown export"))?;
    let mut reply = BytesMut::with_capacity(10 + 124);
    reply.put_u64(export.size);
    reply.put_u16(transmission_flags(&export, state.structured));
    if !state.no_zeroes {
        reply.put_bytes(0, 124);
    }
    send(w, &[reply.freeze()]).await?;
    Ok(Negotiated {
        base_allocation: state.base_allocation_for(name),
        export,
        structured: state.structured,
    })
}

/// `NBD_OPT_INFO` / `NBD_OPT_GO`: the replies to send, and the export (with its name) on success.
async fn info_or_go(
    option: u32,
    data: &[u8],
    state: &State,
    registry: &dyn ExportRegistry,
    config: &ServerConfig,
) -> (Vec<Bytes>, Option<(String, Export)>) {
    let Some((name, requests)) = parse_info_request(data) else {
        return (
            vec![reply_error(option, REP_ERR_INVALID, "malformed request")],
            None,
        );
    };
    let Some(name) = parse_string(name) else {
        return (
            vec![reply_error(option, REP_ERR_INVALID, "invalid export name")],
            None,
        );
    };
    let Some(export) = resolve(registry, name).await else {
        return (
            vec![reply_error(option, REP_ERR_UNKNOWN, "unknown export")],
            None,
        );
    };

    let mut replies = Vec::with_capacity(5);
    let mut info = BytesMut::with_capacity(12);
    info.put_u16(INFO_EXPORT);
    info.put_u64(export.size);
    info.put_u16(transmission_flags(&export, state.structured));
    replies.push(option_reply(option, REP_INFO, &info));
    // Each item once, whatever the client asked (it must not repeat, but may).
    let wants = |t: u16| requests.contains(&t);
    if wants(INFO_NAME) {
        replies.push(option_reply(
            option,
            REP_INFO,
            &info_string(INFO_NAME, name),
        ));
    }
    if let (true, Some(description)) = (wants(INFO_DESCRIPTION), &export.description) {
        replies.push(option_reply(
            option,
            REP_INFO,
            &info_string(INFO_DESCRIPTION, description),
        ));
    }
    if wants(INFO_BLOCK_SIZE) {
        let mut b = BytesMut::with_capacity(14);
        b.put_u16(INFO_BLOCK_SIZE);
        b.put_u32(1);
        b.put_u32(PREFERRED_BLOCK_SIZE);
        b.put_u32(config.max_payload);
        replies.push(option_reply(option, REP_INFO, &b));
    }
    replies.push(option_reply(option, REP_ACK, &[]));
    (replies, Some((name.to_owned(), export)))
}

fn info_string(info_type: u16, s: &str) -> BytesMut {
    let s = truncate_str(s, MAX_STRING_LEN);
    let mut b = BytesMut::with_capacity(2 + s.len());
    b.put_u16(info_type);
    b.put_slice(s.as_bytes());
    b
}

/// Splits `NBD_OPT_INFO`/`NBD_OPT_GO` data into the raw name and the information requests.
/// `None` unless the lengths add up exactly.
fn parse_info_request(data: &[u8]) -> Option<(&[u8], Vec<u16>)> {
    let mut r = WireReader::new(data);
    let name_len = usize::try_from(r.u32()?).ok()?;
    let name = r.bytes(name_len)?;
    let count = usize::from(r.u16()?);
    if r.remaining() != count * 2 {
        return None;
    }
    let requests = (0..count).map(|_| r.u16()).collect::<Option<Vec<u16>>>()?;
    Some((name, requests))
}

/// Splits `NBD_OPT_{LIST,SET}_META_CONTEXT` data into the export name and the queries.
/// `None` unless the lengths add up exactly and every string is valid.
fn parse_meta_request(data: &[u8]) -> Option<(&str, Vec<&str>)> {
    let mut r = WireReader::new(data);
    let name_len = usize::try_from(r.u32()?).ok()?;
    let name = parse_string(r.bytes(name_len)?)?;
    let count = r.u32()?;
    // Each query takes at least 4 bytes, so the count cannot exceed what the data holds.
    let mut queries = Vec::with_capacity((count as usize).min(r.remaining() / 4));
    for _ in 0..count {
        let len = usize::try_from(r.u32()?).ok()?;
        queries.push(parse_string(r.bytes(len)?)?);
    }
    if r.remaining() != 0 {
        return None;
    }
    Some((name, queries))
}

fn meta_context_reply(option: u32, id: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + BASE_ALLOCATION.len());
    b.put_u32(id);
    b.put_slice(BASE_ALLOCATION.as_bytes());
    option_reply(option, REP_META_CONTEXT, &b)
}

/// `NBD_OPT_SET_META_CONTEXT`: replaces the selection (even when it fails). Only the exact query
/// `base:allocation` selects anything; other queries are ignored as the spec requires.
fn set_meta_context(data: &[u8], state: &mut State) -> Vec<Bytes> {
    const OPT: u32 = OPT_SET_META_CONTEXT;
    state.meta = None;
    if !state.structured {
        return vec![reply_error(
            OPT,
            REP_ERR_INVALID,
            "structured replies must be negotiated first",
        )];
    }
    let Some((name, queries)) = parse_meta_request(data) else {
        return vec![reply_error(OPT, REP_ERR_INVALID, "malformed request")];
    };
    let base_allocation = queries.contains(&BASE_ALLOCATION);
    state.meta = Some(MetaSelection {
        export_name: name.to_owned(),
        base_allocation,
    });
    let mut replies = Vec::with_capacity(2);
    if base_allocation {
        replies.push(meta_context_reply(OPT, BASE_ALLOCATION_ID));
    }
    replies.push(option_reply(OPT, REP_ACK, &[]));
    replies
}

/// `NBD_OPT_LIST_META_CONTEXT`: `base:allocation` matches no query, `base:` or `base:allocation`.
fn list_meta_context(data: &[u8], state: &State) -> Vec<Bytes> {
    const OPT: u32 = OPT_LIST_META_CONTEXT;
    if !state.structured {
        return vec![reply_error(
            OPT,
            REP_ERR_INVALID,
            "structured replies must be negotiated first",
        )];
    }
    let Some((_name, queries)) = parse_meta_request(data) else {
        return vec![reply_error(OPT, REP_ERR_INVALID, "malformed request")];
    };
    let matches = queries.is_empty()
        || queries
            .iter()
            .any(|q| *q == "base:" || *q == BASE_ALLOCATION);
    let mut replies = Vec::with_capacity(2);
    if matches {
        // Context ids in list replies are reserved and should be zero.
        replies.push(meta_context_reply(OPT, 0));
    }
    replies.push(option_reply(OPT, REP_ACK, &[]));
    replies
}

/// `NBD_OPT_LIST`: the names the registry chooses to publish (by default none).
fn list(registry: &dyn ExportRegistry) -> Vec<Bytes> {
    let mut replies = Vec::new();
    for name in registry.list() {
        if parse_string(name.as_bytes()).is_none() {
            continue;
        }
        let mut b = BytesMut::with_capacity(4 + name.len());
        b.put_u32(name.len() as u32);
        b.put_slice(name.as_bytes());
        replies.push(option_reply(OPT_LIST, REP_SERVER, &b));
    }
    replies.push(option_reply(OPT_LIST, REP_ACK, &[]));
    replies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info_data(name: &[u8], requests: &[u16]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name);
        d.extend_from_slice(&(requests.len() as u16).to_be_bytes());
        for r in requests {
            d.extend_from_slice(&r.to_be_bytes());
        }
        d
    }

    fn meta_data(name: &[u8], queries: &[&[u8]]) -> Vec<u8> {
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name);
        d.extend_from_slice(&(queries.len() as u32).to_be_bytes());
        for q in queries {
            d.extend_from_slice(&(q.len() as u32).to_be_bytes());
            d.extend_from_slice(q);
        }
        d
    }

    #[test]
    fn info_request_parses_exactly() {
        let d = info_data(b"disk", &[INFO_NAME, INFO_BLOCK_SIZE]);
        assert_eq!(
            parse_info_request(&d),
            Some((&b"disk"[..], vec![INFO_NAME, INFO_BLOCK_SIZE]))
        );
        // Truncated anywhere, or with trailing bytes: refused.
        for cut in 0..d.len() {
            assert_eq!(parse_info_request(&d[..cut]), None, "cut at {cut}");
        }
        let mut long = d.clone();
        long.push(0);
        assert_eq!(parse_info_request(&long), None);
        // A name length pointing far past the data.
        let mut huge = d.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_info_request(&huge), None);
    }

    #[test]
    fn meta_request_parses_exactly() {
        let d = meta_data(b"disk", &[b"base:allocation", b"qemu:dirty-bitmap:x"]);
        assert_eq!(
            parse_meta_request(&d),
            Some(("disk", vec!["base:allocation", "qemu:dirty-bitmap:x"]))
        );
        for cut in 0..d.len() {
            assert_eq!(parse_meta_request(&d[..cut]), None, "cut at {cut}");
        }
        // A query count far larger than the data: refused without allocating for it.
        let mut d = meta_data(b"", &[]);
        d[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(parse_meta_request(&d), None);
        // NUL in a query.
        assert_eq!(parse_meta_request(&meta_data(b"x", &[b"base:\0"])), None);
    }

    #[test]
    fn set_meta_context_requires_structured_replies_and_clears_on_failure() {
        let mut state = State {
            meta: Some(MetaSelection {
                export_name: "x".into(),
                base_allocation: true,
            }),
            ..State::default()
        };
        let replies = set_meta_context(&meta_data(b"x", &[b"base:allocation"]), &mut state);
        assert_eq!(&replies[0][12..16], &REP_ERR_INVALID.to_be_bytes());
        assert!(state.meta.is_none());

        state.structured = true;
        let replies = set_meta_context(
            &meta_data(b"x", &[b"base:allocation", b"base:allocation"]),
            &mut state,
        );
        assert_eq!(replies.len(), 2);
        assert_eq!(&replies[0][12..16], &REP_META_CONTEXT.to_be_bytes());
        assert!(state.base_allocation_for("x"));
        assert!(!state.base_allocation_for("y"));

        // Unknown namespaces and `base:` select nothing but succeed.
        let replies = set_meta_context(&meta_data(b"x", &[b"base:", b"nope:thing"]), &mut state);
        assert_eq!(replies.len(), 1);
        assert_eq!(&replies[0][12..16], &REP_ACK.to_be_bytes());
        assert!(!state.base_allocation_for("x"));
    }

    #[test]
    fn transmission_flags_follow_the_export() {
        use crate::export::{Export, ExportBackend};
        use std::sync::Arc;
        struct Z;
        impl ExportBackend for Z {
            fn read_at(&self, buf: &mut [u8], _: u64) -> std::io::Result<()> {
                buf.fill(0);
                Ok(())
            }
        }
        let ro = Export::read_only(Arc::new(Z), 1);
        let rw = Export::read_write(Arc::new(Z), 1);
        let f = transmission_flags(&ro, false);
        assert_eq!(
            f & (FLAG_HAS_FLAGS | FLAG_READ_ONLY),
            FLAG_HAS_FLAGS | FLAG_READ_ONLY
        );
        assert_eq!(
            f & (FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES | FLAG_SEND_FUA | FLAG_SEND_DF),
            0
        );
        let f = transmission_flags(&rw, true);
        assert_eq!(f & FLAG_READ_ONLY, 0);
        assert_ne!(f & FLAG_SEND_WRITE_ZEROES, 0);
        assert_ne!(f & FLAG_SEND_DF, 0);
        assert_eq!(f & FLAG_CAN_MULTI_CONN, 0);
    }
}
