//! Operations on state outside a plan (`certform state list|show|rm|mv`): list and show
//! entries, forget one, rename one. No CA is contacted and no configuration is consulted.
//!
//! Writing operations run on a store whose lock the caller holds and commit only the files
//! they wrote. `rename` is crash-safe: the private keys get their new names (hard links)
//! before state names them, and lose the old ones only after the commit, so a kill at any
//! point leaves every key reachable; rerunning the same `state mv` finishes a killed one.

use serde::Serialize;

use crate::keys::{KeyError, KeyStore};
use crate::state::{CertificateState, CertificateStatus, HistoryEntry, State, StateStore};

/// Why a state operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate `{name}` is not in state")]
    NotInState {
        name: String,
        /// "did you mean `x`?" when a recorded name is close.
        suggestion: Option<String>,
    },
    #[error("certificate `{name}` has an order in flight ({what}); forgetting it would lose track of that order")]
    InFlight { name: String, what: String },
    #[error("certificate `{name}` is already in state")]
    Exists { name: String },
    #[error("`{name}` is not a valid certificate name (`[a-z0-9][a-z0-9_-]{{0,62}}`)")]
    InvalidName { name: String },
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("cannot move the private keys")]
    Keys(#[source] KeyError),
}

impl Error {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotInState { suggestion, .. } => suggestion.clone(),
            Error::InFlight { name, .. } => Some(format!(
                "let `certform apply` finish or cancel the order first, or run `certform state rm {name} --force` to forget it anyway"
            )),
            Error::Exists { .. } => Some(
                "remove or rename that entry first (`certform state rm`, `certform state mv`)"
                    .to_string(),
            ),
            _ => None,
        }
    }
}

/// One line of `state list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub name: String,
    pub ca: String,
    /// `new`, `issued`, `revoked`, `canceled`, with `(… in flight)` when an order is open.
    pub status: String,
    pub order_id: Option<String>,
}

/// Every entry of state, sorted by name.
pub fn list(state: &State) -> Vec<Entry> {
    state
        .certificates
        .values()
        .map(|certificate| Entry {
            name: certificate.name.clone(),
            ca: certificate.ca.clone(),
            status: describe_status(certificate),
            order_id: certificate
                .intent
                .as_ref()
                .and_then(|intent| intent.order_id.clone())
                .or_else(|| certificate.order_id.clone()),
        })
        .collect()
}

/// The status of an entry in words: `issued`, `new (create in flight)`, ...
pub fn describe_status(certificate: &CertificateState) -> String {
    let status = match certificate.status {
        CertificateStatus::New => "new",
        CertificateStatus::Issued => "issued",
        CertificateStatus::Revoked => "revoked",
        CertificateStatus::Canceled => "canceled",
    };
    match &certificate.intent {
        Some(intent) => format!("{status} ({} in flight)", intent.kind.as_str()),
        None => status.to_string(),
    }
}

/// The entry `name`, or an error with a did-you-mean.
pub fn show<'a>(state: &'a State, name: &str) -> Result<&'a CertificateState, Error> {
    state
        .certificates
        .get(name)
        .ok_or_else(|| not_in_state(state, name))
}

fn not_in_state(state: &State, name: &str) -> Error {
    let names: Vec<&str> = state.certificates.keys().map(String::as_str).collect();
    Error::NotInState {
        name: name.to_string(),
        suggestion: crate::config::suggestion(name, &names),
    }
}

/// Whether `name` may be refused because of an order in flight, and what that order is.
fn in_flight(certificate: &CertificateState) -> Option<String> {
    let intent = certificate.intent.as_ref()?;
    Some(match &intent.order_id {
        Some(order) => format!("{} order {order} at `{}`", intent.kind.as_str(), intent.ca),
        None => format!("{} being placed at `{}`", intent.kind.as_str(), intent.ca),
    })
}

