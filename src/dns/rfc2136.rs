//! The `rfc2136` DNS provider: TXT and CNAME records published with RFC 2136 dynamic updates signed with
//! TSIG (RFC 8945), for BIND, Knot, PowerDNS and anything else that speaks standard DNS UPDATE.
//!
//! This file owns the DNS wire client the `dns` module uses: messages are encoded and decoded
//! with hickory-proto; TSIG MACs are computed and checked here with aws-lc-rs (hickory's own
//! signer has no hmac-sha1); the transport is UDP with a TCP retry for truncated answers. Zones
//! are found by the SOA walk of `reference/dns.md` §5.3 unless the configuration names them.
//!
//! It never deletes a whole RRset: `add_record` adds one RR, `remove_record` deletes exactly that
//! RR, so other TXT values at the same name (another client's challenge) stay. A CNAME added
//! where other data exists is ignored by the server (RFC 2136 §3.4.2.2); the propagation check
//! then reports it missing. The TSIG secret stays
//! inside `hmac::Key`: it is not in any `Debug` output, error message or log line.

pub(crate) mod open;
pub mod settings;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine as _;
use hickory_proto::op::UpdateMessage as _;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{
    make_tsig_record, message_tbs, TsigAlgorithm as WireAlgorithm, TsigError, TSIG,
};
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable as _, BinDecoder, BinEncoder};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::config::model::{Rfc2136Settings, SecretRef, TsigAlgorithm, TsigKey};
use crate::dns::{DnsError, DnsProvider, DnsRecord, ErrorClass, RecordData};

/// How long one exchange with a server may take unless [`Rfc2136::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// TTL of the records `add_record` creates: short, so a stale challenge does not linger.
const RECORD_TTL: u32 = 60;

/// Allowed clock difference between us and the server, in seconds (RFC 8945 recommends 300).
const TSIG_FUDGE: u16 = 300;

/// EDNS payload size advertised on queries (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// A DNS provider that publishes TXT records with TSIG-signed RFC 2136 updates.
///
/// Per-zone keys (`zones`) win for names inside their zone, the longest zone first; any other
/// name is placed by an SOA walk against `server` and signed with the provider-wide `key`.
#[derive(Debug)]
pub struct Rfc2136 {
    name: String,
    server: String,
    key: Option<Key>,
    /// Longest zone first, so the first zone that holds a name is the most specific one.
    zones: Vec<ZoneEntry>,
    timeout: Duration,
}

#[derive(Debug)]
struct ZoneEntry {
    zone: Name,
    key: Key,
}

/// A loaded TSIG key. The secret lives only inside `hmac`, and `Debug` does not show it.
struct Key {
    /// Fully qualified key name as sent on the wire.
    name: Name,
    algorithm: TsigAlgorithm,
    hmac: hmac::Key,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.label())
            .field("algorithm", &self.algorithm)
            .field("secret", &"***")
            .finish()
    }
}

impl Key {
    /// Resolves the secret of `key` and decodes it (see [`Rfc2136::new`] for the accepted forms).
    fn load(
        provider: &str,
        key: &TsigKey,
        secrets: &dyn Fn(&SecretRef) -> Result<Vec<u8>, String>,
    ) -> Result<Self, DnsError> {
        let mut name = Name::from_ascii(key.key_name.trim_end_matches('.')).map_err(|err| {
            error(
                ErrorClass::Rejected,
                format!(
                    "invalid TSIG key name `{}` for DNS provider `{provider}`: {err}",
                    key.key_name
                ),
            )
        })?;
        name.set_fqdn(true);
        let label = display_name(&name);
        let text = secrets(&key.secret).map_err(|reason| {
            error(
                ErrorClass::Auth,
                format!("cannot read the secret of TSIG key `{label}` for DNS provider `{provider}`: {reason}"),
            )
        })?;
        let secret = decode_secret(&text).map_err(|reason| {
            error(
                ErrorClass::Auth,
                format!("the secret of TSIG key `{label}` for DNS provider `{provider}` {reason}"),
            )
        })?;
        Ok(Self {
            name,
            algorithm: key.algorithm,
            hmac: hmac::Key::new(hmac_algorithm(key.algorithm), &secret),
        })
    }

    fn label(&self) -> String {
        display_name(&self.name)
    }

    fn wire_algorithm(&self) -> WireAlgorithm {
        match self.algorithm {
            TsigAlgorithm::HmacSha1 => WireAlgorithm::HmacSha1,
            TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
        }
    }

    fn mac_len(&self) -> usize {
        hmac_algorithm(self.algorithm)
            .digest_algorithm()
            .output_len()
    }

