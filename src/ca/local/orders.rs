//! The order database: one JSON file per order under `orders/`, written atomically under the
//! CA's lock, and the order operations (place, reissue, revoke) on it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::issue::{normalise_names, random_bytes, whole_seconds};
use super::{io_error, Inner, LocalOrder, LocalOrderStatus, PreviousCertificate, LOCK_FILE};
use crate::ca::{CaError, ErrorClass, OrderRequest, RevokeOutcome};
use crate::observed::OrderView;
use crate::serial::Serial;
use crate::spec::RevocationReason;

impl Inner {
    pub(super) fn rejected(&self, message: impl Into<String>) -> CaError {
        CaError::new(
            ErrorClass::Rejected,
            format!("local CA `{}`: {}", self.name, message.into()),
        )
    }

    /// A new order in a file of its own, created under a fresh id without the database's
    /// lock (a hard link never replaces a file, so an id taken meanwhile is just drawn again):
    /// orders placed at once write and fsync in parallel.
    pub(super) fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        let leaf = self.sign(request)?;
        let mut order = LocalOrder {
            order_id: self.new_order_id()?,
            tag: request.tag.clone(),
            status: LocalOrderStatus::Issued,
            common_name: request.common_name.clone(),
            sans: normalise_names(&request.sans),
            serial: leaf.serial,
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            chain_pem: leaf.chain_pem,
            certificate_id: leaf.certificate_id,
            created: whole_seconds(request.now),
            renewal_of: request.renewal_of.clone(),
            revocation_reason: None,
            revoked_at: None,
            previous_certificates: Vec::new(),
        };
        loop {
            let path = self.order_path(&order.order_id);
            match crate::atomic_file::write_new(&path, &self.encode(&order)?, 0o600) {
                Ok(()) => return Ok(order.view()),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    order.order_id = self.new_order_id()?;
                }
                Err(error) => return Err(io_error(&self.name, "write", &path, error)),
            }
        }
    }

    pub(super) fn reissue(
        &self,
        order_id: &str,
        request: &OrderRequest,
    ) -> Result<OrderView, CaError> {
        // Check first so a bad order id is reported before any signing work.
        self.load_existing(order_id)?;
        let leaf = self.sign(request)?;
        self.with_lock(|| {
            let mut order = self.load_existing(order_id)?;
            match order.status {
                LocalOrderStatus::Issued => {}
                LocalOrderStatus::Revoked => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` is revoked and cannot be reissued"
                    )))
                }
                LocalOrderStatus::Canceled => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` is canceled and cannot be reissued"
                    )))
                }
            }
            order.previous_certificates.push(PreviousCertificate {
                certificate_id: order.certificate_id.clone(),
                serial: order.serial.clone(),
                tag: order.tag.clone(),
                not_after: order.not_after,
                replaced_at: whole_seconds(request.now),
            });
            order.tag = request.tag.clone();
            order.common_name = request.common_name.clone();
            order.sans = normalise_names(&request.sans);
            order.serial = leaf.serial;
            order.not_before = leaf.not_before;
            order.not_after = leaf.not_after;
            order.chain_pem = leaf.chain_pem;
            order.certificate_id = leaf.certificate_id;
            self.store(&order)?;
            Ok(order.view())
        })
    }

    pub(super) fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        self.with_lock(|| {
            let mut order = self.load_existing(order_id)?;
            match order.status {
                LocalOrderStatus::Issued => {}
                // Asked again for the same certificate (a run that died before recording the
                // revocation): done, as at the other CAs.
                LocalOrderStatus::Revoked if *serial == order.serial => {
                    return Ok(RevokeOutcome::Revoked)
                }
                LocalOrderStatus::Revoked => {
                    return Err(self.rejected(format!("order `{order_id}` is already revoked")))
                }
                LocalOrderStatus::Canceled => {
                    return Err(self.rejected(format!(
                        "order `{order_id}` was canceled; there is nothing to revoke"
                    )))
                }
            }
            if *serial != order.serial {
                let replaced = order
                    .previous_certificates
                    .iter()
                    .any(|previous| previous.serial == *serial);
                let detail = if replaced {
                    "was replaced by a reissue; only the current certificate can be revoked"
                } else {
                    "does not belong to this order"
                };
                return Err(
                    self.rejected(format!("serial `{serial}` of order `{order_id}` {detail}"))
                );
            }
            order.status = LocalOrderStatus::Revoked;
            order.revocation_reason = Some(reason);
            order.revoked_at = Some(whole_seconds(OffsetDateTime::now_utc()));
            self.store(&order)?;
            Ok(RevokeOutcome::Revoked)
        })
    }

    /// Run `work` holding the in-process mutex and the database's file lock.
    fn with_lock<T>(&self, work: impl FnOnce() -> Result<T, CaError>) -> Result<T, CaError> {
        // A poisoned mutex only means another thread panicked; the files are still consistent
        // because every write is atomic.
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock_path = self.orders_dir.join(LOCK_FILE);
        let _file_lock = crate::atomic_file::FileLock::acquire(&lock_path)
            .map_err(|error| io_error(&self.name, "lock", &lock_path, error))?;
        work()
    }

    fn new_order_id(&self) -> Result<String, CaError> {
        loop {
            let order_id = format!("lo-{}", hex::encode(random_bytes::<6>()?));
            if !self.order_path(&order_id).exists() {
                return Ok(order_id);
            }
        }
    }

    fn order_path(&self, order_id: &str) -> PathBuf {
        self.orders_dir.join(format!("{order_id}.json"))
    }

    fn store(&self, order: &LocalOrder) -> Result<(), CaError> {
        let path = self.order_path(&order.order_id);
        crate::atomic_file::write(&path, &self.encode(order)?, 0o600)
            .map_err(|error| io_error(&self.name, "write", &path, error))
    }

    /// An order's file: pretty JSON and a newline.
    fn encode(&self, order: &LocalOrder) -> Result<Vec<u8>, CaError> {
        let mut json = serde_json::to_vec_pretty(order).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!("failed to encode order `{}`", order.order_id),
            )
            .with_source(error)
        })?;
        json.push(b'\n');
        Ok(json)
    }

    /// Load an order the caller named; unknown (or malformed) ids are `Rejected`.
    pub(super) fn load_existing(&self, order_id: &str) -> Result<LocalOrder, CaError> {
        if !is_order_id(order_id) {
            return Err(self.rejected(format!("no such order `{order_id}`")));
        }
        let path = self.order_path(order_id);
        match fs::read(&path) {
            Ok(bytes) => self.parse_order(&path, &bytes),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Err(self.rejected(format!("no such order `{order_id}`")))
            }
            Err(error) => Err(io_error(&self.name, "read", &path, error)),
        }
    }

    /// The view of order `order_id`, `None` when the database holds none by that id (or the
    /// id is not one this CA gives). The order file is read and parsed only when its stat data is not the one the check cache recorded with its view (orders
    /// are rewritten whole, so a revocation or reissue is other stat data).
    pub(super) fn find_view_by_id(&self, order_id: &str) -> Result<Option<OrderView>, CaError> {
        if !is_order_id(order_id) {
            return Ok(None);
        }
        let summary = self.summary_at(&self.order_path(order_id))?;
        Ok(summary.map(|summary| summary.view()))
    }

    /// The summary of the order file at `path` (`None` when there is none), from the check
    /// cache when the file's stat data is the one recorded with it (`o:` entries), else read
    /// and parsed, and recorded.
    fn summary_at(&self, path: &Path) -> Result<Option<OrderSummary>, CaError> {
        crate::check_cache::by_stat(
            "o:",
            path,
            || match fs::read(path) {
                Ok(bytes) => Ok(Some(bytes)),
                // Orders are never deleted; a missing file is an order this CA never gave.
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(io_error(&self.name, "read", path, error)),
            },
            |bytes| {
                let Some(bytes) = bytes else {
                    return Ok((None, None));
                };
                let summary = OrderSummary::of(&self.parse_order(path, &bytes)?);
                let entry = summary.entry();
                Ok((Some(summary), entry))
            },
            |entry| OrderSummary::parse(entry).map(Some),
        )
    }

    /// Every order's summary, sorted by id: what the inventory lists. An order file is read
    /// and parsed only when its stat data is not the one the check cache recorded with its
    /// summary (the entry `find_view_by_id` uses too, so a day without a listing keeps it).
    pub(super) fn load_summaries(&self) -> Result<Vec<OrderSummary>, CaError> {
        let mut summaries = Vec::new();
        for path in self.order_files()? {
            let summary = self.summary_at(&path)?;
            summaries.extend(summary);
        }
        summaries.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(summaries)
    }

    /// The paths of the order files (`lo-<12 hex>.json`), in directory order.
    fn order_files(&self) -> Result<Vec<PathBuf>, CaError> {
        let entries = fs::read_dir(&self.orders_dir)
            .map_err(|error| io_error(&self.name, "list", &self.orders_dir, error))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|error| io_error(&self.name, "list", &self.orders_dir, error))?;
            let file_name = entry.file_name();
            let is_order = file_name
                .to_str()
                .and_then(|name| name.strip_suffix(".json"))
                .is_some_and(is_order_id);
            if is_order {
                paths.push(entry.path());
            }
        }
        Ok(paths)
    }

    fn parse_order(&self, path: &Path, bytes: &[u8]) -> Result<LocalOrder, CaError> {
        serde_json::from_slice(bytes).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "local CA `{}`: order file `{}` is corrupt",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })
    }

    /// Every order, sorted by id (the "index" of the database is a directory scan).
    pub(super) fn load_all(&self) -> Result<Vec<LocalOrder>, CaError> {
        let mut orders = Vec::new();
        for path in self.order_files()? {
            match fs::read(&path) {
                Ok(bytes) => orders.push(self.parse_order(&path, &bytes)?),
                // Lost a race with nothing: orders are never deleted, but be tolerant.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(&self.name, "read", &path, error)),
            }
        }
        orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
        Ok(orders)
    }
}

