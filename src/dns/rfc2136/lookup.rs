//! Plain DNS queries: the SOA walk that finds a zone, and TXT and CNAME lookups.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::transport::exchange;
use super::{display_name, error, parse_name, rcode_name, EDNS_PAYLOAD};
use crate::dns::{DnsError, ErrorClass};

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
    lookup(
        server,
        name,
        RecordType::TXT,
        timeout,
        |_, record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        },
    )
    .await
}

/// Asks `server` for the CNAME at `name` and returns its targets (no trailing dot; at most one
/// in a sane zone). No such name, or no CNAME, is an empty list.
pub async fn lookup_cname(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, DnsError> {
    lookup(
        server,
        name,
        RecordType::CNAME,
        timeout,
        |owner, record| match &record.data {
            RData::CNAME(target) if record.name == *owner => Some(display_name(&target.0)),
            _ => None,
        },
    )
    .await
}

/// Asks `server` for the `record_type` records at `name` and returns what `value` makes of
/// each answer record (given the queried owner); no such name is an empty list.
async fn lookup(
    server: SocketAddr,
    name: &str,
    record_type: RecordType,
    timeout: Duration,
    value: impl Fn(&Name, &Record) -> Option<String>,
) -> Result<Vec<String>, DnsError> {
    let owner = parse_name(name).map_err(|reason| {
        error(
            ErrorClass::Rejected,
            format!("invalid DNS name `{name}`: {reason}"),
        )
    })?;
    let answer = query(server, &owner, record_type, timeout).await?;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer
            .answers
            .iter()
            .filter_map(|record| value(&owner, record))
            .collect()),
        code => Err(answer_error(server, &owner, record_type, code)),
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