    /// Appends a TSIG record to `message` and returns the request MAC (needed to check the
    /// answer's signature).
    fn sign(&self, message: &mut Message, now: u64) -> Result<Vec<u8>, String> {
        let stub = TSIG::new(
            self.wire_algorithm(),
            now,
            TSIG_FUDGE,
            Vec::new(),
            message.metadata.id,
            None,
            Vec::new(),
        );
        let to_be_signed =
            message_tbs(message, &stub, &self.name).map_err(|err| err.to_string())?;
        let mac = hmac::sign(&self.hmac, &to_be_signed).as_ref().to_vec();
        message.signature = Some(Box::new(make_tsig_record(
            self.name.clone(),
            stub.set_mac(mac.clone()),
        )));
        Ok(mac)
    }

    /// Checks the TSIG record that ends `answer`, a reply to a request signed with `request_mac`
    /// (RFC 8945 §4.3 and §5.3).
    fn verify(&self, answer: &[u8], request_mac: &[u8], now: u64) -> Result<(), String> {
        let malformed = |err: &dyn fmt::Display| format!("malformed answer: {err}");
        let mut decoder = BinDecoder::new(answer);
        let header = Header::read(&mut decoder).map_err(|err| malformed(&err))?;
        let counts = header.counts;
        let Some(additionals) = counts.additionals.checked_sub(1) else {
            return Err("the answer is not signed".to_string());
        };
        let op_code = header.metadata.op_code;
        for _ in 0..counts.queries {
            Query::read(&mut decoder).map_err(|err| malformed(&err))?;
        }
        let records = usize::from(counts.answers) + usize::from(counts.authorities);
        Message::read_records(&mut decoder, records, false, op_code)
            .map_err(|err| malformed(&err))?;
        Message::read_records(&mut decoder, usize::from(additionals), true, op_code)
            .map_err(|err| malformed(&err))?;
        let signed_end = answer.len() - decoder.len();
        let last = Record::<RData>::read(&mut decoder).map_err(|err| malformed(&err))?;
        let RData::TSIG(tsig) = &last.data else {
            return Err("the answer is not signed".to_string());
        };
        let signer = &last.name;
        if *signer != self.name || tsig.algorithm != self.wire_algorithm() {
            return Err(format!(
                "the answer is signed with key `{}` ({}) instead",
                display_name(signer),
                tsig.algorithm
            ));
        }
        if tsig.mac.len() != self.mac_len() {
            return Err("the answer's MAC has the wrong length".to_string());
        }

        // The MAC covers: request MAC, the answer as it was before the TSIG record was added
        // (original id, one additional record fewer), then the TSIG variables.
        let mut to_be_verified = Vec::with_capacity(answer.len() + request_mac.len() + 64);
        to_be_verified
            .extend_from_slice(&u16::try_from(request_mac.len()).unwrap_or(0).to_be_bytes());
        to_be_verified.extend_from_slice(request_mac);
        to_be_verified.extend_from_slice(&tsig.oid.to_be_bytes());
        to_be_verified.extend_from_slice(answer.get(2..10).ok_or("the answer is truncated")?);
        to_be_verified.extend_from_slice(&additionals.to_be_bytes());
        to_be_verified.extend_from_slice(
            answer
                .get(12..signed_end)
                .ok_or("the answer is truncated")?,
        );
        // A fresh buffer: `BinEncoder` writes from offset 0 of the vector it is given.
        let mut variables = Vec::with_capacity(64);
        tsig.emit_tsig_for_mac(&mut BinEncoder::new(&mut variables), signer)
            .map_err(|err| malformed(&err))?;
        to_be_verified.extend_from_slice(&variables);
        hmac::verify(&self.hmac, &to_be_verified, &tsig.mac)
            .map_err(|_| "the answer's MAC does not match the key".to_string())?;
        if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
            return Err(format!(
                "the answer was signed at {} but our clock says {now} (fudge {} s)",
                tsig.time, tsig.fudge
            ));
        }
        if let Some(err) = tsig.error {
            return Err(format!("the answer's TSIG record carries error {err:?}"));
        }
        Ok(())
    }
}

/// What an update does to the one TXT record.
#[derive(Debug, Clone, Copy)]
enum Change {
    Add,
    Delete,
}