/// What refresh and the inventory listing read of an order: its view and the names and tag
/// the listing classifies it by. Kept in the check cache (`o:` entries, by the order file's
/// stat data) as `<order id> <status> <serial> <not_after> <tag> <common name> <sans>`
/// (RFC 3339 time, sans joined by `,`, `-` for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderSummary {
    pub order_id: String,
    pub status: LocalOrderStatus,
    pub serial: Serial,
    pub not_after: OffsetDateTime,
    pub tag: String,
    pub common_name: String,
    pub sans: Vec<String>,
}

impl OrderSummary {
    pub(super) fn of(order: &LocalOrder) -> OrderSummary {
        OrderSummary {
            order_id: order.order_id.clone(),
            status: order.status,
            serial: order.serial.clone(),
            not_after: order.not_after,
            tag: order.tag.clone(),
            common_name: order.common_name.clone(),
            sans: order.sans.clone(),
        }
    }

    pub(super) fn view(&self) -> OrderView {
        OrderView {
            order_id: self.order_id.clone(),
            status: match self.status {
                LocalOrderStatus::Issued => crate::observed::OrderStatus::Issued,
                LocalOrderStatus::Revoked => crate::observed::OrderStatus::Revoked,
                LocalOrderStatus::Canceled => crate::observed::OrderStatus::Canceled,
            },
            serial: Some(self.serial.clone()),
            not_after: Some(self.not_after),
            dcv: Vec::new(),
            plan_until: None,
        }
    }

