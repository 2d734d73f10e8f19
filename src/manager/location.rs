//! [`StorageLocation`]: where a checkpoint manager's configuration says
//! checkpoints are stored (a local directory, or an object store URL with
//! the `object-store` feature), and opening it as a
//! [`CheckpointStorage`].
//!
//! In a config file a location is one string: one that starts with a URL
//! scheme (`s3://`, `file://`, `memory://`) is a URL, anything else a path.
//! A build without the `object-store` feature refuses a URL when the config
//! is read, saying which feature it needs.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ConfigError;
use crate::storage::{CheckpointStorage, StorageError};

use super::error::ManagerError;

/// Where checkpoints are stored: a local directory, or the URL of an object
/// store (`s3://bucket/prefix`, `file:///path`, `memory://`), which needs
/// the `object-store` feature.
///
/// In a config file it is one string: one that starts with a URL scheme
/// (`s3://`) is a URL, anything else a path.
///
/// # Examples
///
/// ```
/// use steadfast::manager::StorageLocation;
///
/// let local: StorageLocation = "/var/lib/job/checkpoints".parse()?;
/// assert_eq!(local, StorageLocation::Local("/var/lib/job/checkpoints".into()));
/// assert_eq!(local.to_string(), "/var/lib/job/checkpoints");
///
/// // A URL needs the `object-store` feature; without it, it is refused.
/// match "s3://bucket/jobs/train-42".parse::<StorageLocation>() {
///     Ok(s3) => assert_eq!(s3, StorageLocation::Url("s3://bucket/jobs/train-42".into())),
///     Err(e) => assert!(e.reason().contains("object-store")),
/// }
/// # Ok::<(), steadfast::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StorageLocation {
    /// A directory of the local file system ([`LocalFsStorage`](crate::LocalFsStorage)),
    /// created if missing.
    Local(PathBuf),
    /// An object store URL (`ObjectStoreStorage::from_url`, feature
    /// `object-store`).
    Url(String),
}

impl StorageLocation {
    /// Checks the location: a path that is not empty; a URL only in a build
    /// with the `object-store` feature, and one that parses.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] on field `checkpoint_storage`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::StorageLocation;
    /// assert!(StorageLocation::Local("ckpt".into()).validate().is_ok());
    /// assert_eq!(StorageLocation::Local("".into()).validate().unwrap_err().field(), "checkpoint_storage");
    /// // Without the object-store feature, every URL is refused, saying so.
    /// let url = StorageLocation::Url("s3://bucket/run".into()).validate();
    /// assert_eq!(url.is_ok(), cfg!(feature = "object-store"));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            StorageLocation::Local(path) if path.as_os_str().is_empty() => Err(ConfigError::new(
                "checkpoint_storage",
                "the storage directory is empty",
            )),
            StorageLocation::Local(_) => Ok(()),
            StorageLocation::Url(url) => check_url(url),
        }
    }

    /// Opens the storage: a [`LocalFsStorage`](crate::LocalFsStorage) for a
    /// path (the directory created if missing), an `ObjectStoreStorage` for
    /// a URL (feature `object-store`), whose options (credentials, region,
    /// endpoint) come from the environment variables that start with
    /// `AWS_`, `GOOGLE_` or `AZURE_` (`AWS_REGION`, `AWS_ENDPOINT`, ...).
    /// The blocking work (creating a directory) runs on tokio's blocking
    /// pool.
    ///
    /// # Errors
    ///
    /// - [`ManagerError::Config`] for a location [`validate`](Self::validate)
    ///   refuses (a URL in a build without the `object-store` feature);
    /// - [`ManagerError::StorageOpen`] when the storage cannot be opened (a
    ///   directory that cannot be created, a URL of an unsupported scheme).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::StorageLocation;
    /// use steadfast::storage::Bytes;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let storage = StorageLocation::Local(dir.path().join("ckpt")).open().await?;
    /// storage.put("run-1/a", Bytes::from_static(b"state")).await?;
    /// assert!(dir.path().join("ckpt/run-1/a").exists());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(&self) -> Result<Arc<dyn CheckpointStorage>, ManagerError> {
        self.validate()?;
        let location = self.clone();
        let opened = tokio::task::spawn_blocking(move || location.open_blocking())
            .await
            .map_err(|e| ManagerError::StorageOpen {
                location: self.to_string(),
                source: StorageError::Io {
                    key: self.to_string(),
                    operation: "open",
                    source: std::io::Error::other(format!("the opening task failed: {e}")),
                },
            })?;
        opened.map_err(|source| ManagerError::StorageOpen {
            location: self.to_string(),
            source,
        })
    }

    /// Builds the storage, doing blocking I/O.
    fn open_blocking(&self) -> Result<Arc<dyn CheckpointStorage>, StorageError> {
        match self {
            StorageLocation::Local(path) => {
                Ok(Arc::new(crate::storage::LocalFsStorage::new(path)?))
            }
            #[cfg(feature = "object-store")]
            StorageLocation::Url(url) => {
                let options = std::env::vars().filter(|(key, _)| {
                    ["AWS_", "GOOGLE_", "AZURE_"]
                        .iter()
                        .any(|prefix| key.starts_with(prefix))
                });
                Ok(Arc::new(crate::storage::ObjectStoreStorage::from_url(
                    url, options,
                )?))
            }
            #[cfg(not(feature = "object-store"))]
            StorageLocation::Url(url) => Err(StorageError::Backend {
                key: url.clone(),
                message: NO_OBJECT_STORE.to_string(),
                transient: false,
                source: None,
            }),
        }
    }
}