impl Rfc2136 {
    /// Builds the provider `[dns.NAME]` from its settings, loading every TSIG key up front.
    ///
    /// `secrets` resolves a secret reference to the secret's text as stored (the environment
    /// variable's value or the file's bytes); this function decodes it. Accepted forms: the
    /// base64 secret itself (surrounding whitespace ignored), or a BIND key file as written by
    /// `tsig-keygen` (`key "name" { algorithm hmac-sha256; secret "..."; };`), whose `secret`
    /// is used. The server address is resolved at each exchange, not here.
    pub fn new(
        name: &str,
        settings: &Rfc2136Settings,
        secrets: &dyn Fn(&SecretRef) -> Result<Vec<u8>, String>,
    ) -> Result<Self, DnsError> {
        let key = settings
            .key
            .as_ref()
            .map(|key| Key::load(name, key, secrets))
            .transpose()?;
        let mut zones = Vec::with_capacity(settings.zones.len());
        for entry in &settings.zones {
            let zone = parse_name(&entry.zone).map_err(|reason| {
                error(
                    ErrorClass::Rejected,
                    format!(
                        "invalid zone `{}` for DNS provider `{name}`: {reason}",
                        entry.zone
                    ),
                )
            })?;
            zones.push(ZoneEntry {
                zone,
                key: Key::load(name, &entry.key, secrets)?,
            });
        }
        zones.sort_by_key(|entry| std::cmp::Reverse(entry.zone.num_labels()));
        if key.is_none() && zones.is_empty() {
            return Err(error(
                ErrorClass::Rejected,
                format!("DNS provider `{name}` has no TSIG key"),
            ));
        }
        Ok(Self {
            name: name.to_string(),
            server: settings.server.clone(),
            key,
            zones,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sets how long one exchange with the server may take (default [`DEFAULT_TIMEOUT`]).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The zone a TXT record at `name` is written to: the longest configured zone holding it,
    /// else the zone the server reports through the SOA walk.
    pub async fn zone_for(&self, name: &str) -> Result<String, DnsError> {
        let owner = self.owner(name)?;
        let server = self.server_address().await?;
        let (zone, _) = self.target(server, &owner).await?;
        Ok(display_name(&zone))
    }

    fn owner(&self, name: &str) -> Result<Name, DnsError> {
        parse_name(name).map_err(|reason| {
            error(
                ErrorClass::Rejected,
                format!(
                    "invalid record name `{name}` for DNS provider `{}`: {reason}",
                    self.name
                ),
            )
        })
    }

    async fn server_address(&self) -> Result<SocketAddr, DnsError> {
        if let Ok(address) = self.server.parse::<SocketAddr>() {
            return Ok(address);
        }
        let found = tokio::time::timeout(self.timeout, tokio::net::lookup_host(&self.server))
            .await
            .map_err(|_| {
                error(
                    ErrorClass::Transient,
                    format!(
                        "cannot resolve server `{}` of DNS provider `{}`: no answer within {:?}",
                        self.server, self.name, self.timeout
                    ),
                )
            })?;
        let unresolved = |reason: String| {
            error(
                ErrorClass::Transient,
                format!(
                    "cannot resolve server `{}` of DNS provider `{}`: {reason}",
                    self.server, self.name
                ),
            )
        };
        found
            .map_err(|err| unresolved(err.to_string()))?
            .next()
            .ok_or_else(|| unresolved("no address".to_string()))
    }

    /// The key for a record at `owner`: the longest configured zone holding it, else the
    /// provider-wide key.
    fn key_for(&self, owner: &Name) -> Option<(Option<&Name>, &Key)> {
        match self.zones.iter().find(|entry| entry.zone.zone_of(owner)) {
            Some(entry) => Some((Some(&entry.zone), &entry.key)),
            None => self.key.as_ref().map(|key| (None, key)),
        }
    }

    /// Zone and signing key for a record at `owner`.
    async fn target(&self, server: SocketAddr, owner: &Name) -> Result<(Name, &Key), DnsError> {
        match self.key_for(owner) {
            Some((Some(zone), key)) => Ok((zone.clone(), key)),
            Some((None, key)) => Ok((find_zone_name(server, owner, self.timeout).await?, key)),
            None => {
                let zones = self
                    .zones
                    .iter()
                    .map(|entry| format!("`{}`", display_name(&entry.zone)))
                    .collect::<Vec<_>>()
                    .join(", ");
                Err(error(
                    ErrorClass::Rejected,
                    format!(
                        "`{}` is in none of the zones of DNS provider `{}` ({zones}) and it has no provider-wide key",
                        display_name(owner),
                        self.name
                    ),
                ))
            }
        }
    }

    /// Sends one signed update that adds or deletes the RR `owner` `data` (TXT or CNAME), and
    /// checks the answer.
    async fn update(
        &self,
        server: SocketAddr,
        zone: &Name,
        key: &Key,
        owner: &Name,
        data: &RecordData,
        change: Change,
    ) -> Result<(), DnsError> {
        let context = UpdateContext {
            server,
            zone,
            key,
            owner,
            record_type: data.type_name(),
        };
        if !zone.zone_of(owner) {
            return Err(context.fail(
                ErrorClass::Rejected,
                "the name is not inside the zone".to_string(),
            ));
        }
        let rdata = match data {
            RecordData::Txt(value) => RData::TXT(txt_data(value)),
            RecordData::Cname(target) => {
                let mut target = parse_name(target).map_err(|reason| {
                    context.fail(
                        ErrorClass::Rejected,
                        format!("invalid CNAME target `{target}`: {reason}"),
                    )
                })?;
                target.set_fqdn(true);
                RData::CNAME(CNAME(target))
            }
        };
        let mut record = Record::from_rdata(owner.clone(), RECORD_TTL, rdata);
        if let Change::Delete = change {
            // RFC 2136 §2.5.4: class NONE and TTL 0 delete exactly this RR.
            record.dns_class = DNSClass::NONE;
            record.ttl = 0;
        }
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut zone_section = Query::query(zone.clone(), RecordType::SOA);
        zone_section.set_query_class(DNSClass::IN);
        message.add_zone(zone_section);
        message.add_update(record);

        let now = unix_now();
        let request_mac = key.sign(&mut message, now).map_err(|reason| {
            context.fail(ErrorClass::Rejected, format!("cannot sign: {reason}"))
        })?;
        tracing::debug!(
            server = %server,
            zone = %display_name(zone),
            key = %key.label(),
            name = %display_name(owner),
            ?change,
            "sending RFC 2136 update"
        );
        let (answer, bytes) = exchange(server, &message, self.timeout)
            .await
            .map_err(|err| context.fail(ErrorClass::Transient, err.to_string()))?;
        context.check(&answer, &bytes, &request_mac, unix_now())
    }
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    fn name(&self) -> &str {
        &self.name
    }

    fn propagation_servers(&self) -> Vec<std::net::SocketAddr> {
        use std::net::ToSocketAddrs;
        self.server
            .to_socket_addrs()
            .map(|addresses| addresses.take(1).collect())
            .unwrap_or_default()
    }

    async fn add_record(&self, name: &str, data: &RecordData) -> Result<DnsRecord, DnsError> {
        let owner = self.owner(name)?;
        let server = self.server_address().await?;
        let (zone, key) = self.target(server, &owner).await?;
        self.update(server, &zone, key, &owner, data, Change::Add)
            .await?;
        Ok(DnsRecord {
            name: display_name(&owner),
            data: data.clone(),
            zone: display_name(&zone),
            id: None,
        })
    }

    async fn remove_record(&self, record: &DnsRecord) -> Result<(), DnsError> {
        let owner = self.owner(&record.name)?;
        let server = self.server_address().await?;
        let recorded_zone = parse_name(&record.zone)
            .ok()
            .filter(|zone| zone.zone_of(&owner));
        let (zone, key) = match (recorded_zone, self.key_for(&owner)) {
            (Some(zone), Some((_, key))) => (zone, key),
            _ => self.target(server, &owner).await?,
        };
        self.update(server, &zone, key, &owner, &record.data, Change::Delete)
            .await
    }
}

/// What an error message about one update names.
struct UpdateContext<'a> {
    server: SocketAddr,
    zone: &'a Name,
    key: &'a Key,
    owner: &'a Name,
    /// `TXT` or `CNAME`.
    record_type: &'static str,
}

impl UpdateContext<'_> {
    fn fail(&self, class: ErrorClass, reason: String) -> DnsError {
        error(
            class,
            format!(
                "update of {} `{}` in zone `{}` at server `{}` with key `{}` failed: {reason}",
                self.record_type,
                display_name(self.owner),
                display_name(self.zone),
                self.server,
                self.key.label()
            ),
        )
    }

    /// Maps the server's answer to success or a classified error.
    fn check(
        &self,
        answer: &Message,
        bytes: &[u8],
        request_mac: &[u8],
        now: u64,
    ) -> Result<(), DnsError> {
        let zone = display_name(self.zone);
        let key = self.key.label();
        let tsig_error = message_tsig(answer).and_then(|(_, tsig)| tsig.error);
        let code = answer.metadata.response_code;
        match (code, tsig_error) {
            (ResponseCode::NoError, _) => self
                .key
                .verify(bytes, request_mac, now)
                .map_err(|reason| {
                    self.fail(
                        ErrorClass::Auth,
                        format!("the server's answer failed TSIG verification: {reason}"),
                    )
                }),
            (ResponseCode::Refused, _) => Err(self.fail(
                ErrorClass::Rejected,
                format!(
                    "the server refused the update (REFUSED): is key `{key}` allowed to update {} in zone `{zone}`?",
                    self.record_type
                ),
            )),
            (_, Some(TsigError::BadKey)) | (ResponseCode::BADKEY, _) => Err(self.fail(
                ErrorClass::Auth,
                "the server does not know the key (BADKEY): check `key_name` and `algorithm`"
                    .to_string(),
            )),
            (_, Some(TsigError::BadSig)) | (ResponseCode::BADSIG, _) => Err(self.fail(
                ErrorClass::Auth,
                "the server rejected the signature (BADSIG): check the secret and `algorithm`"
                    .to_string(),
            )),
            (_, Some(TsigError::BadTime)) | (ResponseCode::BADTIME, _) => Err(self.fail(
                ErrorClass::Auth,
                "the server rejected the signing time (BADTIME): check this machine's clock"
                    .to_string(),
            )),
            (ResponseCode::NotAuth, _) => Err(self.fail(
                ErrorClass::Auth,
                format!(
                    "the server is not authoritative for zone `{zone}` or did not accept the key (NOTAUTH)"
                ),
            )),
            (ResponseCode::NotZone, _) => Err(self.fail(
                ErrorClass::Rejected,
                format!("the server says the name is outside zone `{zone}` (NOTZONE)"),
            )),
            (ResponseCode::ServFail, _) => Err(self.fail(
                ErrorClass::Transient,
                "the server could not apply the update (SERVFAIL)".to_string(),
            )),
            (code, _) => Err(self.fail(
                ErrorClass::Rejected,
                format!("the server answered {}", rcode_name(code)),
            )),
        }
    }
}

/// Finds the zone that holds `name` by asking `server` for SOA records, from `name` upward
/// (`reference/dns.md` §5.3). Returns the zone apex without the trailing dot.
pub async fn find_zone(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<String, DnsError> {
    let owner = parse_name(name).map_err(|reason| {
        error(
            ErrorClass::Rejected,
            format!("invalid DNS name `{name}`: {reason}"),
        )
    })?;
    Ok(display_name(
        &find_zone_name(server, &owner, timeout).await?,
    ))
}

/// The SOA walk: the first candidate whose SOA is in the answer (and is not an alias) is the
/// zone; an SOA in the authority section of a negative answer names the zone directly.
pub(crate) async fn find_zone_name(
    server: SocketAddr,
    name: &Name,
    timeout: Duration,
) -> Result<Name, DnsError> {
    let mut candidate = name.clone();
    while !candidate.is_root() {
        let answer = query(server, &candidate, RecordType::SOA, timeout).await?;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let is_alias = answer
                    .answers
                    .iter()
                    .any(|record| record.record_type() == RecordType::CNAME);
                if !is_alias {
                    let apex = answer
                        .answers
                        .iter()
                        .find(|record| {
                            record.record_type() == RecordType::SOA && record.name == candidate
                        })
                        .or_else(|| {
                            answer.authorities.iter().find(|record| {
                                record.record_type() == RecordType::SOA
                                    && record.name.zone_of(&candidate)
                            })
                        });
                    if let Some(apex) = apex {
                        let mut zone = apex.name.clone();
                        zone.set_fqdn(true);
                        return Ok(zone);
                    }
                }
            }
            ResponseCode::Refused => {
                return Err(error(
                    ErrorClass::Rejected,
                    format!(
                        "zone of `{}` not found: server `{server}` refused to answer for `{}`, so it serves no zone holding the name",
                        display_name(name),
                        display_name(&candidate)
                    ),
                ))
            }
            code => return Err(answer_error(server, &candidate, RecordType::SOA, code)),
        }
        candidate = candidate.base_name();
    }
    Err(error(
        ErrorClass::Rejected,
        format!(
            "zone of `{}` not found: server `{server}` has no SOA for it or any parent",
            display_name(name)
        ),
    ))
}

