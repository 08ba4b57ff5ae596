//! A minimal DNS stub reader for the simulators' domain-control validation: one question (TXT or
//! CNAME, class IN) sent over UDP, retried over TCP when the answer comes back truncated, and the
//! answer section read by hand.
//!
//! It is written from RFC 1035 (sections 4.1 and 4.2) on purpose and shares nothing with the
//! client's DNS code in `crate::dns` (nor with hickory): a simulator that checked records with
//! the client's own encoder and parser would let one encoding bug pass on both sides.
//!
//! Every read is bounds-checked and every loop bounded, so a malformed or hostile packet is an
//! error, never a panic. Errors are sentences for the simulator's messages. No EDNS, no DNSSEC,
//! no recursion of its own: the configured server answers.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use super::random::Rng;

/// `TYPE` value of a CNAME record (RFC 1035 3.2.2).
pub(crate) const TYPE_CNAME: u16 = 5;
/// `TYPE` value of a TXT record (RFC 1035 3.2.2).
pub(crate) const TYPE_TXT: u16 = 16;
/// `CLASS` value of the Internet (RFC 1035 3.2.4).
const CLASS_IN: u16 = 1;

const HEADER_LEN: usize = 12;
/// Largest label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;
/// Largest name on the wire, length octets and the root included (RFC 1035 2.3.4).
const MAX_NAME_WIRE: usize = 255;
/// Compression pointers followed while reading one name: a legal name has fewer than 128
/// labels, so more jumps than that can only be a loop.
const MAX_POINTERS: usize = 127;
/// Datagrams from the server that are not the answer (wrong id, not a response) skipped before
/// giving up.
const MAX_STRAY_DATAGRAMS: usize = 16;

/// Header flag bits (RFC 1035 4.1.1).
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;

/// `RCODE` of a successful answer.
pub(crate) const RCODE_NOERROR: u8 = 0;
/// `RCODE` of an answer saying the name does not exist.
pub(crate) const RCODE_NXDOMAIN: u8 = 3;

/// The data of one answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// The character-strings of a TXT record, in order.
    Txt(Vec<Vec<u8>>),
    /// The target of a CNAME record, without the trailing dot.
    Cname(String),
    /// A record of another type, its RDATA not read.
    Other,
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// Owner name, without the trailing dot, case as sent.
    pub(crate) owner: String,
    pub(crate) record_type: u16,
    pub(crate) class: u16,
    pub(crate) ttl: u32,
    pub(crate) data: Data,
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) rcode: u8,
    /// `TC`: the answer did not fit; the answer section is not read then.
    pub(crate) truncated: bool,
    pub(crate) answers: Vec<Record>,
}

/// The TXT values at `name` (each record's strings joined), following CNAMEs the server put in
/// the same answer. A name that does not exist has no values.
pub(crate) async fn lookup_txt(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let response = lookup(server, name, TYPE_TXT, timeout).await?;
    Ok(txt_values(name, &response.answers))
}

/// The TXT values at `name` among `answers`, following the CNAME chain in order; records at
/// other names or in another class are ignored.
fn txt_values(name: &str, answers: &[Record]) -> Vec<String> {
    let mut owners = vec![trim_root(name).to_string()];
    let mut values = Vec::new();
    for record in answers {
        if record.class != CLASS_IN || !owners.iter().any(|owner| same_name(owner, &record.owner)) {
            continue;
        }
        match &record.data {
            Data::Cname(target) => owners.push(target.clone()),
            Data::Txt(strings) => {
                let joined: Vec<u8> = strings.concat();
                values.push(String::from_utf8_lossy(&joined).into_owned());
            }
            Data::Other => {}
        }
    }
    values
}