/// Check that `name` can be forgotten: it is in state, and no order is in flight unless
/// `force`. Nothing is written.
pub fn check_remove<'a>(
    state: &'a State,
    name: &str,
    force: bool,
) -> Result<&'a CertificateState, Error> {
    let certificate = show(state, name)?;
    if let (Some(what), false) = (in_flight(certificate), force) {
        return Err(Error::InFlight {
            name: name.to_string(),
            what,
        });
    }
    Ok(certificate)
}

/// Forget `name`: remove its state file and chain (the caller commits). The CA keeps the
/// certificate and the keys stay in keys_dir; nothing is revoked or cancelled.
pub fn remove(
    store: &dyn StateStore,
    state: &mut State,
    name: &str,
    force: bool,
) -> Result<CertificateState, Error> {
    let removed = check_remove(state, name, force)?.clone();
    store.remove_certificate(name)?;
    state.certificates.remove(name);
    Ok(removed)
}

/// Check that `old` can be renamed to `new`: `old` is in state, `new` is a valid name and
/// not in state (unless it is a killed rename of `old` to `new`: same id). Nothing is written.
pub fn check_rename(state: &State, old: &str, new: &str) -> Result<(), Error> {
    if crate::keys::certificate_key_path(new, "create-00000000").is_err() {
        return Err(Error::InvalidName {
            name: new.to_string(),
        });
    }
    let certificate = show(state, old)?;
    match state.certificates.get(new) {
        Some(existing) if existing.id != certificate.id || old == new => Err(Error::Exists {
            name: new.to_string(),
        }),
        _ => Ok(()),
    }
}

/// What `rename` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// Key ids now kept under the new name (hard links of the old files).
    pub keys: Vec<String>,
}

/// Rename `old` to `new` without a new order. In this order, so a kill never loses a key:
/// 1. every key file of `old` also gets its name under `new` (hard links, fsynced);
/// 2. the entry and its chain are written under `new`, then removed under `old`.
///
/// The caller commits, then calls `finish_rename` to drop the keys' old names. The certificate
/// keeps its id (the tag of its orders), so nothing at the CA changes.
pub fn rename(
    store: &dyn StateStore,
    keys: &KeyStore,
    state: &mut State,
    old: &str,
    new: &str,
    now: time::OffsetDateTime,
    failpoints: &crate::apply::FailPoints,
) -> Result<Renamed, Error> {
    if resumes_after_state(state, old, new) {
        // A move killed after its state change: what remains is to commit it and to give
        // the keys their new names (done already, unless killed in between).
        let key_ids = keys.certificate_key_ids(old).map_err(Error::Keys)?;
        for key_id in &key_ids {
            keys.link_certificate_key(old, new, key_id)
                .map_err(Error::Keys)?;
        }
        return Ok(Renamed { keys: key_ids });
    }
    check_rename(state, old, new)?;
    let key_ids = keys.certificate_key_ids(old).map_err(Error::Keys)?;
    for key_id in &key_ids {
        keys.link_certificate_key(old, new, key_id)
            .map_err(Error::Keys)?;
    }
    failpoints.hit("state-mv-after-keys");
    let mut moved = show(state, old)?.clone();
    moved.name = new.to_string();
    moved.history.push(HistoryEntry {
        at: now,
        action: RENAME.to_string(),
        serial: moved.serial.clone(),
        note: renamed_note(old),
    });
    if let Some(chain) = store.read_chain(old)? {
        store.save_chain(new, &chain)?;
    }
    store.save_certificate(&moved)?;
    failpoints.hit("state-mv-after-new");
    store.remove_certificate(old)?;
    state.certificates.remove(old);
    state.certificates.insert(new.to_string(), moved);
    Ok(Renamed { keys: key_ids })
}

/// Whether state already holds the result of `state mv old new` (killed before its commit or
/// before the keys lost their old names): `old` is gone and `new`'s last history line is that
/// rename.
fn resumes_after_state(state: &State, old: &str, new: &str) -> bool {
    !state.certificates.contains_key(old)
        && state.certificates.get(new).is_some_and(|moved| {
            moved
                .history
                .last()
                .is_some_and(|line| line.action == RENAME && line.note == renamed_note(old))
        })
}