/// Why a URL is refused by a build without the `object-store` feature.
#[cfg(not(feature = "object-store"))]
const NO_OBJECT_STORE: &str = "a storage URL needs steadfast's `object-store` feature, \
     which this build does not have: give a local directory, or enable the feature";

#[cfg(feature = "object-store")]
fn check_url(url: &str) -> Result<(), ConfigError> {
    let normalized = match url {
        "memory://" | "memory:" => "memory:///",
        other => other,
    };
    url::Url::parse(normalized).map(|_| ()).map_err(|e| {
        ConfigError::new(
            "checkpoint_storage",
            format!("{url:?} is not a valid storage URL: {e}"),
        )
    })
}

#[cfg(not(feature = "object-store"))]
fn check_url(url: &str) -> Result<(), ConfigError> {
    Err(ConfigError::new(
        "checkpoint_storage",
        format!("{url:?}: {NO_OBJECT_STORE}"),
    ))
}

/// Whether `text` starts with a URL scheme followed by `://` (`s3://`,
/// `file://`): a scheme of two or more characters, a letter and then
/// letters, digits, `+`, `-` or `.` (so that a Windows drive such as `C:`
/// stays a path).
fn has_url_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

impl fmt::Display for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageLocation::Local(path) => write!(f, "{}", path.display()),
            StorageLocation::Url(url) => f.write_str(url),
        }
    }
}

impl FromStr for StorageLocation {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let location = if has_url_scheme(text) {
            StorageLocation::Url(text.to_string())
        } else {
            StorageLocation::Local(PathBuf::from(text))
        };
        location.validate()?;
        Ok(location)
    }
}

impl Serialize for StorageLocation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            StorageLocation::Local(path) => match path.to_str() {
                Some(text) => serializer.serialize_str(text),
                None => Err(serde::ser::Error::custom(format!(
                    "the storage directory {} is not valid UTF-8",
                    path.display()
                ))),
            },
            StorageLocation::Url(url) => serializer.serialize_str(url),
        }
    }
}

impl<'de> Deserialize<'de> for StorageLocation {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_strings_are_paths_or_urls() {
        for (text, expected) in [
            ("/var/ckpt", StorageLocation::Local("/var/ckpt".into())),
            (
                "relative/dir",
                StorageLocation::Local("relative/dir".into()),
            ),
            (r"C:\ckpt", StorageLocation::Local(r"C:\ckpt".into())),
            ("C://ckpt", StorageLocation::Local("C://ckpt".into())),
            ("weird:name", StorageLocation::Local("weird:name".into())),
            ("1s3://x", StorageLocation::Local("1s3://x".into())),
        ] {
            assert_eq!(text.parse::<StorageLocation>().unwrap(), expected, "{text}");
        }
        for url in ["s3://bucket/prefix", "file:///tmp/x", "memory://", "gs://b"] {
            assert!(has_url_scheme(url), "{url}");
        }
    }

    #[cfg(not(feature = "object-store"))]
    #[test]
    fn a_url_needs_the_object_store_feature() {
        let err = "s3://bucket/run".parse::<StorageLocation>().unwrap_err();
        assert_eq!(err.field(), "checkpoint_storage");
        assert!(err.reason().contains("object-store"), "{err}");
    }

    #[cfg(not(feature = "object-store"))]
    #[tokio::test]
    async fn opening_a_url_without_the_feature_says_why() {
        let err = StorageLocation::Url("s3://bucket/run".into())
            .open()
            .await
            .err()
            .unwrap();
        assert!(matches!(&err, ManagerError::Config(e) if e.field() == "checkpoint_storage"));
        assert!(err.to_string().contains("object-store"), "{err}");
    }

    #[cfg(feature = "object-store")]
    #[test]
    fn urls_are_checked_with_the_feature() {
        assert!(StorageLocation::Url("s3://bucket/run".into())
            .validate()
            .is_ok());
        assert!(StorageLocation::Url("s3://[bad/x".into())
            .validate()
            .is_err());
    }

    #[cfg(feature = "object-store")]
    #[tokio::test]
    async fn opens_urls_with_the_feature() {
        use crate::storage::Bytes;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/ckpt", dir.path().display());
        let storage = StorageLocation::Url(url).open().await.unwrap();
        storage
            .put("run/a", Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(dir.path().join("ckpt/run/a").exists());
        let memory = StorageLocation::Url("memory://".into())
            .open()
            .await
            .unwrap();
        memory.put("a", Bytes::from_static(b"x")).await.unwrap();
        let err = StorageLocation::Url("ftp://host/x".into())
            .open()
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ManagerError::StorageOpen { .. }), "{err}");
    }

    #[tokio::test]
    async fn opens_a_local_directory() {
        use crate::storage::Bytes;
        let dir = tempfile::tempdir().unwrap();
        let location: StorageLocation = dir.path().join("a/b").to_str().unwrap().parse().unwrap();
        let storage = location.open().await.unwrap();
        storage.put("k", Bytes::from_static(b"v")).await.unwrap();
        assert!(dir.path().join("a/b/k").exists());

        // A file where the directory should be.
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = StorageLocation::Local(file.join("sub"))
            .open()
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ManagerError::StorageOpen { .. }), "{err}");
    }
}
