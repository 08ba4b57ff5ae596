//! Propagation checks for DNS validation: which servers are authoritative for a name, where a
//! CNAME chain ends, and waiting until every authoritative server answers with a TXT value or
//! a CNAME target.
//!
//! Read-only: plain DNS queries through the wire client in `rfc2136`, never an update. Works the
//! same whichever provider published the record.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::dns::rfc2136::{
    answer_error, deadline_after, display_name, find_zone_name, lookup_cname, lookup_txt,
    parse_name, query,
};
use crate::dns::{DnsError, ErrorClass, RecordData};

/// The port authoritative servers answer on.
const DNS_PORT: u16 = 53;

/// Longest CNAME chain `resolve_cname` follows.
const MAX_CNAME_HOPS: usize = 16;

/// Shortest pause between two rounds of `wait_for_txt`.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Longest a single query in `wait_for_txt` waits before the next round asks again.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Polls `servers` every `interval` until each answers `name` TXT with `value`, for at most
/// `timeout` (see `wait_for_record`).
pub async fn wait_for_txt(
    servers: &[SocketAddr],
    name: &str,
    value: &str,
    timeout: Duration,
    interval: Duration,
) -> Result<(), DnsError> {
    let data = RecordData::Txt(value.to_string());
    wait_for_record(servers, name, &data, timeout, interval).await
}

