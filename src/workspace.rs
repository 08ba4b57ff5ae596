//! The workspace on disk: reading configuration files and resolving where keys live.
//!
//! The only place configuration text is read from the file system; `config` itself is pure.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::{self, Config, Diagnostic, Source};

/// Largest configuration file read, unless `CERTFORM_MAX_CONFIG_BYTES` says otherwise.
pub const DEFAULT_MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The environment variable that overrides `DEFAULT_MAX_CONFIG_BYTES` (a number of bytes).
pub const MAX_CONFIG_BYTES_VAR: &str = "CERTFORM_MAX_CONFIG_BYTES";

/// Why a workspace could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read configuration `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration `{path}` is {what}, not a regular file")]
    NotAFile { path: PathBuf, what: &'static str },
    #[error("configuration `{path}` is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{MAX_CONFIG_BYTES_VAR}` must be a number of bytes, found `{0}`")]
    BadLimit(String),
    #[error("no configuration files (`*.toml`, `*.yaml`) in `{0}`")]
    Empty(PathBuf),
    #[error("configuration is invalid ({} problem{})", .0.len(), if .0.len() == 1 { "" } else { "s" })]
    Invalid(Vec<Diagnostic>),
}

/// The size limit of one configuration file: `CERTFORM_MAX_CONFIG_BYTES`, else 64 MiB.
pub fn max_config_bytes() -> Result<u64, Error> {
    match std::env::var(MAX_CONFIG_BYTES_VAR) {
        Ok(text) if !text.trim().is_empty() => text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|limit| *limit > 0)
            .ok_or(Error::BadLimit(text)),
        _ => Ok(DEFAULT_MAX_CONFIG_BYTES),
    }
}

/// What a file that is not a regular file is, for messages.
fn file_kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;

    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a named pipe (FIFO)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Read one configuration file: a regular file of at most `limit` bytes, or an error. Never
