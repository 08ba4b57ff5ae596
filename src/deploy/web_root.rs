//! The web root capability of a deploy target: a directory a server publishes over HTTP, where
//! certform places a CA's HTTP validation file (ACME `/.well-known/acme-challenge/TOKEN`,
//! DigiCert's `/.well-known/pki-validation/FILE`) and removes it once the CA has looked.
//!
//! A target kind that has one returns it from `Deployer::web_root` (`files` here, `ssh` over
//! its SSH session); `dcv` uses it for any target that has one. Every path is a `WellKnownPath`:
//! checked once, it can only name a file under `web_root/.well-known/`, whatever the CA asked.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// A validation file's path below `/.well-known/`: plain segments only (no `..`, `.`, empty
/// segment, backslash or NUL), so joined to any root it stays under `root/.well-known/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WellKnownPath(String);

impl WellKnownPath {
    /// The path as a CA gives it (`/.well-known/acme-challenge/TOKEN`); `None` for any path
    /// that is not below `/.well-known/` or could leave it (a CA's answer is input, not trusted).
    pub fn from_url_path(path: &str) -> Option<Self> {
        let relative = path.strip_prefix("/.well-known/")?;
        Self::from_relative(relative)
    }

    /// A path relative to `.well-known/` (`acme-challenge/TOKEN`).
    fn from_relative(relative: &str) -> Option<Self> {
        let safe = !relative.is_empty()
            && relative.split('/').all(|part| {
                !part.is_empty() && part != "." && part != ".." && !part.contains(['\\', '\0'])
            });
        safe.then(|| Self(relative.to_string()))
    }

    /// The path relative to `.well-known/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `root/.well-known/<path>`.
    pub fn under(&self, root: &Path) -> PathBuf {
        root.join(".well-known").join(&self.0)
    }

    /// `root/.well-known/<path>` for a root on another host (`/` separated).
    pub fn under_remote(&self, root: &str) -> String {
        format!("{}/.well-known/{}", root.trim_end_matches('/'), self.0)
    }
}

impl TryFrom<String> for WellKnownPath {
    type Error = String;

    fn try_from(relative: String) -> Result<Self, String> {
        Self::from_relative(&relative)
            .ok_or_else(|| format!("`{relative}` is not a plain path below `.well-known/`"))
    }
}

impl From<WellKnownPath> for String {
    fn from(path: WellKnownPath) -> String {
        path.0
    }
}

/// Where a target's server publishes files over HTTP.
#[async_trait]
pub trait WebRoot: Send + Sync {
    /// Where a file lands, for messages: `files:www` `/srv/www/.well-known/...`.
    fn describe(&self, path: &WellKnownPath) -> String;

    /// Write `content` at `path` (mode 0644, directories created), replacing any file there.
    async fn put(&self, path: &WellKnownPath, content: &[u8]) -> Result<(), String>;

    /// Remove the file at `path`; a file already gone is fine.
    async fn remove(&self, path: &WellKnownPath) -> Result<(), String>;
}

/// A web root on this machine: a `files` target's `web_root`, or `dcv = { webroot = ... }`.
#[derive(Debug, Clone)]
pub struct LocalWebRoot {
    pub root: PathBuf,
}

#[async_trait]
impl WebRoot for LocalWebRoot {
    fn describe(&self, path: &WellKnownPath) -> String {
        path.under(&self.root).display().to_string()
    }

    async fn put(&self, path: &WellKnownPath, content: &[u8]) -> Result<(), String> {
        let file = path.under(&self.root);
        let content = content.to_vec();
        // Blocking file system calls stay off the runtime's threads.
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            crate::atomic_file::write(&file, &content, 0o644)?;
            // The temporary file's mode went through the umask: a web server must read it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
        })
        .await
        .map_err(|error| error.to_string())?;
        written.map_err(|error| error.to_string())
    }

    async fn remove(&self, path: &WellKnownPath) -> Result<(), String> {
        match std::fs::remove_file(path.under(&self.root)) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error.to_string()),
        }
    }
}

/// The web root of an `ssh` target, on its host, written over the target's SSH session.
pub struct SshWebRoot {
    pub deployer: super::ssh::SshDeployer,
    pub id: String,
    pub root: String,
}

#[async_trait]
impl WebRoot for SshWebRoot {
    fn describe(&self, path: &WellKnownPath) -> String {
        format!("{}:{}", self.id, path.under_remote(&self.root))
    }

    async fn put(&self, path: &WellKnownPath, content: &[u8]) -> Result<(), String> {
        self.deployer
            .put_file(&path.under_remote(&self.root), content)
            .await
    }

    async fn remove(&self, path: &WellKnownPath) -> Result<(), String> {
        self.deployer
            .remove_file(&path.under_remote(&self.root))
            .await
    }
}

/// The web root of `target`, when its kind has one and it is configured.
pub fn web_root_of(target: &crate::spec::DeployTarget) -> Option<Box<dyn WebRoot>> {
    super::deployer_for(target).web_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_well_known_whatever_the_ca_asks() {
        let token = WellKnownPath::from_url_path("/.well-known/acme-challenge/abc").expect("ok");
        assert_eq!(token.as_str(), "acme-challenge/abc");
        assert_eq!(
            token.under(Path::new("/var/www")),
            PathBuf::from("/var/www/.well-known/acme-challenge/abc")
        );
        assert_eq!(
            token.under_remote("/srv/www/"),
            "/srv/www/.well-known/acme-challenge/abc"
        );
        let digicert = WellKnownPath::from_url_path("/.well-known/pki-validation/fileauth.txt");
        assert_eq!(
            digicert.map(String::from).as_deref(),
            Some("pki-validation/fileauth.txt")
        );
        for bad in [
            "/.well-known/../../etc/passwd",
            "/.well-known/acme-challenge/../../x",
            "/.well-known/./x",
            "/.well-known/",
            "/.well-known//x",
            "/.well-known/a\\..\\b",
            "/.well-known/a\0b",
            "/etc/passwd",
            ".well-known/x",
            "//.well-known/x",
        ] {
            assert_eq!(WellKnownPath::from_url_path(bad), None, "{bad:?}");
        }
        assert!(WellKnownPath::try_from("../x".to_string()).is_err());
        assert!(WellKnownPath::try_from("/abs".to_string()).is_err());
    }

    #[tokio::test]
    async fn a_local_web_root_writes_0644_files_and_removes_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = LocalWebRoot {
            root: dir.path().join("www"),
        };
        let path = WellKnownPath::from_url_path("/.well-known/acme-challenge/tok").expect("ok");
        root.put(&path, b"tok.thumb").await.expect("put");
        let file = dir.path().join("www/.well-known/acme-challenge/tok");
        assert_eq!(std::fs::read(&file).expect("read"), b"tok.thumb");
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        root.remove(&path).await.expect("remove");
        assert!(!file.exists());
        root.remove(&path).await.expect("absent is fine");
    }
}
