//! Saved plans: `plan --out FILE` writes one, `apply FILE` carries it out.
//!
//! A saved plan holds the planned actions and a fingerprint of the inputs they were computed
//! from: the configuration (its files, and each certificate's spec), the state (each
//! certificate's record) and the read-back refresh made (what the CAs and deploy targets
//! reported, per certificate). `apply FILE` recomputes the fingerprint from what it reads now
//! and refuses the plan, naming what moved, when it differs; otherwise it carries out exactly
//! the saved actions, never a new plan.
//!
//! The file holds names, serials, order ids and digests: no secret (secrets live in the
//! environment and are never part of a spec) and no private key. The functions here are pure;
//! reading the configuration files is the caller's.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::observed::Observed;
use crate::plan::Plan;
use crate::state::State;

/// The version of the plan document (`plan --format json`, `plan --out`). Bumped on any
/// change a reader must know about; `apply FILE` refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// The plan document: the plan, what it was made from, and by which certform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "certform plan")]
pub struct SavedPlan {
    /// The version of this document's format (currently 1).
    pub format_version: u32,
    /// The certform version that made the plan.
    pub certform_version: String,
    #[serde(flatten)]
    pub plan: Plan,
    /// Digests of the inputs the plan was made from; `apply FILE` refuses the plan when they
    /// changed.
    pub fingerprint: Fingerprint,
    /// The certificates the plan was restricted to (`--target`); empty: all.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub targets: BTreeSet<String>,
    /// The certificates the plan renews now with a new key (`--replace`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replace: BTreeSet<String>,
}

/// SHA-256 digests of a plan's inputs (lowercase hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fingerprint {
    /// The configuration files, by path relative to the configuration directory.
    pub config: String,
    /// Each configured certificate's resolved spec, by certificate name.
    pub config_certificates: BTreeMap<String, String>,
    /// Each certificate's record in state, by certificate name.
    pub state: BTreeMap<String, String>,
    /// What refresh read back for each certificate in state (the CA's view of its orders and
    /// the deploy targets' files), by certificate name.
    pub read_back: BTreeMap<String, String>,
}

/// What changed between a saved plan's inputs and the current ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Which input: `config`, `state` or `CA read-back`.
    pub input: &'static str,
    /// The certificates whose part changed (empty: only a part outside any certificate).
    pub certificates: Vec<String>,
}

/// Why a saved plan cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the saved plan is not a certform plan: {0}")]
    Unreadable(String),
    #[error(
        "the saved plan has format version {found}; this certform (version {ours}) reads version {expected}"
    )]
    FormatVersion {
        found: u32,
        expected: u32,
        ours: String,
    },
    #[error("the saved plan is stale: {}", describe(.0))]
    Stale(Vec<Moved>),
    #[error(
        "the saved plan's actions are not the ones its inputs give (the file was edited, or made by another certform): {}",
        .0.join(", ")
    )]
    Altered(Vec<String>),
}

impl Refusal {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Refusal::Stale(_) | Refusal::Altered(_) => {
                "run `certform plan --out FILE` again, review the new plan, and apply that one"
            }
            _ => "make the plan again with this certform: `certform plan --out FILE`",
        }
    }
}