/// blocks on a FIFO and never reads an endless device: the type is checked before opening,
/// the open does not wait (`O_NONBLOCK`), the opened file is checked again, and at most
/// `limit + 1` bytes are read.
fn read_file(file: &Path, limit: u64) -> Result<Source, Error> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let read_error = |source| Error::Read {
        path: file.to_path_buf(),
        source,
    };
    let not_regular = |file_type| Error::NotAFile {
        path: file.to_path_buf(),
        what: file_kind(file_type),
    };
    let metadata = std::fs::metadata(file).map_err(read_error)?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let too_large = || Error::TooLarge {
        path: file.to_path_buf(),
        limit,
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(file)
        .map_err(read_error)?;
    // The path may have been swapped between the check and the open: check what was opened.
    let metadata = opened.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(not_regular(metadata.file_type()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    opened
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    let text = String::from_utf8(bytes)
        .map_err(|error| read_error(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    Ok(Source {
        path: file.to_path_buf(),
        text,
    })
}

/// Read a configuration file, or every `*.toml`/`*.yaml`/`*.yml` file of a directory (not
/// recursive), sorted by name. Only regular files are read, each at most
/// `CERTFORM_MAX_CONFIG_BYTES` (default 64 MiB); a config-named entry of a directory that is
/// not a regular file (a FIFO, a socket, a directory called `x.toml`) is an error, not skipped.
pub fn read_sources(path: &Path) -> Result<Vec<Source>, Error> {
    let limit = max_config_bytes()?;
    let absolute = std::path::absolute(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let metadata = std::fs::metadata(&absolute).map_err(|source| Error::Read {
        path: absolute.clone(),
        source,
    })?;
    if !metadata.is_dir() {
        return Ok(vec![read_file(&absolute, limit)?]);
    }
    let entries = std::fs::read_dir(&absolute).map_err(|source| Error::Read {
        path: absolute.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "yaml" | "yml")
            )
        })
        // A dangling symlink (an editor's `.#certform.toml` lock) is not a configuration file.
        .filter(|p| {
            !std::fs::metadata(p).is_err_and(|error| error.kind() == std::io::ErrorKind::NotFound)
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Empty(absolute));
    }
    files.iter().map(|f| read_file(f, limit)).collect()
}

/// Read and validate the configuration at `path`.
pub fn load_config(path: &Path) -> Result<Config, Error> {
    let sources = read_sources(path)?;
    let config = config::load(&sources);
    crate::memory::release_freed();
    config.map_err(Error::Invalid)
}

/// The configuration files at `path` as (file name, text), sorted: what a saved plan's
/// fingerprint digests, independent of where the repository is checked out.
pub fn config_files(path: &Path) -> Result<Vec<(String, String)>, Error> {
    Ok(read_sources(path)?
        .into_iter()
        .map(|source| {
            let name = source
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, source.text)
        })
        .collect())
}

/// Where private keys live: `state.keys_dir`, or by default a directory outside every
/// repository, `$XDG_DATA_HOME/certform/keys/<digest of the state repo path>`.
pub fn keys_dir(config: &Config) -> PathBuf {
    if let Some(dir) = &config.state.keys_dir {
        return dir.clone();
    }
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    let mut hasher = Sha256::new();
    hasher.update(config.state.repo.to_string_lossy().as_bytes());
    let digest = hex::encode(hasher.finalize());
    data_home.join("certform").join("keys").join(&digest[..16])
}

/// A loaded workspace: configuration, where state and keys live, and the run's clock.
pub struct Workspace {
    pub config: std::sync::Arc<Config>,
    pub keys_dir: PathBuf,
    pub now: time::OffsetDateTime,
}

/// The inputs and result of one plan.
pub struct Planned {
    pub state: crate::state::State,
    pub observed: crate::observed::Observed,
    pub plan: crate::plan::Plan,
}

/// Failure while planning or applying, outside the executor's per-certificate errors.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Workspace(#[from] Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("cannot open CA account")]
    Ca(#[from] crate::ca::CaError),
    #[error("cannot open DNS provider")]
    Dns(#[from] crate::dns::DnsError),
    #[error(transparent)]
    Apply(#[from] crate::apply::Error),
    #[error(transparent)]
    Selection(#[from] crate::plan::UnknownName),
    #[error(transparent)]
    SavedPlan(#[from] crate::apply::saved::Refusal),
}

impl Planned {
    /// The fingerprint of this plan's inputs (see `apply::saved`); `files` as
    /// `config_files` reads them.
    pub fn fingerprint(
        &self,
        files: &[(String, String)],
        config: &Config,
    ) -> crate::apply::saved::Fingerprint {
        crate::apply::saved::Fingerprint::compute(files, config, &self.state, &self.observed)
    }
}

/// The state read while the configuration that names it was still being validated (see
/// `Workspace::load_reading_state`); used only if the configuration, once valid, names the
/// same state.
pub struct EarlyState {
    settings: config::StateSettings,
    loaded: Result<(crate::state::State, Option<crate::state::CacheWrite>), crate::state::Error>,
    /// The repository's git directory, when it opened.
    git_dir: Option<PathBuf>,
}

/// Read the state at `settings` without writing anything, as `read_state` would; `None`
/// when the repository has no git directory yet (opening it would create one: left to the
/// validated path).
fn read_state_early(settings: &config::StateSettings) -> Option<EarlyState> {
    if !settings.repo.join(".git").exists() {
        return None;
    }
    let mut git_dir = None;
    let loaded = crate::state::GitStore::open(settings).and_then(|store| {
        git_dir = Some(store.git_dir().to_path_buf());
        store.load_deferring_cache()
    });
    Some(EarlyState {
        settings: settings.clone(),
        loaded,
        git_dir,
    })
}

impl Workspace {
    /// Load and validate the configuration at `path`; nothing is written.
    pub fn load(path: &Path, now: time::OffsetDateTime) -> Result<Self, Error> {
        Self::finish_load(load_config(path)?, now)
    }

    /// `load`, reading the state meanwhile: as soon as the configuration's `[state]` is known
    /// and valid, on a thread of its own, while the certificates are validated (at 10,000
    /// certificates the two take about as long). Nothing is written until `take_state`, and
    /// only when the configuration is valid and names that state. The configuration's parse
    /// and the state are in memory at once (~10 MB more peak at 10,000 certificates than one
    /// after the other), for ~0.1 s less.
    pub fn load_reading_state(
        path: &Path,
        now: time::OffsetDateTime,
    ) -> Result<(Self, Option<EarlyState>), Error> {
        let sources = read_sources(path)?;
        let (config, early) = std::thread::scope(|scope| {
            let mut started = None;
            let config = config::load_with(&sources, &mut |settings| {
                if started.is_none() {
                    // The parse's working memory (the tree is built) goes back before the state
                    // read adds its own.
                    crate::memory::release_freed();
                    let settings = settings.clone();
                    started = Some(scope.spawn(move || read_state_early(&settings)));
                }
            });
            crate::memory::release_freed();
            // A read that panicked is read again on the validated path.
            let early = started.and_then(|handle| handle.join().ok().flatten());
            (config, early)
        });
        let workspace = Self::finish_load(config.map_err(Error::Invalid)?, now)?;
        Ok((workspace, early))
    }

    /// The state: `early`'s when it read the state this configuration names (its parsed-state
    /// cache written now), else read now.
    pub fn take_state(&self, early: Option<EarlyState>) -> Result<crate::state::State, RunError> {
        match early {
            Some(early) if early.settings == self.config.state => {
                let (state, write) = early.loaded?;
                if let Some(write) = write {
                    write.write();
                }
                // What the read freed (its buffers, a new cache's text) goes back now.
                crate::memory::release_freed();
                Ok(state)
            }
            _ => self.read_state(),
        }
    }

    /// `take_state` for `plan`, starting the check cache's read in the background (refresh
    /// looks files up in it); without an early read, `read_state_for_plan` (a missing
    /// repository is no state, and is not created).
    pub fn take_state_for_plan(
        &self,
        early: Option<EarlyState>,
    ) -> Result<crate::state::State, RunError> {
        match early {
            Some(early) if early.settings == self.config.state => {
                // The check cache (~13 MB at 10,000 certificates) is read in the background
                // from here, while the state is handed over and refresh starts: read together
                // with the state, during the validation, it came on top of the validation's
                // peak (`plan` at 10,000: 94-114 MB, now 92-96 MB, in the same time).
                if let Some(git_dir) = &early.git_dir {
                    crate::check_cache::prefetch(git_dir);
                }
                self.take_state(Some(early))
            }
            _ => self.read_state_for_plan(),
        }
    }

    fn finish_load(mut config: Config, now: time::OffsetDateTime) -> Result<Self, Error> {
        // Lifetimes against the CA's limits on the run's date (`CERTFORM_NOW` in tests).
        let lifetimes =
            config::lifetime::check(&config, now.to_offset(time::UtcOffset::UTC).date());
        if !lifetimes.errors.is_empty() {
            return Err(Error::Invalid(lifetimes.errors));
        }
        config.warnings.extend(lifetimes.warnings);
        let keys_dir = keys_dir(&config);
        Ok(Self {
            config: std::sync::Arc::new(config),
            keys_dir,
            now,
        })
    }

    /// `<repo>/<dir>`: certform's part of the state repository (and, with `keys = "age"`,
    /// of its `keys/`).
    pub fn state_root(&self) -> PathBuf {
        self.config.state.root()
    }

    /// The key store `[state] keys` names; `store` records what it writes for the state
    /// commit (`None`: read-only, for plan and status).
    pub fn key_store(
        &self,
        store: Option<std::sync::Arc<dyn crate::state::StateStore>>,
    ) -> crate::keys::KeyStore {
        crate::keys::KeyStore::configured(&self.config, &self.keys_dir, &self.state_root(), store)
    }

    /// Refuse a `keys_dir` inside a git work tree that does not ignore it.
    pub fn check_keys_dir(&self) -> Result<(), RunError> {
        crate::state::check_keys_dir_outside_git(&self.keys_dir)?;
        Ok(())
    }

    /// Read state without creating anything: a missing state repo is an empty state.
    pub fn read_state(&self) -> Result<crate::state::State, RunError> {
        if !self.config.state.repo.exists() {
            return Ok(crate::state::State::default());
        }
        let store = crate::state::GitStore::open(&self.config.state)?;
        Ok(crate::state::StateStore::load(&store)?)
    }

    /// `read_state` for a plan: the check cache the plan reads next (`check_cache::prefetch`)
    /// is read in the background meanwhile.
    pub fn read_state_for_plan(&self) -> Result<crate::state::State, RunError> {
        if !self.config.state.repo.exists() {
            return Ok(crate::state::State::default());
        }
        let store = crate::state::GitStore::open(&self.config.state)?;
        crate::check_cache::prefetch(store.git_dir());
        Ok(crate::state::StateStore::load(&store)?)
    }

    /// Capabilities of every configured CA, for the planner; an account's
    /// `max_orders_per_run` replaces its kind's default.
    pub fn capabilities(&self) -> std::collections::BTreeMap<String, crate::ca::Capabilities> {
        self.config
            .cas
            .iter()
            .map(|(name, ca)| {
                let mut capabilities = crate::ca::capabilities_of(&ca.kind);
                if let Some(budget) = ca.max_orders_per_run {
                    capabilities.max_orders_per_run = Some(budget);
                }
                (name.clone(), capabilities)
            })
            .collect()
    }

    /// Refresh what the CAs and deploy targets hold for `state`, then plan.
    pub async fn plan(
        &self,
        mut state: crate::state::State,
        accounts: &crate::ca::Accounts,
        selection: &crate::plan::Selection,
    ) -> Planned {
        // Deploy records an older certform keyed by absolute path, under today's ids.
        state.migrate_deploy_ids(&self.config.certificates);
        // `--target`: the other certificates are neither refreshed nor planned, on both sides
        // (config and state), so none of them looks removed.
        let restricted;
        let config: &Config = if selection.targets.is_empty() {
            &self.config
        } else {
            let mut config = (*self.config).clone();
            config
                .certificates
                .retain(|name, _| selection.includes(name));
            state
                .certificates
                .retain(|name, _| selection.includes(name));
            restricted = config;
            &restricted
        };
        // A missing state repo holds no chains (and plan must not create it).
        let store = self.config.state.repo.exists().then(|| {
            crate::state::GitStore::open(&self.config.state).map_err(|error| error.to_string())
        });
        // Read only when its stat data changed since its leaf was recorded (`check_cache`).
        let read_chain = |name: &str| match &store {
            Some(Ok(store)) => {
                let read = || {
                    crate::state::StateStore::read_chain(store, name)
                        .map_err(|error| error.to_string())
                };
                match store.chain_file(name) {
                    Ok(path) => crate::check_cache::chain_at(&path, read),
                    Err(_) => read().map(|text| text.map(crate::check_cache::Chain::Text)),
                }
            }
            Some(Err(error)) => Err(error.clone()),
            None => Ok(None),
        };
        // Chains, keys and deployed files already checked in an earlier run are not parsed or
        // hashed again (`check_cache`, kept in the state repository's git directory).
        crate::check_cache::begin(match &store {
            Some(Ok(store)) => Some(store.git_dir()),
            _ => None,
        });
        let mut observed =
            crate::refresh::refresh(config, &state, &read_chain, accounts, self.now).await;
        // The inventory classifies against the whole state: not under `--target`.
        if selection.targets.is_empty() {
            observed.ca_inventory =
                crate::refresh::list_inventories(config, &state, accounts, self.now).await;
        }
        crate::deploy::observe_keys(
            config,
            &state,
            &self.key_store(None),
            |name| read_chain(name).ok().flatten(),
            &mut observed,
        );
        crate::check_cache::finish();
        // Refresh's reads and parses are done: their memory goes back before the planner's.
        crate::memory::release_freed();
        let capabilities = self.capabilities();
        let plan = crate::plan::plan(&crate::plan::PlanInput {
            certificates: &config.certificates,
            state: &state,
            observed: &observed,
            capabilities: &capabilities,
            replace: &selection.replace,
            now: self.now,
            thresholds: self.config.thresholds,
        });
        Planned {
            state,
            observed,
            plan,
        }
    }
}