/// Asks `server` for the TXT records at `name` (a plain query with recursion desired) and
/// returns their values, each record's strings joined. No such name, or no TXT, is an empty list.
pub async fn lookup_txt(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, DnsError> {
    let owner = parse_name(name).map_err(|reason| {
        error(
            ErrorClass::Rejected,
            format!("invalid DNS name `{name}`: {reason}"),
        )
    })?;
    let answer = query(server, &owner, RecordType::TXT, timeout).await?;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        code => Err(answer_error(server, &owner, RecordType::TXT, code)),
    }
}

/// Asks `server` for the CNAME at `name` and returns its targets (no trailing dot; at most one
/// in a sane zone). No such name, or no CNAME, is an empty list.
pub async fn lookup_cname(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, DnsError> {
    let owner = parse_name(name).map_err(|reason| {
        error(
            ErrorClass::Rejected,
            format!("invalid DNS name `{name}`: {reason}"),
        )
    })?;
    let answer = query(server, &owner, RecordType::CNAME, timeout).await?;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::CNAME(target) if record.name == owner => Some(display_name(&target.0)),
                _ => None,
            })
            .collect()),
        code => Err(answer_error(server, &owner, RecordType::CNAME, code)),
    }
}

/// Sends a plain query for `name` `record_type` and returns the answer, whatever its rcode.
pub(crate) async fn query(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name.clone(), record_type));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    message.set_edns(edns);
    let (answer, _) = exchange(server, &message, timeout).await.map_err(|err| {
        error(
            ErrorClass::Transient,
            format!(
                "query for `{}` {record_type} at server `{server}` failed: {err}",
                display_name(name)
            ),
        )
    })?;
    Ok(answer)
}

