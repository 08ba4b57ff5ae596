//! The account's local order index (`orders/`): tag entries and certificate records, read and
//! written atomically as JSON.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CertificateRecord, Inner, TagEntry, FILE_MODE};
use crate::ca::{CaError, ErrorClass};
use crate::keys;

impl Inner {
    fn tag_path(&self, tag: &str) -> PathBuf {
        self.orders_dir
            .join(format!("{}.json", keys::sha256_hex(tag.as_bytes())))
    }

    fn record_path(&self, order_url: &str) -> PathBuf {
        self.orders_dir.join(format!(
            "cert-{}.json",
            keys::sha256_hex(order_url.as_bytes())
        ))
    }

    pub(super) fn tag_entry(&self, tag: &str) -> Result<Option<TagEntry>, CaError> {
        let path = self.tag_path(tag);
        let entry: Option<TagEntry> = self.read_json(&path)?;
        Ok(entry.filter(|entry| entry.tag == tag))
    }

    pub(super) async fn write_tag_entry(&self, entry: &TagEntry) -> Result<(), CaError> {
        self.write_json(self.tag_path(&entry.tag), entry).await
    }

    pub(super) fn read_record(
        &self,
        order_url: &str,
    ) -> Result<Option<CertificateRecord>, CaError> {
        let record: Option<CertificateRecord> = self.read_json(&self.record_path(order_url))?;
        Ok(record.filter(|record| record.order_url == order_url))
    }

    pub(super) async fn write_record(&self, record: &CertificateRecord) -> Result<(), CaError> {
        self.write_json(self.record_path(&record.order_url), record)
            .await
    }

    fn read_json<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<Option<T>, CaError> {
        let Some(bytes) =
            read_optional(path).map_err(|error| io_error(&self.name, "read", path, error))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: `{}` cannot be read",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })
    }

    /// Write atomically (fsyncs included) on a blocking thread: with many certificates in
    /// flight, fsyncs on the runtime's few worker threads would stall every other request.
    async fn write_json<T: Serialize>(&self, path: PathBuf, value: &T) -> Result<(), CaError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: cannot encode `{}`",
                    self.name,
                    path.display()
                ),
            )
            .with_source(error)
        })?;
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            crate::atomic_file::write(&target, &bytes, FILE_MODE)
        })
        .await
        .unwrap_or_else(|error| Err(io::Error::other(error)));
        written.map_err(|error| io_error(&self.name, "write", &path, error))
    }
}

pub(super) fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

pub(super) fn io_error(name: &str, action: &str, path: &Path, error: io::Error) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!(
            "ACME account `{name}`: failed to {action} `{}`",
            path.display()
        ),
    )
    .with_source(error)
}