/// The CNAME target at `name` (without the trailing dot), `None` when there is none.
pub(crate) async fn lookup_cname(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Option<String>, String> {
    let response = lookup(server, name, TYPE_CNAME, timeout).await?;
    Ok(cname_target(name, &response.answers))
}

/// The target of the CNAME at `name` among `answers`.
fn cname_target(name: &str, answers: &[Record]) -> Option<String> {
    answers.iter().find_map(|record| match &record.data {
        Data::Cname(target) if record.class == CLASS_IN && same_name(name, &record.owner) => {
            Some(target.clone())
        }
        _ => None,
    })
}

/// Asks `server` for `name` `record_type` within `timeout` (UDP, then TCP if truncated). Only
/// NOERROR and NXDOMAIN answers are returned; any other RCODE is an error.
pub(crate) async fn lookup(
    server: SocketAddr,
    name: &str,
    record_type: u16,
    timeout: Duration,
) -> Result<Response, String> {
    let id = (Rng::from_entropy().next_u64() & 0xffff) as u16;
    let query = encode_query(id, name, record_type)?;
    let exchange = async {
        let response = exchange_udp(server, &query, id, name, record_type).await?;
        if response.truncated {
            let response = exchange_tcp(server, &query, id, name, record_type).await?;
            if response.truncated {
                return Err(format!(
                    "the answer from `{server}` for `{name}` is truncated over TCP"
                ));
            }
            return Ok(response);
        }
        Ok(response)
    };
    let response = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from `{server}` for `{name}` within {timeout:?}"))??;
    match response.rcode {
        RCODE_NOERROR | RCODE_NXDOMAIN => Ok(response),
        code => Err(format!(
            "`{server}` answered {} to the query for `{name}`",
            rcode_name(code)
        )),
    }
}

async fn exchange_udp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    record_type: u16,
) -> Result<Response, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|error| format!("cannot open a UDP socket: {error}"))?;
    // Connected: the kernel drops datagrams from any other address.
    socket
        .connect(server)
        .await
        .map_err(|error| format!("cannot reach `{server}` over UDP: {error}"))?;
    socket
        .send(query)
        .await
        .map_err(|error| format!("cannot send the query to `{server}`: {error}"))?;
    let mut buffer = vec![0u8; 65_535];
    for _ in 0..MAX_STRAY_DATAGRAMS {
        let len = socket
            .recv(&mut buffer)
            .await
            .map_err(|error| format!("cannot read the answer from `{server}`: {error}"))?;
        let packet = buffer.get(..len).unwrap_or_default();
        if !answers_id(packet, id) {
            continue;
        }
        return parse_response(packet, id, name, record_type)
            .map_err(|error| format!("the answer from `{server}` is malformed: {error}"));
    }
    Err(format!(
        "`{server}` sent no answer to the query for `{name}`"
    ))
}

async fn exchange_tcp(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    name: &str,
    record_type: u16,
) -> Result<Response, String> {
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(|error| format!("cannot connect to `{server}` over TCP: {error}"))?;
    // RFC 1035 4.2.2: each message is preceded by its length in two octets.
    let len = u16::try_from(query.len()).map_err(|_| "the query is too long".to_string())?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream
        .write_all(&framed)
        .await
        .map_err(|error| format!("cannot send the query to `{server}` over TCP: {error}"))?;
    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|error| format!("cannot read the answer from `{server}` over TCP: {error}"))?;
    let mut packet = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
    stream
        .read_exact(&mut packet)
        .await
        .map_err(|error| format!("cannot read the answer from `{server}` over TCP: {error}"))?;
    if !answers_id(&packet, id) {
        return Err(format!(
            "`{server}` answered over TCP with another message than the answer to the query"
        ));
    }
    parse_response(&packet, id, name, record_type)
        .map_err(|error| format!("the answer from `{server}` is malformed: {error}"))
}

/// Whether `packet` starts like the response to query `id`.
fn answers_id(packet: &[u8], id: u16) -> bool {
    match (packet.first(), packet.get(1), packet.get(2)) {
        (Some(&high), Some(&low), Some(&flags)) => {
            u16::from_be_bytes([high, low]) == id && flags & 0x80 != 0
        }
        _ => false,
    }
}