/// The error for a query answered with an unexpected rcode.
pub(crate) fn answer_error(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    code: ResponseCode,
) -> DnsError {
    let class = match code {
        ResponseCode::ServFail => ErrorClass::Transient,
        _ => ErrorClass::Rejected,
    };
    error(
        class,
        format!(
            "server `{server}` answered {} to the query for `{}` {record_type}",
            rcode_name(code),
            display_name(name)
        ),
    )
}

/// Why an exchange with a server produced no answer.
#[derive(Debug)]
enum ExchangeError {
    Encode(String),
    Io(&'static str, std::io::Error),
    Timeout(Duration),
    Malformed(String),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(reason) => write!(f, "cannot encode the message: {reason}"),
            Self::Io(action, err) => write!(f, "cannot {action}: {err}"),
            Self::Timeout(timeout) => write!(f, "no answer within {timeout:?}"),
            Self::Malformed(reason) => write!(f, "malformed answer: {reason}"),
        }
    }
}

/// Sends `request` over UDP (resending a few times within `timeout`) and returns the matching
/// answer, decoded and raw; a truncated answer is fetched again over TCP.
async fn exchange(
    server: SocketAddr,
    request: &Message,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let bytes = request
        .to_vec()
        .map_err(|err| ExchangeError::Encode(err.to_string()))?;
    let deadline = deadline_after(timeout);
    let id = request.metadata.id;
    let answer = exchange_udp(server, &bytes, id, deadline, timeout).await?;
    if !answer.0.metadata.truncation {
        return Ok(answer);
    }
    exchange_tcp(server, &bytes, id, deadline, timeout).await
}

