//! [`StorageLocation`]: where a checkpoint manager's configuration says
//! checkpoints are stored (a local directory, or an object store URL with
//! the `object-store` feature), and opening it as a
//! [`CheckpointStorage`].
//!
//! In a config file a location is one string: one that starts with a URL
//! scheme (`s3://`, `file://`, `memory://`) is a URL, anything else a path.
//! A build without the `object-store` feature refuses a URL when the config
//! is read, saying which feature it needs.
//!
//! A replicated storage is a list of [`ReplicaLocation`]s (a location and
//! its failure domain), opened together as a
//! [`ReplicatedStorage`](crate::storage::ReplicatedStorage) by
//! [`CheckpointManagerConfig::open_storage`](super::CheckpointManagerConfig::open_storage).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::ConfigError;
use crate::storage::{
    CheckpointStorage, ConsistencyLevel, Replica, ReplicatedStorage, StorageError,
};

use super::config::CheckpointManagerConfig;
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

crate::serde_text::deserialize_from_str!(StorageLocation);

/// One replica of a replicated checkpoint storage: where it is, and the
/// failure domain it is in (a disk, a rack, a region).
///
/// In a config file: `{ "location": "/mnt/a/ckpt", "domain": "a" }` (the
/// domain may be left out, unless `checkpoint_geo_distributed` is set).
///
/// # Examples
///
/// ```
/// use steadfast::manager::{ReplicaLocation, StorageLocation};
///
/// let replica: ReplicaLocation =
///     serde_json::from_str(r#"{ "location": "/mnt/a/ckpt", "domain": "disk-a" }"#)?;
/// assert_eq!(replica, ReplicaLocation::new(StorageLocation::Local("/mnt/a/ckpt".into())).domain("disk-a"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ReplicaLocationRepr", into = "ReplicaLocationRepr")]
pub struct ReplicaLocation {
    /// Where the replica's objects are stored.
    pub location: StorageLocation,
    /// Its failure domain, if named.
    pub domain: Option<String>,
}

/// The serialized form of a [`ReplicaLocation`]: the location as a string,
/// parsed here so that an error names `checkpoint_replicas`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaLocationRepr {
    location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
}

impl TryFrom<ReplicaLocationRepr> for ReplicaLocation {
    type Error = ConfigError;

    fn try_from(r: ReplicaLocationRepr) -> Result<Self, ConfigError> {
        let location = r.location.parse::<StorageLocation>().map_err(|e| {
            ConfigError::new(
                "checkpoint_replicas",
                format!("location {:?}: {}", r.location, e.reason()),
            )
        })?;
        Ok(ReplicaLocation {
            location,
            domain: r.domain,
        })
    }
}

impl From<ReplicaLocation> for ReplicaLocationRepr {
    fn from(r: ReplicaLocation) -> Self {
        ReplicaLocationRepr {
            location: r.location.to_string(),
            domain: r.domain,
        }
    }
}

impl ReplicaLocation {
    /// A replica at `location`, in no named failure domain.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{ReplicaLocation, StorageLocation};
    /// let replica = ReplicaLocation::new(StorageLocation::Local("/mnt/a".into()));
    /// assert_eq!(replica.domain, None);
    /// ```
    pub fn new(location: StorageLocation) -> Self {
        ReplicaLocation {
            location,
            domain: None,
        }
    }

    /// Places the replica in failure domain `domain`.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::{ReplicaLocation, StorageLocation};
    /// let replica = ReplicaLocation::new(StorageLocation::Local("/mnt/a".into())).domain("a");
    /// assert_eq!(replica.domain.as_deref(), Some("a"));
    /// ```
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }
}