/// A standard query (RFC 1035 4.1): header with `id`, RD set and one question; `name` `qtype`
/// class IN. `name` is dotted text with an optional trailing dot.
pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut message = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&FLAG_RD.to_be_bytes());
    for count in [1u16, 0, 0, 0] {
        message.extend_from_slice(&count.to_be_bytes());
    }
    message.extend_from_slice(&encode_name(name)?);
    message.extend_from_slice(&qtype.to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(message)
}

/// `name` as a sequence of length-prefixed labels ending with the root's zero octet.
fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let trimmed = trim_root(name);
    let mut wire = Vec::with_capacity(trimmed.len() + 2);
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() {
                return Err(format!("the name `{name}` has an empty label"));
            }
            if label.len() > MAX_LABEL {
                return Err(format!(
                    "the name `{name}` has a label longer than {MAX_LABEL} octets"
                ));
            }
            if !label
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && byte != b'\\')
            {
                return Err(format!(
                    "the name `{name}` has a character that is not printable ASCII"
                ));
            }
            // Cannot truncate: the label is at most 63 octets.
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
    }
    wire.push(0);
    if wire.len() > MAX_NAME_WIRE {
        return Err(format!(
            "the name `{name}` is longer than {MAX_NAME_WIRE} octets"
        ));
    }
    Ok(wire)
}