async fn exchange_udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|err| ExchangeError::Io("open a UDP socket", err))?;
    socket
        .connect(server)
        .await
        .map_err(|err| ExchangeError::Io("reach the server", err))?;
    // Resend twice within the timeout: a lost datagram should not cost the whole timeout.
    let resend_every = (timeout / 3).max(Duration::from_millis(100));
    let mut buffer = vec![0u8; usize::from(u16::MAX)];
    loop {
        socket
            .send(request)
            .await
            .map_err(|err| ExchangeError::Io("send to the server", err))?;
        let resend_at = deadline_after(resend_every).min(deadline);
        while let Ok(received) = tokio::time::timeout_at(resend_at, socket.recv(&mut buffer)).await
        {
            let length =
                received.map_err(|err| ExchangeError::Io("receive from the server", err))?;
            let datagram = buffer.get(..length).unwrap_or_default();
            if let Some(answer) = matching_answer(datagram, id)? {
                return Ok((answer, datagram.to_vec()));
            }
        }
        if Instant::now() >= deadline {
            return Err(ExchangeError::Timeout(timeout));
        }
    }
}

async fn exchange_tcp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<(Message, Vec<u8>), ExchangeError> {
    let work = async {
        let mut stream = TcpStream::connect(server)
            .await
            .map_err(|err| ExchangeError::Io("connect over TCP", err))?;
        let length = u16::try_from(request.len())
            .map_err(|_| ExchangeError::Encode("message longer than 65535 bytes".to_string()))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(request);
        stream
            .write_all(&framed)
            .await
            .map_err(|err| ExchangeError::Io("send over TCP", err))?;
        loop {
            let length = stream
                .read_u16()
                .await
                .map_err(|err| ExchangeError::Io("receive over TCP", err))?;
            let mut answer = vec![0u8; usize::from(length)];
            stream
                .read_exact(&mut answer)
                .await
                .map_err(|err| ExchangeError::Io("receive over TCP", err))?;
            if let Some(message) = matching_answer(&answer, id)? {
                return Ok((message, answer));
            }
        }
    };
    tokio::time::timeout_at(deadline, work)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))?
}

/// Decodes `datagram` if it is the answer to request `id`; anything else is ignored.
fn matching_answer(datagram: &[u8], id: u16) -> Result<Option<Message>, ExchangeError> {
    let is_answer = matches!(datagram, [high, low, flags, ..]
        if u16::from_be_bytes([*high, *low]) == id && flags & 0x80 != 0);
    if !is_answer {
        return Ok(None);
    }
    let message =
        Message::from_vec(datagram).map_err(|err| ExchangeError::Malformed(err.to_string()))?;
    Ok((message.metadata.message_type == MessageType::Response).then_some(message))
}

/// The TSIG record of a decoded message. hickory-proto moves it to `signature` only when its
/// DNSSEC features are on; otherwise it is the last additional record.
fn message_tsig(message: &Message) -> Option<(&Name, &TSIG)> {
    if let Some(record) = &message.signature {
        return Some((&record.name, &record.data));
    }
    match message.additionals.last() {
        Some(Record {
            name,
            data: RData::TSIG(tsig),
            ..
        }) => Some((name, tsig)),
        _ => None,
    }
}