/// Checks the replication keys of a checkpoint manager's config: a
/// replication factor of at least 1; with replicas listed, exactly
/// `replication_factor` of them, each a valid location, and no
/// `checkpoint_storage` beside them; a factor above 1 needs its replicas;
/// `geo_distributed` needs replicas in distinct, named domains.
pub(super) fn validate_replication(
    replication_factor: usize,
    replicas: &[ReplicaLocation],
    geo_distributed: bool,
    storage: Option<&StorageLocation>,
) -> Result<(), ConfigError> {
    const FACTOR: &str = "checkpoint_replication_factor";
    const REPLICAS: &str = "checkpoint_replicas";
    if replication_factor == 0 {
        return Err(ConfigError::new(
            FACTOR,
            "must be at least 1 (1: no replication)",
        ));
    }
    if replicas.is_empty() {
        if replication_factor > 1 {
            return Err(ConfigError::new(
                FACTOR,
                format!(
                    "is {replication_factor}, but no replica is listed: list \
                     {replication_factor} locations in checkpoint_replicas"
                ),
            ));
        }
        if geo_distributed {
            return Err(ConfigError::new(
                "checkpoint_geo_distributed",
                "needs replicas in distinct failure domains (checkpoint_replicas)",
            ));
        }
        return Ok(());
    }
    if replicas.len() != replication_factor {
        return Err(ConfigError::new(
            FACTOR,
            format!(
                "is {replication_factor}, but {} replicas are listed in checkpoint_replicas: \
                 the two must match",
                replicas.len()
            ),
        ));
    }
    if storage.is_some() {
        return Err(ConfigError::new(
            REPLICAS,
            "cannot be set together with checkpoint_storage: the replicas are the storage",
        ));
    }
    for (i, replica) in replicas.iter().enumerate() {
        replica
            .location
            .validate()
            .map_err(|e| ConfigError::new(REPLICAS, format!("replica {i}: {}", e.reason())))?;
        if replica.domain.as_deref() == Some("") {
            return Err(ConfigError::new(
                REPLICAS,
                format!("replica {i} has an empty domain"),
            ));
        }
    }
    if geo_distributed {
        let mut seen: Vec<&str> = Vec::new();
        for (i, replica) in replicas.iter().enumerate() {
            let Some(domain) = replica.domain.as_deref() else {
                return Err(ConfigError::new(
                    "checkpoint_geo_distributed",
                    format!("replica {i} ({}) has no domain", replica.location),
                ));
            };
            if seen.contains(&domain) {
                return Err(ConfigError::new(
                    "checkpoint_geo_distributed",
                    format!("two replicas are in domain {domain:?}; each needs its own"),
                ));
            }
            seen.push(domain);
        }
    }
    Ok(())
}

impl CheckpointManagerConfig {
    /// Opens the storage the config names: a
    /// [`ReplicatedStorage`](crate::storage::ReplicatedStorage) over the
    /// [`replicas`](Self::replicas) when they are listed (each opened as
    /// [`StorageLocation::open`] does, each with its domain, at
    /// [`consistency_level`](Self::consistency_level), with distinct domains
    /// required when [`geo_distributed`](Self::geo_distributed)), the
    /// [`storage`](Self::storage) location otherwise, or `None` when the
    /// config names no storage (the manager is then given its storage).
    ///
    /// # Errors
    ///
    /// [`ManagerError::Config`] for a config that does not validate;
    /// [`ManagerError::StorageOpen`] when a location cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::manager::CheckpointManagerConfig;
    /// use steadfast::storage::Bytes;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let root = dir.path().display();
    /// let config: CheckpointManagerConfig = serde_json::from_str(&format!(r#"{{
    ///     "replication_factor": 3,
    ///     "consistency_level": "quorum",
    ///     "geo_distributed": true,
    ///     "checkpoint_replicas": [
    ///         {{ "location": "{root}/a", "domain": "disk-a" }},
    ///         {{ "location": "{root}/b", "domain": "disk-b" }},
    ///         {{ "location": "{root}/c", "domain": "disk-c" }}
    ///     ]
    /// }}"#))?;
    /// let storage = config.open_storage().await?.expect("the config names a storage");
    /// storage.put("run-1/a", Bytes::from_static(b"state")).await?;
    /// assert_eq!(storage.get("run-1/a").await?, &b"state"[..]);
    /// // Acknowledged once two of the three directories hold it.
    /// let copies = ["a", "b", "c"].iter().filter(|d| dir.path().join(d).join("run-1/a").exists()).count();
    /// assert!(copies >= 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open_storage(&self) -> Result<Option<Arc<dyn CheckpointStorage>>, ManagerError> {
        self.validate()?;
        if !self.replicas.is_empty() {
            return open_replicated(&self.replicas, self.consistency_level, self.geo_distributed)
                .await
                .map(Some);
        }
        match &self.storage {
            Some(location) => location.open().await.map(Some),
            None => Ok(None),
        }
    }
}