const RENAME: &str = "rename";

fn renamed_note(old: &str) -> String {
    format!("renamed from `{old}` (`certform state mv`)")
}

/// After the commit of a rename: drop the old names of the keys (their new names hold them).
pub fn finish_rename(keys: &KeyStore, old: &str, renamed: &Renamed) -> Result<(), Error> {
    for key_id in &renamed.keys {
        keys.remove_certificate_key(old, key_id)
            .map_err(Error::Keys)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::state::{Intent, IntentKind};

    fn entry(name: &str, id: &str) -> CertificateState {
        let text = format!(
            "format = 1\nname = \"{name}\"\nid = \"{id}\"\nca = \"local\"\nstatus = \"issued\"\norder_id = \"o-1\"\ncommon_name = \"a.example\"\nsans = []\nkey_algorithm = \"ecdsa-p256\"\nkey_id = \"create-00112233\"\nspec_digest = \"x\"\n"
        );
        toml::from_str(&text).expect("state")
    }

    fn state(entries: &[CertificateState]) -> State {
        State {
            certificates: entries
                .iter()
                .map(|e| (e.name.clone(), e.clone()))
                .collect(),
            ..State::default()
        }
    }

    fn with_intent(mut certificate: CertificateState, order: Option<&str>) -> CertificateState {
        certificate.intent = Some(Box::new(Intent {
            kind: IntentKind::Renew,
            ca: "local".into(),
            started: time::OffsetDateTime::UNIX_EPOCH,
            tag: format!("{}.aabbccdd", certificate.id),
            key_algorithm: "ecdsa-p256".into(),
            common_name: "a.example".into(),
            sans: Vec::new(),
            spec_digest: String::new(),
            spec_fields: Default::default(),
            order_id: order.map(str::to_string),
        }));
        certificate
    }

    #[test]
    fn list_shows_the_in_flight_order() {
        let recorded = state(&[
            entry("api", "cf-1"),
            with_intent(entry("web", "cf-2"), Some("o-9")),
        ]);
        let listed = list(&recorded);
        assert_eq!(listed[0].status, "issued");
        assert_eq!(listed[0].order_id.as_deref(), Some("o-1"));
        assert_eq!(listed[1].status, "issued (renew in flight)");
        assert_eq!(listed[1].order_id.as_deref(), Some("o-9"));
    }

    #[test]
    fn an_unknown_name_suggests_a_near_one() {
        let recorded = state(&[entry("web", "cf-1")]);
        let error = show(&recorded, "wbe").expect_err("unknown");
        assert_eq!(error.hint().as_deref(), Some("did you mean `web`?"));
    }

    #[test]
    fn remove_refuses_an_order_in_flight_unless_forced() {
        let busy = state(&[with_intent(entry("web", "cf-1"), None)]);
        assert!(matches!(
            check_remove(&busy, "web", false),
            Err(Error::InFlight { .. })
        ));
        assert!(check_remove(&busy, "web", true).is_ok());
        let idle = state(&[entry("web", "cf-1")]);
        assert!(check_remove(&idle, "web", false).is_ok());
    }

    #[test]
    fn rename_refuses_a_taken_or_invalid_name_but_resumes_its_own() {
        let taken = state(&[entry("web", "cf-1"), entry("api", "cf-2")]);
        assert!(matches!(
            check_rename(&taken, "web", "api"),
            Err(Error::Exists { .. })
        ));
        assert!(matches!(
            check_rename(&taken, "web", "Web/../x"),
            Err(Error::InvalidName { .. })
        ));
        assert!(matches!(
            check_rename(&taken, "web", "web"),
            Err(Error::Exists { .. })
        ));
        assert!(matches!(
            check_rename(&taken, "nope", "www"),
            Err(Error::NotInState { .. })
        ));
        let killed = state(&[entry("web", "cf-1"), entry("www", "cf-1")]);
        assert!(check_rename(&killed, "web", "www").is_ok());
        assert!(check_rename(&taken, "web", "www").is_ok());
    }
}