/// The TXT RDATA for `value`, split into character-strings of at most 255 bytes.
fn txt_data(value: &str) -> TXT {
    if value.is_empty() {
        return TXT::from_bytes(vec![&[]]);
    }
    TXT::from_bytes(value.as_bytes().chunks(255).collect())
}

/// Parses a DNS name written with or without the trailing dot into a fully qualified name.
pub(crate) fn parse_name(name: &str) -> Result<Name, String> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("the name is empty".to_string());
    }
    let mut parsed = Name::from_ascii(trimmed).map_err(|err| err.to_string())?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// A name as users write it: no trailing dot.
pub(crate) fn display_name(name: &Name) -> String {
    let text = name.to_ascii();
    match text.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_string(),
        _ => text,
    }
}

fn rcode_name(code: ResponseCode) -> String {
    format!("{code:?}").to_uppercase()
}

fn error(class: ErrorClass, message: String) -> DnsError {
    DnsError { class, message }
}

fn hmac_algorithm(algorithm: TsigAlgorithm) -> hmac::Algorithm {
    match algorithm {
        TsigAlgorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        TsigAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    }
}

/// `timeout` from now; a timeout too large to represent means "a year from now".
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Decodes a TSIG secret: plain base64, or the `secret "..."` of a BIND key file. The error
/// says what is wrong without quoting the text.
fn decode_secret(text: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "is not UTF-8 text".to_string())?;
    let encoded = if text.contains('{') {
        bind_key_file_secret(text)?
    } else {
        text.trim()
    };
    let secret = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "is not valid base64".to_string())?;
    if secret.is_empty() {
        return Err("is empty".to_string());
    }
    Ok(secret)
}

