//! The `rfc2136` DNS provider: TXT and CNAME records published with RFC 2136 dynamic updates signed with
//! TSIG (RFC 8945), for BIND, Knot, PowerDNS and anything else that speaks standard DNS UPDATE.
//!
//! This module owns the DNS wire client the `dns` module uses: messages are encoded and decoded
//! with hickory-proto; TSIG MACs are computed and checked with aws-lc-rs in `tsig` (hickory's own
//! signer has no hmac-sha1); `transport` is UDP with a TCP retry for truncated answers. Zones
//! are found by the SOA walk of `reference/dns.md` §5.3 (`lookup`) unless the configuration
//! names them.
//!
//! It never deletes a whole RRset: `add_record` adds one RR, `remove_record` deletes exactly that
//! RR, so other TXT values at the same name (another client's challenge) stay. A CNAME added
//! where other data exists is ignored by the server (RFC 2136 §3.4.2.2); the propagation check
//! then reports it missing. The TSIG secret stays
//! inside `hmac::Key`: it is not in any `Debug` output, error message or log line.

mod lookup;
pub(crate) mod open;
pub mod settings;
mod transport;
mod tsig;

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::UpdateMessage as _;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{CNAME, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

pub(crate) use self::lookup::{answer_error, find_zone_name, query};
pub use self::lookup::{find_zone, lookup_cname, lookup_txt};
pub(crate) use self::transport::deadline_after;
use self::transport::exchange;
use self::tsig::{message_tsig, unix_now, Key};
use crate::config::model::{Rfc2136Settings, SecretRef};
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

#[cfg(test)]
mod tests;