    /// The check cache entry; `None` when a part would not read back exactly (a space, an
    /// empty part, a `,` in a name: such an order is read from its file every time).
    fn entry(&self) -> Option<String> {
        let not_after = self
            .not_after
            .format(&time::format_description::well_known::Rfc3339)
            .ok()?;
        let sans = match self.sans.is_empty() {
            true => "-".to_string(),
            false => self.sans.join(","),
        };
        let parts = [
            self.order_id.as_str(),
            local_status_name(self.status),
            self.serial.as_str(),
            &not_after,
            &self.tag,
            &self.common_name,
            &sans,
        ];
        let tokens = parts
            .iter()
            .all(|part| !part.is_empty() && !part.contains(char::is_whitespace));
        let entry = parts.join(" ");
        (tokens && OrderSummary::parse(&entry).as_ref() == Some(self)).then_some(entry)
    }

    /// The summary a check cache entry records (see `entry`).
    fn parse(entry: &str) -> Option<OrderSummary> {
        let mut parts = entry.split(' ');
        let order_id = parts.next()?.to_string();
        let status = match parts.next()? {
            "issued" => LocalOrderStatus::Issued,
            "revoked" => LocalOrderStatus::Revoked,
            "canceled" => LocalOrderStatus::Canceled,
            _ => return None,
        };
        let serial = Serial::parse(parts.next()?);
        let not_after = OffsetDateTime::parse(
            parts.next()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        let tag = parts.next()?.to_string();
        let common_name = parts.next()?.to_string();
        let sans = match parts.next()? {
            "-" => Vec::new(),
            joined => joined.split(',').map(str::to_string).collect(),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(OrderSummary {
            order_id,
            status,
            serial,
            not_after,
            tag,
            common_name,
            sans,
        })
    }
}

pub(super) fn corrupt(
    name: &str,
    file: &str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> CaError {
    CaError::new(
        ErrorClass::Protocol,
        format!("local CA `{name}`: `{file}` cannot be read"),
    )
    .with_source(error)
}

pub(super) fn local_status_name(status: LocalOrderStatus) -> &'static str {
    match status {
        LocalOrderStatus::Issued => "issued",
        LocalOrderStatus::Revoked => "revoked",
        LocalOrderStatus::Canceled => "canceled",
    }
}

/// `lo-` followed by 12 lowercase hex digits (also keeps ids from naming other paths).
pub(super) fn is_order_id(order_id: &str) -> bool {
    order_id.strip_prefix("lo-").is_some_and(|rest| {
        rest.len() == 12
            && rest
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(status: LocalOrderStatus, not_after: &str, sans: &[&str]) -> OrderSummary {
        OrderSummary {
            order_id: "lo-0123456789ab".to_string(),
            status,
            serial: Serial::parse("0a1b"),
            not_after: OffsetDateTime::parse(
                not_after,
                &time::format_description::well_known::Rfc3339,
            )
            .expect("time"),
            tag: "cf-0123.abcdef".to_string(),
            common_name: "www.example.test".to_string(),
            sans: sans.iter().map(|san| san.to_string()).collect(),
        }
    }

    #[test]
    fn an_order_summary_reads_back_from_its_cache_entry_exactly() {
        for status in [
            LocalOrderStatus::Issued,
            LocalOrderStatus::Revoked,
            LocalOrderStatus::Canceled,
        ] {
            for not_after in ["2027-03-01T00:00:00Z", "2027-03-01T02:00:00.5+02:00"] {
                for sans in [&[][..], &["www.example.test", "example.test"][..]] {
                    let summary = summary(status, not_after, sans);
                    let entry = summary.entry().expect("entry");
                    let back = OrderSummary::parse(&entry).expect("reads back");
                    assert_eq!(back, summary);
                    assert_eq!(back.not_after.offset(), summary.not_after.offset());
                    assert_eq!(back.view(), summary.view());
                }
            }
        }
        // What would not read back exactly is not recorded.
        let mut spaced = summary(LocalOrderStatus::Issued, "2027-03-01T00:00:00Z", &[]);
        spaced.common_name = "www example".to_string();
        assert_eq!(spaced.entry(), None);
        let mut comma = summary(LocalOrderStatus::Issued, "2027-03-01T00:00:00Z", &["a,b"]);
        assert_eq!(comma.entry(), None);
        comma.sans = vec!["-".to_string()];
        assert_eq!(comma.entry(), None, "a san named `-` reads back as none");
        for broken in [
            "",
            "lo-1 issued 0a 2027-03-01T00:00:00Z",
            "lo-1 lost 0a 2027-03-01T00:00:00Z t cn -",
            "lo-1 issued 0a yesterday t cn -",
            "lo-1 issued 0a 2027-03-01T00:00:00Z t cn - x",
        ] {
            assert_eq!(OrderSummary::parse(broken), None, "{broken}");
        }
    }
}