/// The quoted value of the one `secret` statement in a BIND key file.
fn bind_key_file_secret(text: &str) -> Result<&str, String> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices("secret") {
        let before = text[..start].chars().next_back();
        if !matches!(before, Some(c) if c.is_whitespace() || c == '{' || c == ';') {
            continue;
        }
        let rest = text[start + "secret".len()..].trim_start();
        if let Some(quoted) = rest.strip_prefix('"') {
            if let Some(end) = quoted.find('"') {
                found.push(&quoted[..end]);
            }
        }
    }
    match found.as_slice() {
        [secret] => Ok(secret.trim()),
        [] => Err("looks like a BIND key file but has no `secret \"...\";` statement".to_string()),
        _ => Err("is a BIND key file with more than one key: keep one key per file".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::ZoneKey;

    const SECRET: &str = "qxSdneHkGkDPPqxctrXkYvpo8WCyN9HSxaZKpBKPjfk=";

    fn settings(server: &str) -> Rfc2136Settings {
        Rfc2136Settings {
            server: server.to_string(),
            key: Some(TsigKey {
                key_name: "global-key".to_string(),
                algorithm: TsigAlgorithm::HmacSha256,
                secret: SecretRef::Env("GLOBAL".to_string()),
            }),
            zones: vec![
                ZoneKey {
                    zone: "example.test".to_string(),
                    key: TsigKey {
                        key_name: "outer-key".to_string(),
                        algorithm: TsigAlgorithm::HmacSha1,
                        secret: SecretRef::Env("OUTER".to_string()),
                    },
                },
                ZoneKey {
                    zone: "inner.example.test".to_string(),
                    key: TsigKey {
                        key_name: "inner-key".to_string(),
                        algorithm: TsigAlgorithm::HmacSha512,
                        secret: SecretRef::Env("INNER".to_string()),
                    },
                },
            ],
        }
    }

    fn secrets(_: &SecretRef) -> Result<Vec<u8>, String> {
        Ok(SECRET.as_bytes().to_vec())
    }

    #[test]
    fn decodes_plain_base64_with_whitespace() {
        let decoded = decode_secret(format!("  {SECRET}\n").as_bytes()).unwrap();
        assert_eq!(decoded.len(), 32);
    }

    #[test]
    fn decodes_a_bind_key_file() {
        let file = format!(
            "key \"my-secret-key.\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        assert_eq!(
            decode_secret(file.as_bytes()).unwrap(),
            decode_secret(SECRET.as_bytes()).unwrap()
        );
    }

    #[test]
    fn secret_errors_do_not_quote_the_text() {
        let err = decode_secret(b"not base64 at all !!").unwrap_err();
        assert_eq!(err, "is not valid base64");
        let err = decode_secret(b"key \"k\" { algorithm hmac-sha256; };").unwrap_err();
        assert!(err.contains("no `secret"), "{err}");
        assert_eq!(decode_secret(b"   ").unwrap_err(), "is empty");
        assert_eq!(
            decode_secret(&[0xff, 0xfe]).unwrap_err(),
            "is not UTF-8 text"
        );
    }

    #[test]
    fn unreadable_secret_is_an_auth_error_naming_the_key() {
        let failing = |_: &SecretRef| Err("environment variable `GLOBAL` is not set".to_string());
        let err = Rfc2136::new("bind", &settings("127.0.0.1:53"), &failing).unwrap_err();
        assert_eq!(err.class, ErrorClass::Auth);
        assert!(err.message.contains("`global-key`"), "{}", err.message);
        assert!(err.message.contains("`bind`"), "{}", err.message);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let provider = Rfc2136::new("bind", &settings("127.0.0.1:53"), &secrets).unwrap();
        let shown = format!("{provider:?}");
        assert!(shown.contains("***"), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("qxSdne"), "{shown}");
    }

    #[test]
    fn longest_configured_zone_picks_the_key() {
        let provider = Rfc2136::new("bind", &settings("127.0.0.1:53"), &secrets).unwrap();
        let pick = |name: &str| {
            let owner = parse_name(name).unwrap();
            provider
                .key_for(&owner)
                .map(|(zone, key)| (zone.map(display_name), key.label()))
        };
        assert_eq!(
            pick("_acme-challenge.a.inner.example.test"),
            Some((
                Some("inner.example.test".to_string()),
                "inner-key".to_string()
            ))
        );
        assert_eq!(
            pick("_acme-challenge.example.test."),
            Some((Some("example.test".to_string()), "outer-key".to_string()))
        );
        assert_eq!(
            pick("_acme-challenge.other.test"),
            Some((None, "global-key".to_string()))
        );
    }

    #[test]
    fn names_parse_with_or_without_the_trailing_dot() {
        let name = parse_name("_acme-challenge.www.example.com.").unwrap();
        assert_eq!(display_name(&name), "_acme-challenge.www.example.com");
        assert_eq!(parse_name("_acme-challenge.www.example.com").unwrap(), name);
        assert!(parse_name("").is_err());
        assert!(parse_name(".").is_err());
        assert!(parse_name("a..b").is_err());
    }

    #[test]
    fn long_values_are_split_into_255_byte_strings() {
        let value = "x".repeat(300);
        let txt = txt_data(&value);
        let lengths: Vec<usize> = txt.txt_data.iter().map(|part| part.len()).collect();
        assert_eq!(lengths, vec![255, 45]);
        assert_eq!(txt_data("").txt_data.len(), 1);
    }

    #[test]
    fn signing_adds_a_tsig_record_that_verifies() {
        let key = Key::load(
            "bind",
            &TsigKey {
                key_name: "k".to_string(),
                algorithm: TsigAlgorithm::HmacSha1,
                secret: SecretRef::Env("K".to_string()),
            },
            &secrets,
        )
        .unwrap();
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.add_zone(Query::query(
            parse_name("example.test").unwrap(),
            RecordType::SOA,
        ));
        let mac = key.sign(&mut message, 1_700_000_000).unwrap();
        assert_eq!(mac.len(), 20);
        let bytes = message.to_vec().unwrap();
        let decoded = Message::from_vec(&bytes).unwrap();
        let (signer, tsig) = message_tsig(&decoded).unwrap();
        assert_eq!(display_name(signer), "k");
        assert_eq!(tsig.algorithm, WireAlgorithm::HmacSha1);
        assert_eq!(tsig.mac, mac);
    }

    /// A server that answers every update NOERROR without signing: a spoofed success.
    #[tokio::test]
    async fn an_unsigned_success_answer_is_not_trusted() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            while let Ok((length, peer)) = server.recv_from(&mut buffer).await {
                let request = Message::from_vec(&buffer[..length]).unwrap();
                let mut answer = Message::response(request.metadata.id, request.metadata.op_code);
                answer.queries = request.queries.clone();
                let _ = server.send_to(&answer.to_vec().unwrap(), peer).await;
            }
        });
        let provider = Rfc2136::new(
            "bind",
            &Rfc2136Settings {
                server: address.to_string(),
                ..settings("unused:53")
            },
            &secrets,
        )
        .unwrap()
        .with_timeout(Duration::from_secs(2));
        let err = provider
            .add_txt("_acme-challenge.example.test", "token")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Auth, "{}", err.message);
        assert!(err.message.contains("not signed"), "{}", err.message);
        assert!(err.message.contains("`outer-key`"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_transient_error_naming_it() {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = silent.local_addr().unwrap();
        let provider = Rfc2136::new(
            "bind",
            &Rfc2136Settings {
                zones: Vec::new(),
                ..settings(&address.to_string())
            },
            &secrets,
        )
        .unwrap()
        .with_timeout(Duration::from_millis(300));
        let err = provider
            .add_txt("_acme-challenge.example.test", "token")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient);
        assert!(
            err.message.contains(&address.to_string()),
            "{}",
            err.message
        );
        assert!(err.message.contains("no answer within"), "{}", err.message);
    }
}