/// Reads the response to query `id` for `name` `qtype`: the header must carry the same id, QR,
/// the standard opcode; the question (if echoed) must be the one asked. When TC is set the
/// answer section is left unread.
pub(crate) fn parse_response(
    packet: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<Response, String> {
    let mut reader = Reader::new(packet);
    let answer_id = reader.u16()?;
    let flags = reader.u16()?;
    let question_count = reader.u16()?;
    let answer_count = reader.u16()?;
    let _authority_count = reader.u16()?;
    let _additional_count = reader.u16()?;
    if answer_id != id {
        return Err(format!("id {answer_id} does not match the query's {id}"));
    }
    if flags & FLAG_QR == 0 {
        return Err("the message is a query, not a response".to_string());
    }
    if flags & OPCODE_MASK != 0 {
        return Err(format!("unexpected opcode {}", (flags & OPCODE_MASK) >> 11));
    }
    let rcode = (flags & RCODE_MASK) as u8;
    let truncated = flags & FLAG_TC != 0;
    match question_count {
        1 => {
            let asked = reader.name()?;
            let asked_type = reader.u16()?;
            let asked_class = reader.u16()?;
            if !same_name(&asked, trim_root(name)) || asked_type != qtype || asked_class != CLASS_IN
            {
                return Err(format!(
                    "the question `{asked}` type {asked_type} class {asked_class} is not the one asked"
                ));
            }
        }
        // Some servers do not echo the question of a query they refuse.
        0 if rcode != RCODE_NOERROR => {}
        count => return Err(format!("{count} questions in the response")),
    }
    if truncated {
        return Ok(Response {
            rcode,
            truncated,
            answers: Vec::new(),
        });
    }
    // Each record takes at least 11 octets, so the packet bounds this loop as well as the count.
    let mut answers = Vec::new();
    for _ in 0..answer_count {
        answers.push(reader.record()?);
    }
    Ok(Response {
        rcode,
        truncated,
        answers,
    })
}

/// A cursor over a message; every read checks the bounds.
struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(packet: &'a [u8]) -> Self {
        Self { packet, pos: 0 }
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.packet.len())
            .ok_or_else(|| format!("the message ends inside a field at octet {}", self.pos))?;
        let slice = self.packet.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(slice)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let bytes = self.bytes(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.bytes(4)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A domain name at the cursor (RFC 1035 4.1.4), following compression pointers; the cursor
    /// moves past the name as it sits here (past the first pointer, if any).
    fn name(&mut self) -> Result<String, String> {
        let (name, next) = read_name(self.packet, self.pos)?;
        self.pos = next;
        Ok(name)
    }

    /// One resource record (RFC 1035 4.1.3).
    fn record(&mut self) -> Result<Record, String> {
        let owner = self.name()?;
        let record_type = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let rdata = self.bytes(len)?;
        let data = match record_type {
            TYPE_TXT => Data::Txt(character_strings(rdata)?),
            TYPE_CNAME => {
                let (target, next) = read_name(self.packet, start)?;
                if next != self.pos {
                    return Err(format!(
                        "the CNAME of `{owner}` does not fill its RDATA of {len} octets"
                    ));
                }
                Data::Cname(target)
            }
            _ => Data::Other,
        };
        Ok(Record {
            owner,
            record_type,
            class,
            ttl,
            data,
        })
    }
}

/// The name starting at `start`, and the offset just past it there.
fn read_name(packet: &[u8], start: usize) -> Result<(String, usize), String> {
    let mut labels: Vec<String> = Vec::new();
    let mut pos = start;
    let mut after: Option<usize> = None;
    let mut wire_len = 1; // the root's zero octet
    let mut jumps = 0;
    loop {
        let len = *packet
            .get(pos)
            .ok_or_else(|| format!("a name runs past the end of the message at octet {pos}"))?;
        match len & 0xc0 {
            0xc0 => {
                let low = *packet
                    .get(pos + 1)
                    .ok_or_else(|| format!("a compression pointer is cut off at octet {pos}"))?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                // RFC 1035 4.1.4: a pointer refers to a prior occurrence; forward or self
                // pointers can only be loops or garbage.
                if target >= pos {
                    return Err(format!(
                        "the compression pointer at octet {pos} does not point backwards"
                    ));
                }
                jumps += 1;
                if jumps > MAX_POINTERS {
                    return Err(format!(
                        "a name follows more than {MAX_POINTERS} compression pointers"
                    ));
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            0x00 if len == 0 => {
                let next = after.unwrap_or(pos + 1);
                return Ok((labels.join("."), next));
            }
            0x00 => {
                let len = usize::from(len);
                let label = packet.get(pos + 1..pos + 1 + len).ok_or_else(|| {
                    format!("a label runs past the end of the message at octet {pos}")
                })?;
                wire_len += len + 1;
                if wire_len > MAX_NAME_WIRE {
                    return Err(format!("a name is longer than {MAX_NAME_WIRE} octets"));
                }
                labels.push(label_text(label));
                pos += 1 + len;
            }
            _ => {
                return Err(format!(
                    "unsupported label type {:#04x} at octet {pos}",
                    len & 0xc0
                ))
            }
        }
    }
}

/// A label as presentation text: printable ASCII as is, anything else (and `.` or `\`) as
/// `\DDD`.
fn label_text(label: &[u8]) -> String {
    let mut text = String::with_capacity(label.len());
    for &byte in label {
        if byte.is_ascii_graphic() && byte != b'.' && byte != b'\\' {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("\\{byte:03}"));
        }
    }
    text
}

/// The `<character-string>`s of a TXT RDATA (RFC 1035 3.3.14): one or more, each a length octet
/// and that many octets.
fn character_strings(rdata: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if rdata.is_empty() {
        return Err("a TXT record has no character-string".to_string());
    }
    let mut strings = Vec::new();
    let mut pos = 0;
    while let Some(&len) = rdata.get(pos) {
        let len = usize::from(len);
        let string = rdata
            .get(pos + 1..pos + 1 + len)
            .ok_or_else(|| "a TXT character-string runs past its RDATA".to_string())?;
        strings.push(string.to_vec());
        pos += 1 + len;
    }
    Ok(strings)
}

fn trim_root(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Names compare without regard to ASCII case (RFC 4343).
fn same_name(a: &str, b: &str) -> bool {
    trim_root(a).eq_ignore_ascii_case(trim_root(b))
}

fn rcode_name(code: u8) -> String {
    match code {
        1 => "FORMERR".to_string(),
        2 => "SERVFAIL".to_string(),
        4 => "NOTIMP".to_string(),
        5 => "REFUSED".to_string(),
        other => format!("RCODE {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header of a response to id 0xBEEF: QR, RD, RA, `rcode`, one question, `answers`
    /// answers, no authority or additional records.
    fn header(flags: u16, answers: u16) -> Vec<u8> {
        let mut bytes = vec![0xbe, 0xef];
        bytes.extend_from_slice(&flags.to_be_bytes());
        bytes.extend_from_slice(&[0, 1]);
        bytes.extend_from_slice(&answers.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]);
        bytes
    }

    /// `_dnsauth.example.com` as labels: starts at octet 12 of a message.
    const QNAME: &[u8] = b"\x08_dnsauth\x07example\x03com\x00";

    fn question(qtype: u16) -> Vec<u8> {
        let mut bytes = QNAME.to_vec();
        bytes.extend_from_slice(&qtype.to_be_bytes());
        bytes.extend_from_slice(&[0, 1]);
        bytes
    }

    /// TYPE, CLASS IN, TTL 300 and RDLENGTH of a record.
    fn fixed(record_type: u16, rdlength: u16) -> Vec<u8> {
        let mut bytes = record_type.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 1, 0, 0, 0x01, 0x2c]);
        bytes.extend_from_slice(&rdlength.to_be_bytes());
        bytes
    }

    const RESPONSE_FLAGS: u16 = 0x8180; // QR, RD, RA, NOERROR

    /// A TXT answer with two records, the first of two character-strings, owners compressed to
    /// the question's name.
    fn txt_response() -> Vec<u8> {
        let mut bytes = header(RESPONSE_FLAGS, 2);
        bytes.extend(question(TYPE_TXT));
        bytes.extend_from_slice(&[0xc0, 0x0c]);
        bytes.extend(fixed(TYPE_TXT, 12));
        bytes.extend_from_slice(b"\x05hello\x05world");
        bytes.extend_from_slice(&[0xc0, 0x0c]);
        bytes.extend(fixed(TYPE_TXT, 6));
        bytes.extend_from_slice(b"\x05token");
        bytes
    }

    #[test]
    fn encodes_a_query_as_rfc_1035_lays_it_out() {
        let query = encode_query(0xbeef, "_dnsauth.Example.com.", TYPE_TXT).unwrap();
        let expected: &[u8] = &[
            0xbe, 0xef, // ID
            0x01, 0x00, // QR=0 OPCODE=0 AA=0 TC=0 RD=1 RA=0 Z=0 RCODE=0
            0x00, 0x01, // QDCOUNT
            0x00, 0x00, // ANCOUNT
            0x00, 0x00, // NSCOUNT
            0x00, 0x00, // ARCOUNT
            8, b'_', b'd', b'n', b's', b'a', b'u', b't', b'h', //
            7, b'E', b'x', b'a', b'm', b'p', b'l', b'e', //
            3, b'c', b'o', b'm', //
            0,    // root
            0x00, 0x10, // QTYPE TXT
            0x00, 0x01, // QCLASS IN
        ];
        assert_eq!(query, expected);
        let cname = encode_query(1, "a.b", TYPE_CNAME).unwrap();
        assert_eq!(
            cname,
            [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 1, b'b', 0, 0, 5, 0, 1]
        );
    }

    #[test]
    fn refuses_names_that_cannot_be_encoded() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = vec!["abcdefghi"; 26].join(".");
        for name in ["a..b", ".a", &long_label, &long_name, "sp ace.com", "é.com"] {
            assert!(encode_query(1, name, TYPE_TXT).is_err(), "{name}");
        }
        // 63-octet labels and a 253-character name are the limits.
        let max_label = format!("{}.com", "a".repeat(63));
        assert!(encode_query(1, &max_label, TYPE_TXT).is_ok());
        let max_name = format!("{}.{}", vec!["a".repeat(63); 3].join("."), "a".repeat(61));
        assert_eq!(max_name.len(), 253);
        assert!(encode_query(1, &max_name, TYPE_TXT).is_ok());
        assert!(encode_query(1, &format!("{max_name}a"), TYPE_TXT).is_err());
    }

    #[test]
    fn reads_txt_records_with_several_strings_and_compressed_owners() {
        let response =
            parse_response(&txt_response(), 0xbeef, "_dnsauth.example.com", TYPE_TXT).unwrap();
        assert_eq!(response.rcode, RCODE_NOERROR);
        assert!(!response.truncated);
        assert_eq!(
            response.answers,
            vec![
                Record {
                    owner: "_dnsauth.example.com".into(),
                    record_type: TYPE_TXT,
                    class: CLASS_IN,
                    ttl: 300,
                    data: Data::Txt(vec![b"hello".to_vec(), b"world".to_vec()]),
                },
                Record {
                    owner: "_dnsauth.example.com".into(),
                    record_type: TYPE_TXT,
                    class: CLASS_IN,
                    ttl: 300,
                    data: Data::Txt(vec![b"token".to_vec()]),
                },
            ]
        );
        // The question is compared without regard to case.
        assert!(parse_response(&txt_response(), 0xbeef, "_DNSAUTH.example.COM.", TYPE_TXT).is_ok());
    }

    #[test]
    fn reads_a_cname_whose_target_is_partly_compressed() {
        let mut bytes = header(RESPONSE_FLAGS, 1);
        bytes.extend(question(TYPE_CNAME));
        bytes.extend_from_slice(&[0xc0, 0x0c]);
        // `tok.dcv.` then a pointer to `example.com` at octet 21.
        bytes.extend(fixed(TYPE_CNAME, 10));
        bytes.extend_from_slice(b"\x03tok\x03dcv\xc0\x15");
        let response = parse_response(&bytes, 0xbeef, "_dnsauth.example.com", TYPE_CNAME).unwrap();
        assert_eq!(
            response.answers[0].data,
            Data::Cname("tok.dcv.example.com".into())
        );
        // An RDLENGTH that does not match the name is refused.
        let rdlength = bytes.len() - 12;
        bytes[rdlength..rdlength + 2].copy_from_slice(&11u16.to_be_bytes());
        bytes.push(0);
        let error = parse_response(&bytes, 0xbeef, "_dnsauth.example.com", TYPE_CNAME).unwrap_err();
        assert!(error.contains("does not fill its RDATA"), "{error}");
    }

    #[test]
    fn reads_nxdomain_and_refuses_foreign_or_wrong_answers() {
        let mut nxdomain = header(0x8183, 0);
        nxdomain.extend(question(TYPE_TXT));
        let response = parse_response(&nxdomain, 0xbeef, "_dnsauth.example.com", TYPE_TXT).unwrap();
        assert_eq!(response.rcode, RCODE_NXDOMAIN);
        assert!(response.answers.is_empty());

        let wrong_id = parse_response(&nxdomain, 0xbeee, "_dnsauth.example.com", TYPE_TXT);
        assert!(wrong_id.unwrap_err().contains("id"));
        let mut query = nxdomain.clone();
        query[2] &= 0x7f;
        assert!(
            parse_response(&query, 0xbeef, "_dnsauth.example.com", TYPE_TXT)
                .unwrap_err()
                .contains("not a response")
        );
        let other_name = parse_response(&nxdomain, 0xbeef, "other.example.com", TYPE_TXT);
        assert!(other_name.unwrap_err().contains("not the one asked"));
        let other_type = parse_response(&nxdomain, 0xbeef, "_dnsauth.example.com", TYPE_CNAME);
        assert!(other_type.unwrap_err().contains("not the one asked"));
    }

    #[test]
    fn a_truncated_answer_is_flagged_and_a_cut_message_is_an_error() {
        let mut flagged = header(RESPONSE_FLAGS | FLAG_TC, 2);
        flagged.extend(question(TYPE_TXT));
        flagged.extend_from_slice(&[0xc0, 0x0c]); // the rest did not fit
        let response = parse_response(&flagged, 0xbeef, "_dnsauth.example.com", TYPE_TXT).unwrap();
        assert!(response.truncated);
        assert!(response.answers.is_empty());

        // Every strict prefix of a valid answer is malformed.
        let full = txt_response();
        for len in 0..full.len() {
            assert!(
                parse_response(&full[..len], 0xbeef, "_dnsauth.example.com", TYPE_TXT).is_err(),
                "prefix of {len} octets"
            );
        }
    }

    #[test]
    fn compression_loops_and_bad_pointers_are_errors() {
        // A pointer to itself.
        assert!(read_name(&[0xc0, 0x00], 0).is_err());
        // A forward pointer.
        assert!(read_name(&[0xc0, 0x02, 0x00], 0).is_err());
        // A backward pointer into a label whose end leads back to the pointer: a loop that
        // only the jump count stops.
        let looped = [1, b'a', 0xc0, 0x00];
        let error = read_name(&looped, 2).unwrap_err();
        assert!(error.contains("compression pointers"), "{error}");
        // A chain of backward pointers longer than any legal name is refused; a short one works.
        let mut chain = vec![1, b'a', 0];
        for index in 0..200usize {
            let target = if index == 0 { 0 } else { 3 + 2 * (index - 1) };
            chain.extend_from_slice(&[0xc0 | (target >> 8) as u8, target as u8]);
        }
        assert_eq!(read_name(&chain, 3 + 2 * 10).unwrap(), ("a".into(), 25));
        assert!(read_name(&chain, chain.len() - 2).is_err());
        // Extended label types (0x40, 0x80) are refused.
        assert!(read_name(&[0x41, 0], 0).is_err());
        assert!(read_name(&[0x81, 0], 0).is_err());
        // A name longer than 255 octets through pointers is refused.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert!(read_name(&long, 0).is_err());
    }

    fn record(owner: &str, class: u16, data: Data) -> Record {
        let record_type = match data {
            Data::Txt(_) => TYPE_TXT,
            Data::Cname(_) => TYPE_CNAME,
            Data::Other => 1,
        };
        Record {
            owner: owner.into(),
            record_type,
            class,
            ttl: 60,
            data,
        }
    }

    #[test]
    fn txt_values_follow_the_cname_chain_and_skip_other_names() {
        let txt = |value: &str| Data::Txt(vec![value.as_bytes().to_vec()]);
        let answers = vec![
            record(
                "_dnsauth.Example.com",
                CLASS_IN,
                Data::Cname("t.dcv.test".into()),
            ),
            record("elsewhere.test", CLASS_IN, txt("stray")),
            record(
                "T.dcv.test",
                CLASS_IN,
                Data::Txt(vec![b"split-".to_vec(), b"token".to_vec()]),
            ),
            record("t.dcv.test", 3, txt("chaos-class")),
            record("t.dcv.test", CLASS_IN, Data::Other),
            record("_dnsauth.example.com", CLASS_IN, txt("direct")),
        ];
        assert_eq!(
            txt_values("_dnsauth.example.com.", &answers),
            vec!["split-token".to_string(), "direct".to_string()]
        );
        assert!(txt_values("nothing.test", &answers).is_empty());
        assert_eq!(
            cname_target("_DNSAUTH.example.com", &answers).as_deref(),
            Some("t.dcv.test")
        );
        assert_eq!(cname_target("t.dcv.test", &answers), None);
    }

    #[test]
    fn txt_rdata_must_hold_whole_strings() {
        assert!(character_strings(&[]).is_err());
        assert!(character_strings(b"\x05abc").is_err());
        assert_eq!(
            character_strings(b"\x00\x01a").unwrap(),
            vec![Vec::new(), b"a".to_vec()]
        );
        assert_eq!(label_text(b"a.b\\\x00"), "a\\046b\\092\\000");
    }

    #[test]
    fn random_and_mutated_packets_never_panic() {
        let mut rng = Rng::new(0x5eed);
        let valid = txt_response();
        let mut accepted = 0;
        for round in 0..20_000 {
            let packet: Vec<u8> = if round % 2 == 0 {
                let len = rng.below(96) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                // Give some of them a matching header so the parser goes deeper.
                if bytes.len() >= 12 && rng.chance(0.5) {
                    bytes[..12].copy_from_slice(&header(RESPONSE_FLAGS, rng.below(4) as u16));
                }
                bytes
            } else {
                let mut bytes = valid.clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
                bytes
            };
            if parse_response(&packet, 0xbeef, "_dnsauth.example.com", TYPE_TXT).is_ok() {
                accepted += 1;
            }
            for start in 0..packet.len().min(16) {
                let _ = read_name(&packet, start);
            }
        }
        // The mutations leave some answers intact, so the parser is exercised past the header.
        assert!(accepted > 0);
    }

    /// A UDP and a TCP socket on the same loopback port.
    async fn fake_server() -> (UdpSocket, tokio::net::TcpListener, SocketAddr) {
        loop {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = tcp.local_addr().unwrap();
            if let Ok(udp) = UdpSocket::bind(addr).await {
                return (udp, tcp, addr);
            }
        }
    }

    /// The answer to `query` (id and question copied) with `flags` and TXT `value` (when
    /// `Some`).
    fn answer_to(query: &[u8], flags: u16, value: Option<&[u8]>) -> Vec<u8> {
        let question_end = query.len();
        let mut bytes = query[..2].to_vec();
        bytes.extend_from_slice(&flags.to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 0, u8::from(value.is_some()), 0, 0, 0, 0]);
        bytes.extend_from_slice(&query[12..question_end]);
        if let Some(value) = value {
            bytes.extend_from_slice(&[0xc0, 0x0c]);
            bytes.extend(fixed(TYPE_TXT, value.len() as u16 + 1));
            bytes.push(value.len() as u8);
            bytes.extend_from_slice(value);
        }
        bytes
    }

    #[tokio::test]
    async fn skips_stray_datagrams_and_falls_back_to_tcp_when_truncated() {
        let (udp, tcp, addr) = fake_server().await;
        let server = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            let (len, peer) = udp.recv_from(&mut buffer).await.unwrap();
            let query = buffer[..len].to_vec();
            // A datagram with another id, then the truncated answer.
            let mut stray = answer_to(&query, RESPONSE_FLAGS, Some(b"spoofed"));
            stray[0] ^= 0xff;
            udp.send_to(&stray, peer).await.unwrap();
            let truncated = answer_to(&query, RESPONSE_FLAGS | FLAG_TC, None);
            udp.send_to(&truncated, peer).await.unwrap();
            let (mut stream, _) = tcp.accept().await.unwrap();
            let mut prefix = [0u8; 2];
            stream.read_exact(&mut prefix).await.unwrap();
            let mut tcp_query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
            stream.read_exact(&mut tcp_query).await.unwrap();
            assert_eq!(tcp_query, query);
            let full = answer_to(&query, RESPONSE_FLAGS, Some(b"over-tcp"));
            stream
                .write_all(&(full.len() as u16).to_be_bytes())
                .await
                .unwrap();
            stream.write_all(&full).await.unwrap();
        });
        let values = lookup_txt(addr, "_dnsauth.example.com", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(values, vec!["over-tcp".to_string()]);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn servfail_and_silence_are_errors() {
        let (udp, _tcp, addr) = fake_server().await;
        let server = tokio::spawn(async move {
            let mut buffer = [0u8; 512];
            let (len, peer) = udp.recv_from(&mut buffer).await.unwrap();
            let servfail = answer_to(&buffer[..len], 0x8182, None);
            udp.send_to(&servfail, peer).await.unwrap();
            // The second query gets no answer.
            let _ = udp.recv_from(&mut buffer).await.unwrap();
        });
        let error = lookup_txt(addr, "a.example.com", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(error.contains("SERVFAIL"), "{error}");
        let error = lookup_cname(addr, "a.example.com", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(error.contains("no answer"), "{error}");
        server.await.unwrap();
    }
}