fn describe(moved: &[Moved]) -> String {
    moved
        .iter()
        .map(|m| {
            if m.certificates.is_empty() {
                format!("the {} changed", m.input)
            } else {
                let names: Vec<String> = m.certificates.iter().map(|n| format!("`{n}`")).collect();
                format!("the {} of {} changed", m.input, names.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
        + " since the plan was made"
}

impl SavedPlan {
    pub fn new(plan: Plan, fingerprint: Fingerprint) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            certform_version: env!("CARGO_PKG_VERSION").to_string(),
            plan,
            fingerprint,
            targets: BTreeSet::new(),
            replace: BTreeSet::new(),
        }
    }

    /// Record the `--target`/`--replace` selection the plan was made with, so `apply FILE`
    /// replans exactly that.
    pub fn with_selection(mut self, selection: &crate::plan::Selection) -> Self {
        self.targets = selection.targets.clone();
        self.replace = selection.replace.clone();
        self
    }

    /// The selection the plan was made with.
    pub fn selection(&self) -> crate::plan::Selection {
        crate::plan::Selection {
            targets: self.targets.clone(),
            replace: self.replace.clone(),
        }
    }

    /// The document as pretty JSON, newline-terminated.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
        text.push('\n');
        text
    }

    /// Read a plan document, refusing other format versions.
    pub fn parse(text: &str) -> Result<Self, Refusal> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Refusal::Unreadable(e.to_string()))?;
        let found = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Refusal::Unreadable("no `format_version`".to_string()))?;
        if found != u64::from(FORMAT_VERSION) {
            return Err(Refusal::FormatVersion {
                found: u32::try_from(found).unwrap_or(u32::MAX),
                expected: FORMAT_VERSION,
                ours: env!("CARGO_PKG_VERSION").to_string(),
            });
        }
        serde_json::from_value(value).map_err(|e| Refusal::Unreadable(e.to_string()))
    }

    /// Refuse a plan whose actions differ from `replanned`: the plan its (unchanged) inputs
    /// give at the plan's own clock. Names the certificates whose change differs.
    pub fn check_actions(&self, replanned: &Plan) -> Result<(), Refusal> {
        let names: BTreeSet<&String> = self
            .plan
            .changes
            .iter()
            .chain(&replanned.changes)
            .map(|c| &c.certificate)
            .collect();
        let differ: Vec<String> = names
            .into_iter()
            .filter(|name| {
                let of = |plan: &'_ Plan| -> Vec<crate::plan::Change> {
                    plan.changes
                        .iter()
                        .filter(|c| &&c.certificate == name)
                        .cloned()
                        .collect()
                };
                of(&self.plan) != of(replanned)
            })
            .map(|name| format!("`{name}`"))
            .collect();
        if differ.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Altered(differ))
        }
    }

    /// Refuse the plan when `current` (the fingerprint of what is read now) differs.
    pub fn check(&self, current: &Fingerprint) -> Result<(), Refusal> {
        let moved = self.fingerprint.moved(current);
        if moved.is_empty() {
            Ok(())
        } else {
            Err(Refusal::Stale(moved))
        }
    }
}

/// The JSON Schema of the plan document (the source of `schemas/plan.schema.json`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(SavedPlan);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_else(|_| "{}".to_string());
    text.push('\n');
    text
}

impl Fingerprint {
    /// Digest the inputs of a plan. `files` are the configuration files as (path relative to
    /// the configuration directory, text).
    pub fn compute(
        files: &[(String, String)],
        config: &Config,
        state: &State,
        observed: &Observed,
    ) -> Self {
        let mut hasher = Sha256::new();
        for (path, text) in files {
            // Length-prefixed, so moving text between files changes the digest.
            hasher.update((path.len() as u64).to_be_bytes());
            hasher.update(path.as_bytes());
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
        }
        Self {
            config: hex::encode(hasher.finalize()),
            config_certificates: config
                .certificates
                .iter()
                .map(|(name, spec)| (name.clone(), digest_of(spec)))
                .collect(),
            state: state
                .certificates
                .iter()
                .map(|(name, record)| (name.clone(), digest_of(record)))
                .collect(),
            read_back: observed
                .certificates
                .iter()
                .map(|(name, seen)| (name.clone(), digest_of(seen)))
                .collect(),
        }
    }

    /// The inputs that differ between `self` (the saved plan's) and `current`.
    pub fn moved(&self, current: &Fingerprint) -> Vec<Moved> {
        let mut moved = Vec::new();
        let certificates = changed(&self.config_certificates, &current.config_certificates);
        if self.config != current.config || !certificates.is_empty() {
            moved.push(Moved {
                input: "config",
                certificates,
            });
        }
        let certificates = changed(&self.state, &current.state);
        if !certificates.is_empty() {
            moved.push(Moved {
                input: "state",
                certificates,
            });
        }
        let certificates = changed(&self.read_back, &current.read_back);
        if !certificates.is_empty() {
            moved.push(Moved {
                input: "CA read-back",
                certificates,
            });
        }
        moved
    }
}

/// Names whose digest differs, or that only one side has.
fn changed(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .cloned()
        .collect()
}