/// Polls `servers` every `interval` until each answers `name` with `data` (a TXT value among
/// the TXT records there, or the CNAME target; names compare without case or trailing dot),
/// for at most `timeout`. A server that has answered is not asked again. The error lists every
/// server that lacked the record and what it answered.
pub async fn wait_for_record(
    servers: &[SocketAddr],
    name: &str,
    data: &RecordData,
    timeout: Duration,
    interval: Duration,
) -> Result<(), DnsError> {
    let kind = data.type_name();
    let value = data.value();
    if servers.is_empty() {
        return Err(error(
            ErrorClass::Rejected,
            format!("no DNS servers to check {kind} `{name}` on"),
        ));
    }
    let deadline = deadline_after(timeout);
    // Never spin: a zero interval still leaves the servers a moment between rounds.
    let interval = interval.max(MIN_INTERVAL);
    let mut missing: BTreeMap<SocketAddr, String> = servers
        .iter()
        .map(|server| (*server, "not asked yet".to_string()))
        .collect();
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // Whole milliseconds, so error messages show round numbers.
        let per_query = Duration::from_millis(
            u64::try_from(remaining.min(MAX_QUERY_TIMEOUT).as_millis())
                .unwrap_or(1)
                .max(1),
        );
        let mut queries = JoinSet::new();
        for server in missing.keys().copied() {
            let name = name.to_string();
            let cname = matches!(data, RecordData::Cname(_));
            queries.spawn(async move {
                let answer = if cname {
                    lookup_cname(server, &name, per_query).await
                } else {
                    lookup_txt(server, &name, per_query).await
                };
                (server, answer)
            });
        }
        while let Some(joined) = queries.join_next().await {
            let Ok((server, answer)) = joined else {
                continue;
            };
            match answer {
                Ok(values) if values.iter().any(|found| matches(data, found)) => {
                    missing.remove(&server);
                }
                Ok(values) if values.is_empty() => {
                    missing.insert(server, format!("no {kind} records"));
                }
                Ok(values) => {
                    let shown = values
                        .iter()
                        .map(|found| format!("`{found}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    missing.insert(server, format!("only {shown}"));
                }
                Err(err) => {
                    missing.insert(server, err.message);
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if deadline_after(interval) >= deadline {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    let lacking = missing
        .iter()
        .map(|(server, reason)| format!("`{server}` ({reason})"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(error(
        ErrorClass::Transient,
        format!(
            "{kind} `{value}` at `{name}` not visible on {} of {} servers after {timeout:?}: {lacking}",
            missing.len(),
            servers.len()
        ),
    ))
}

/// The addresses (port 53) of the servers authoritative for `name`: the zone found by an SOA
/// walk through `resolver`, its NS names, and their A and AAAA records, sorted.
pub async fn authoritative_servers(
    resolver: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, DnsError> {
    let owner = checked_name(name)?;
    let zone = find_zone_name(resolver, &owner, timeout).await?;
    let answer = query(resolver, &zone, RecordType::NS, timeout).await?;
    if answer.metadata.response_code != ResponseCode::NoError {
        return Err(answer_error(
            resolver,
            &zone,
            RecordType::NS,
            answer.metadata.response_code,
        ));
    }
    let hosts: BTreeSet<Name> = answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::NS(host) if record.name == zone => Some(host.0.clone()),
            _ => None,
        })
        .collect();
    if hosts.is_empty() {
        return Err(error(
            ErrorClass::Rejected,
            format!(
                "zone `{}` has no NS records at `{resolver}`",
                display_name(&zone)
            ),
        ));
    }
    let mut addresses = BTreeSet::new();
    for host in &hosts {
        for record_type in [RecordType::A, RecordType::AAAA] {
            addresses.extend(host_addresses(resolver, host, record_type, timeout).await?);
        }
    }
    if addresses.is_empty() {
        let names = hosts
            .iter()
            .map(|host| format!("`{}`", display_name(host)))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(error(
            ErrorClass::Rejected,
            format!(
                "no addresses for the name servers of zone `{}` ({names}) at `{resolver}`",
                display_name(&zone)
            ),
        ));
    }
    Ok(addresses
        .into_iter()
        .map(|address| SocketAddr::new(address, DNS_PORT))
        .collect())
}

async fn host_addresses(
    resolver: SocketAddr,
    host: &Name,
    record_type: RecordType,
    timeout: Duration,
) -> Result<Vec<IpAddr>, DnsError> {
    let answer = query(resolver, host, record_type, timeout).await?;
    match answer.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(address) => Some(IpAddr::V4(address.0)),
                RData::AAAA(address) => Some(IpAddr::V6(address.0)),
                _ => None,
            })
            .collect()),
        code => Err(answer_error(resolver, host, record_type, code)),
    }
}

/// Follows the CNAME chain at `name` through `resolver` and returns where it ends (no trailing
/// dot), or `name` itself when it is no alias. `resolver` must answer for every name in the
/// chain: a recursive resolver, or an authoritative server holding all the zones involved.
pub async fn resolve_cname(
    resolver: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<String, DnsError> {
    let mut current = checked_name(name)?;
    let mut seen = vec![current.clone()];
    for _ in 0..MAX_CNAME_HOPS {
        let answer = query(resolver, &current, RecordType::CNAME, timeout).await?;
        match answer.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {}
            code => return Err(answer_error(resolver, &current, RecordType::CNAME, code)),
        }
        let target = answer.answers.iter().find_map(|record| match &record.data {
            RData::CNAME(target) if record.name == current => Some(target.0.clone()),
            _ => None,
        });
        let Some(mut target) = target else {
            return Ok(display_name(&current));
        };
        target.set_fqdn(true);
        if seen.contains(&target) {
            return Err(error(
                ErrorClass::Rejected,
                format!(
                    "CNAME loop at `{name}`: `{}` points back to `{}`",
                    display_name(&current),
                    display_name(&target)
                ),
            ));
        }
        seen.push(target.clone());
        current = target;
    }
    Err(error(
        ErrorClass::Rejected,
        format!("CNAME chain at `{name}` is longer than {MAX_CNAME_HOPS} links"),
    ))
}

/// Whether a value a server answered is `data`: TXT values exactly, CNAME targets as names.
fn matches(data: &RecordData, found: &str) -> bool {
    match data {
        RecordData::Txt(value) => found == value,
        RecordData::Cname(target) => found
            .trim_end_matches('.')
            .eq_ignore_ascii_case(target.trim_end_matches('.')),
    }
}

fn checked_name(name: &str) -> Result<Name, DnsError> {
    parse_name(name).map_err(|reason| {
        error(
            ErrorClass::Rejected,
            format!("invalid DNS name `{name}`: {reason}"),
        )
    })
}

fn error(class: ErrorClass, message: String) -> DnsError {
    DnsError { class, message }
}