/// Opens every replica and builds the replicated storage over them.
async fn open_replicated(
    replicas: &[ReplicaLocation],
    consistency: ConsistencyLevel,
    geo_distributed: bool,
) -> Result<Arc<dyn CheckpointStorage>, ManagerError> {
    let mut builder = ReplicatedStorage::builder()
        .consistency(consistency)
        .geo_distributed(geo_distributed);
    for replica in replicas {
        let storage = replica.location.open().await?;
        let mut opened = Replica::new(storage);
        if let Some(domain) = &replica.domain {
            opened = opened.domain(domain.clone());
        }
        builder = builder.replica(opened);
    }
    Ok(Arc::new(builder.build()?))
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

    fn replicated(json: &str) -> Result<CheckpointManagerConfig, String> {
        serde_json::from_str::<CheckpointManagerConfig>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn the_replication_keys_deserialize_with_or_without_their_prefix() {
        let config = replicated(
            r#"{
                "replication_factor": 3,
                "consistency_level": "quorum",
                "geo_distributed": true,
                "checkpoint_replicas": [
                    { "location": "/mnt/a/ckpt", "domain": "a" },
                    { "location": "/mnt/b/ckpt", "domain": "b" },
                    { "location": "/mnt/c/ckpt", "domain": "c" }
                ]
            }"#,
        )
        .unwrap();
        assert_eq!(config.replication_factor, 3);
        assert_eq!(config.consistency_level, ConsistencyLevel::Quorum);
        assert!(config.geo_distributed);
        assert_eq!(
            config.replicas[1],
            ReplicaLocation::new(StorageLocation::Local("/mnt/b/ckpt".into())).domain("b")
        );
        let prefixed = replicated(
            r#"{
                "checkpoint_replication_factor": 2,
                "checkpoint_consistency_level": "all",
                "checkpoint_replicas": [{ "location": "/a" }, { "location": "/b" }]
            }"#,
        )
        .unwrap();
        assert_eq!(prefixed.consistency_level, ConsistencyLevel::All);
        assert_eq!(prefixed.replicas[0].domain, None);

        // Serialized under the prefixed keys, and back.
        let json = serde_json::to_string(&config).unwrap();
        assert!(
            json.contains(r#""checkpoint_replication_factor":3"#),
            "{json}"
        );
        assert!(
            json.contains(r#""checkpoint_geo_distributed":true"#),
            "{json}"
        );
        assert_eq!(replicated(&json).unwrap(), config);
    }

    #[test]
    fn the_replication_keys_are_checked_naming_the_key() {
        for (json, key, says) in [
            (
                r#"{"replication_factor": 0}"#,
                "checkpoint_replication_factor",
                "at least 1",
            ),
            (
                r#"{"replication_factor": 3}"#,
                "checkpoint_replication_factor",
                "no replica",
            ),
            (
                r#"{"replication_factor": 2, "checkpoint_replicas": [{"location": "/a"}, {"location": "/b"}, {"location": "/c"}]}"#,
                "checkpoint_replication_factor",
                "must match",
            ),
            (
                r#"{"replication_factor": 1, "checkpoint_replicas": [{"location": "/a"}, {"location": "/b"}]}"#,
                "checkpoint_replication_factor",
                "must match",
            ),
            (
                r#"{"replication_factor": 2, "checkpoint_storage": "/x", "checkpoint_replicas": [{"location": "/a"}, {"location": "/b"}]}"#,
                "checkpoint_replicas",
                "checkpoint_storage",
            ),
            (
                r#"{"replication_factor": 2, "checkpoint_replicas": [{"location": ""}, {"location": "/b"}]}"#,
                "checkpoint_replicas",
                "empty",
            ),
            (
                r#"{"geo_distributed": true}"#,
                "checkpoint_geo_distributed",
                "distinct",
            ),
            (
                r#"{"replication_factor": 2, "geo_distributed": true, "checkpoint_replicas": [{"location": "/a", "domain": "x"}, {"location": "/b"}]}"#,
                "checkpoint_geo_distributed",
                "replica 1",
            ),
            (
                r#"{"replication_factor": 2, "geo_distributed": true, "checkpoint_replicas": [{"location": "/a", "domain": "x"}, {"location": "/b", "domain": "x"}]}"#,
                "checkpoint_geo_distributed",
                "\"x\"",
            ),
            (
                r#"{"consistency_level": "most"}"#,
                "consistency_level",
                "got \"most\"",
            ),
            (
                r#"{"replication_factor": 2, "checkpoint_replicas": [{"location": "/a", "disk": "x"}, {"location": "/b"}]}"#,
                "disk",
                "unknown field",
            ),
        ] {
            let err = replicated(json).unwrap_err();
            assert!(err.contains(key) && err.contains(says), "{json}: {err}");
        }
    }

    #[tokio::test]
    async fn a_replicated_config_opens_a_replicated_storage() {
        let dir = tempfile::tempdir().unwrap();
        let replicas = ["a", "b", "c"]
            .map(|d| ReplicaLocation::new(StorageLocation::Local(dir.path().join(d))).domain(d));
        let config = CheckpointManagerConfig::builder()
            .replicas(replicas)
            .geo_distributed(true)
            .build()
            .unwrap();
        let storage = config.open_storage().await.unwrap().unwrap();
        assert!(
            format!("{storage:?}").contains("ReplicatedStorage"),
            "{storage:?}"
        );
        storage
            .put("run/k", crate::storage::Bytes::from_static(b"v"))
            .await
            .unwrap();
        // Acknowledged at a quorum: two of the three hold it by now (the
        // third copy may still be on its way).
        let held = ["a", "b", "c"]
            .iter()
            .filter(|d| dir.path().join(d).join("run/k").exists())
            .count();
        assert!(held >= 2, "{held} copies");
        // One location: a plain storage; none: nothing to open.
        let single = CheckpointManagerConfig::builder()
            .storage(StorageLocation::Local(dir.path().join("single")))
            .build()
            .unwrap();
        let opened = single.open_storage().await.unwrap().unwrap();
        assert!(
            format!("{opened:?}").contains("LocalFsStorage"),
            "{opened:?}"
        );
        assert!(CheckpointManagerConfig::default()
            .open_storage()
            .await
            .unwrap()
            .is_none());
    }
}