/// SHA-256 of a value's JSON, without what does not change its meaning: where in the files
/// a spec was written (`location`) and when a CA may be asked again (`next_check`, which
/// moves at every refresh).
fn digest_of(value: &impl Serialize) -> String {
    let mut json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    strip(&mut json);
    let text = serde_json::to_string(&json).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn strip(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.remove("location");
            map.remove("next_check");
            for inner in map.values_mut() {
                strip(inner);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint() -> Fingerprint {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Fingerprint {
            config: "c".into(),
            config_certificates: map(&[("api", "1"), ("web", "2")]),
            state: map(&[("web", "3")]),
            read_back: map(&[("web", "4")]),
        }
    }

    fn saved() -> SavedPlan {
        SavedPlan::new(
            Plan {
                now: time::OffsetDateTime::UNIX_EPOCH,
                changes: vec![],
                blocked: vec![],
                unchanged: vec!["web".into()],
                warnings: vec![],
                guards: vec![],
                schedule: vec![],
                at_risk: vec![],
            },
            fingerprint(),
        )
    }

    #[test]
    fn actions_other_than_the_replanned_ones_are_refused_by_certificate() {
        let change = |name: &str, action: crate::plan::Action| crate::plan::Change {
            certificate: name.into(),
            ca: "local".into(),
            action,
            reason: "r".into(),
            deploy: vec![],
            undeploy: vec![],
        };
        let mut plan = saved();
        plan.plan.changes = vec![change("a", crate::plan::Action::Deploy)];
        let mut replanned = plan.plan.clone();
        assert_eq!(plan.check_actions(&replanned), Ok(()));
        replanned
            .changes
            .push(change("b", crate::plan::Action::Forget));
        assert_eq!(
            plan.check_actions(&replanned),
            Err(Refusal::Altered(vec!["`b`".into()]))
        );
        replanned.changes = vec![change("a", crate::plan::Action::Forget)];
        assert_eq!(
            plan.check_actions(&replanned).unwrap_err().to_string(),
            "the saved plan's actions are not the ones its inputs give (the file was edited, \
             or made by another certform): `a`"
        );
    }

    #[test]
    fn the_same_inputs_pass() {
        assert_eq!(saved().check(&fingerprint()), Ok(()));
    }

    #[test]
    fn each_moved_input_is_named_with_its_certificates() {
        let mut current = fingerprint();
        current.config = "other".into();
        assert_eq!(
            saved().check(&current).unwrap_err().to_string(),
            "the saved plan is stale: the config changed since the plan was made"
        );
        let mut current = fingerprint();
        current.config_certificates.remove("api");
        current.state.insert("api".into(), "5".into());
        current.read_back.insert("web".into(), "6".into());
        let Err(Refusal::Stale(moved)) = saved().check(&current) else {
            panic!("not refused");
        };
        assert_eq!(
            moved,
            [
                Moved {
                    input: "config",
                    certificates: vec!["api".into()]
                },
                Moved {
                    input: "state",
                    certificates: vec!["api".into()]
                },
                Moved {
                    input: "CA read-back",
                    certificates: vec!["web".into()]
                },
            ]
        );
        assert_eq!(
            Refusal::Stale(moved).to_string(),
            "the saved plan is stale: the config of `api` changed; the state of `api` changed; \
             the CA read-back of `web` changed since the plan was made"
        );
    }

    #[test]
    fn the_document_round_trips_and_other_versions_are_refused() {
        let text = saved().to_json();
        assert_eq!(SavedPlan::parse(&text), Ok(saved()));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["format_version"], FORMAT_VERSION);
        assert_eq!(value["unchanged"][0], "web", "the plan is flattened in");
        let other = text.replace("\"format_version\": 1", "\"format_version\": 2");
        assert!(matches!(
            SavedPlan::parse(&other),
            Err(Refusal::FormatVersion { found: 2, .. })
        ));
        assert!(matches!(
            SavedPlan::parse("{}"),
            Err(Refusal::Unreadable(_))
        ));
    }

    #[test]
    fn digests_ignore_locations_and_retry_times_but_not_values() {
        let a = serde_json::json!({"x": 1, "location": {"line": 3}, "w": {"next_check": "t1"}});
        let b = serde_json::json!({"x": 1, "location": {"line": 9}, "w": {"next_check": "t2"}});
        let c = serde_json::json!({"x": 2, "location": {"line": 3}, "w": {"next_check": "t1"}});
        assert_eq!(digest_of(&a), digest_of(&b));
        assert_ne!(digest_of(&a), digest_of(&c));
    }

    #[test]
    fn config_files_digest_their_names_and_texts() {
        let config = Config {
            files: vec![],
            state: crate::config::StateSettings {
                repo: "state".into(),
                dir: ".".into(),
                keys_dir: None,
                push: false,
                remote: "origin".into(),
                push_auth: Default::default(),
                keys: Default::default(),
                location: Default::default(),
            },
            cas: Default::default(),
            dns: Default::default(),
            thresholds: Default::default(),
            certificates: Default::default(),
            warnings: vec![],
        };
        let of = |files: &[(&str, &str)]| {
            let files: Vec<(String, String)> = files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect();
            Fingerprint::compute(&files, &config, &State::default(), &Observed::default()).config
        };
        let base = of(&[("a.toml", "x"), ("b.toml", "y")]);
        assert_eq!(base, of(&[("a.toml", "x"), ("b.toml", "y")]));
        assert_ne!(base, of(&[("a.toml", "xy"), ("b.toml", "")]));
        assert_ne!(base, of(&[("c.toml", "x"), ("b.toml", "y")]));
        assert_ne!(base, of(&[("a.toml", "x"), ("b.toml", "z")]));
    }
}
