//! Where a [`FaultToleranceConfig`] comes from (TOML, JSON, a file, the
//! environment, overlaid in that order) and how it is written back.
//!
//! Every source is read into a [`Node`] tree first, keeping the key and
//! position of each value; the trees are laid out (flat keys and the
//! replication section moved to their sections), overlaid (the environment
//! over the file), presets expanded, feature-gated keys refused, and only
//! then deserialized, so that every error names its key and origin.

use std::path::Path;

use super::de::from_node;
use super::env;
use super::error::{ConfigFileError, Origin};
use super::fault_tolerance::FaultToleranceConfig;
use super::json_text;
use super::layout::{self, ROOT};
use super::toml_text;
use super::tree::{Node, Value};

/// The formats a file can be in.
#[derive(Clone, Copy)]
enum Format {
    Toml,
    Json,
}

impl Format {
    fn of(path: &Path) -> Result<Format, ConfigFileError> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("toml") => Ok(Format::Toml),
            Some("json") => Ok(Format::Json),
            _ => Err(ConfigFileError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    fn read(self, text: &str) -> Result<Node, ConfigFileError> {
        match self {
            Format::Toml => toml_text::read(text),
            Format::Json => json_text::read(text),
        }
    }
}

/// Lays out, overlays, expands and deserializes: `file` (the
/// `[fault_tolerance]` table of a document, or of a config set in code) with
/// `env` (the environment's table) over it.
fn assemble(file: Node, env: Option<Node>) -> Result<FaultToleranceConfig, ConfigFileError> {
    let mut table = file;
    layout::route(&mut table)?;
    if let Some(mut env) = env {
        layout::route(&mut env)?;
        if let Value::Table(entries) = env.value {
            for (name, node) in entries {
                table.overlay(&name, node);
            }
        }
    }
    layout::expand_presets(&mut table)?;
    layout::check_features(&table)?;
    from_node(&table)
}

/// Reads a document's text.
fn parse(format: Format, text: &str) -> Result<Node, ConfigFileError> {
    layout::fault_tolerance_table(format.read(text)?)
}

/// Reads a file.
fn read_file(path: &Path) -> Result<Node, ConfigFileError> {
    let format = Format::of(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Io {
        path: path.to_path_buf(),
        operation: "read",
        source,
    })?;
    parse(format, &text).map_err(|e| e.in_file(path))
}

impl FaultToleranceConfig {
    /// Reads a TOML document: its `[fault_tolerance]` table (other tables
    /// are the application's, left alone).
    ///
    /// # Errors
    ///
    /// A [`ConfigFileError`] naming the key and its line: a syntax error,
    /// an unknown key, a wrong type, a value a section refuses, a key whose
    /// cargo feature this build does not include.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    ///
    /// let config = FaultToleranceConfig::from_toml_str(r#"
    ///     [fault_tolerance]
    ///     checkpoint_interval = "5m"   # a flat key: the checkpoint section's
    ///
    ///     [fault_tolerance.recovery]
    ///     recovery_timeout = "2m"
    /// "#)?;
    /// assert_eq!(config.checkpoint.interval, Some(Duration::from_secs(300)));
    /// assert_eq!(config.recovery.recovery_timeout(), Duration::from_secs(120));
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigFileError> {
        assemble(parse(Format::Toml, text)?, None)
    }

    /// Reads a JSON document: its `"fault_tolerance"` object, laid out as
    /// the TOML one.
    ///
    /// # Errors
    ///
    /// As [`from_toml_str`](Self::from_toml_str), with lines and columns of
    /// the JSON text.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    ///
    /// let config = FaultToleranceConfig::from_json_str(
    ///     r#"{"fault_tolerance": {"breakers": {"payments": {"failure_threshold": 3}}}}"#,
    /// )?;
    /// assert_eq!(config.breaker("payments").unwrap().failure_threshold(), 3);
    ///
    /// let err = FaultToleranceConfig::from_json_str(
    ///     "{\"fault_tolerance\": {\n  \"health\": {\"failure_threshold\": \"many\"}}}",
    /// ).unwrap_err();
    /// assert_eq!(err.key(), Some("fault_tolerance.health.failure_threshold"));
    /// assert_eq!(err.line(), Some(2));
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn from_json_str(text: &str) -> Result<Self, ConfigFileError> {
        assemble(parse(Format::Json, text)?, None)
    }

    /// Reads a file, TOML or JSON by its extension (`.toml`, `.json`).
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::UnknownFormat`] for another extension,
    /// [`ConfigFileError::Io`] when it cannot be read, and the errors of
    /// [`from_toml_str`](Self::from_toml_str), with the file's path.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("fault_tolerance.toml");
    /// std::fs::write(&path, "[fault_tolerance.health]\nfailure_threshold = 0\n")?;
    /// let err = FaultToleranceConfig::from_path(&path).unwrap_err();
    /// assert!(err.to_string().starts_with(&path.display().to_string()));
    /// assert_eq!(err.line(), Some(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        let path = path.as_ref();
        assemble(read_file(path)?, None).map_err(|e| e.in_file(path))
    }

    /// Reads a file as [`from_path`](Self::from_path) does, with the
    /// process's `STEADFAST_...` environment variables over it.
    ///
    /// # Errors
    ///
    /// As [`from_path`](Self::from_path) and
    /// [`from_env_vars`](Self::from_env_vars).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use steadfast::config::FaultToleranceConfig;
    /// let config = FaultToleranceConfig::load("/etc/my-service/fault_tolerance.toml")?;
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigFileError> {
        Self::load_with_env(path, process_vars()?)
    }

    /// Reads a file as [`from_path`](Self::from_path) does, with the
    /// `STEADFAST_...` variables among `vars` over it (the file's lines
    /// stay in the errors about its values).
    ///
    /// # Errors
    ///
    /// As [`from_path`](Self::from_path) and
    /// [`from_env_vars`](Self::from_env_vars).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use steadfast::config::FaultToleranceConfig;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("ft.json");
    /// std::fs::write(&path, r#"{"fault_tolerance": {"prediction": {"prediction_interval": "5m"}}}"#)?;
    /// let config = FaultToleranceConfig::load_with_env(
    ///     &path,
    ///     [("STEADFAST_PREDICTION__PREDICTION_INTERVAL", "30s"), ("HOME", "/root")],
    /// )?;
    /// assert_eq!(config.prediction.prediction_interval(), Duration::from_secs(30));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_with_env<I, K, V>(path: impl AsRef<Path>, vars: I) -> Result<Self, ConfigFileError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let path = path.as_ref();
        let file = read_file(path)?;
        assemble(file, Some(env::read(vars)?)).map_err(|e| e.in_file(path))
    }

    /// The defaults with the process's `STEADFAST_...` environment variables
    /// over them.
    ///
    /// # Errors
    ///
    /// As [`from_env_vars`](Self::from_env_vars).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    /// // With no STEADFAST_ variable set, the defaults.
    /// # if std::env::vars().all(|(k, _)| !k.starts_with("STEADFAST_")) {
    /// assert_eq!(FaultToleranceConfig::from_env()?, FaultToleranceConfig::default());
    /// # }
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn from_env() -> Result<Self, ConfigFileError> {
        Self::from_env_vars(process_vars()?)
    }

    /// The defaults with the `STEADFAST_...` variables among `vars` over
    /// them (others are left alone): `STEADFAST_HEALTH__HEARTBEAT_INTERVAL=5s`
    /// sets `fault_tolerance.health.heartbeat_interval`. The mapping is in
    /// the [module documentation](super#sources).
    ///
    /// # Errors
    ///
    /// A [`ConfigFileError`] naming the key and the variable: an unknown
    /// key, a value that does not parse as the key expects, a key whose
    /// cargo feature this build does not include.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::FaultToleranceConfig;
    ///
    /// let config = FaultToleranceConfig::from_env_vars([
    ///     ("STEADFAST_BREAKERS__PAYMENTS__FAILURE_THRESHOLD", "3"),
    ///     ("STEADFAST_GEO_DISTRIBUTED", "false"),
    ///     ("PATH", "/usr/bin"),
    /// ])?;
    /// assert_eq!(config.breaker("payments").unwrap().failure_threshold(), 3);
    ///
    /// let err = FaultToleranceConfig::from_env_vars([("STEADFAST_HEALTH__HEARTBEAT_INTERVAL", "soon")])
    ///     .unwrap_err();
    /// assert_eq!(err.key(), Some("fault_tolerance.health.heartbeat_interval"));
    /// assert!(err.to_string().contains("STEADFAST_HEALTH__HEARTBEAT_INTERVAL"));
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn from_env_vars<I, K, V>(vars: I) -> Result<Self, ConfigFileError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        assemble(Node::table(ROOT, Origin::Unknown), Some(env::read(vars)?))
    }

    /// This configuration with the `STEADFAST_...` variables among `vars`
    /// over it (pass `std::env::vars()` for the process's own).
    ///
    /// # Errors
    ///
    /// As [`from_env_vars`](Self::from_env_vars); an error about a value
    /// that came from this configuration has no origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Preset};
    ///
    /// let config = FaultToleranceConfig::preset(Preset::Rpc)
    ///     .with_env_overrides([("STEADFAST_RETRIES__RPC__MAX_RETRIES", "7")])?;
    /// assert_eq!(config.retry("rpc").unwrap().max_retries(), 7);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn with_env_overrides<I, K, V>(self, vars: I) -> Result<Self, ConfigFileError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let current = serde_json::to_value(&self).map_err(|e| ConfigFileError::Serialize {
            format: "JSON",
            message: e.to_string(),
        })?;
        let file = Node::from_json_value(current, ROOT, &Origin::Unknown);
        assemble(file, Some(env::read(vars)?))
    }

    /// The canonical layout as a JSON value: sections, the replication keys
    /// in their own section, under `fault_tolerance`.
    fn to_document(&self) -> Result<serde_json::Value, ConfigFileError> {
        let value = serde_json::to_value(self).map_err(|e| ConfigFileError::Serialize {
            format: "JSON",
            message: e.to_string(),
        })?;
        let mut table = match value {
            serde_json::Value::Object(table) => table,
            _ => serde_json::Map::new(),
        };
        layout::split_replication(&mut table);
        let mut document = serde_json::Map::new();
        document.insert(ROOT.to_string(), serde_json::Value::Object(table));
        Ok(serde_json::Value::Object(document))
    }

    /// Writes the configuration as a TOML document, every section with its
    /// keys, that [`from_toml_str`](Self::from_toml_str) reads back to the
    /// same value.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::Serialize`] for a value TOML cannot hold (a
    /// storage path that is not UTF-8).
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Preset};
    /// let config = FaultToleranceConfig::preset(Preset::Rpc);
    /// let toml = config.to_toml_string()?;
    /// assert!(toml.contains("[fault_tolerance.retries.rpc]"), "{toml}");
    /// assert!(toml.contains("initial_delay = \"50ms\""), "{toml}");
    /// assert_eq!(FaultToleranceConfig::from_toml_str(&toml)?, config);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn to_toml_string(&self) -> Result<String, ConfigFileError> {
        toml::to_string(&self.to_document()?).map_err(|e| ConfigFileError::Serialize {
            format: "TOML",
            message: e.to_string(),
        })
    }

    /// Writes the configuration as a JSON document (pretty-printed), that
    /// [`from_json_str`](Self::from_json_str) reads back to the same value.
    ///
    /// # Errors
    ///
    /// [`ConfigFileError::Serialize`] for a value JSON cannot hold.
    ///
    /// # Examples
    ///
    /// ```
    /// use steadfast::config::{FaultToleranceConfig, Preset};
    /// let config = FaultToleranceConfig::preset(Preset::Storage);
    /// let json = config.to_json_string()?;
    /// assert_eq!(FaultToleranceConfig::from_json_str(&json)?, config);
    /// # Ok::<(), steadfast::config::ConfigFileError>(())
    /// ```
    pub fn to_json_string(&self) -> Result<String, ConfigFileError> {
        serde_json::to_string_pretty(&self.to_document()?).map_err(|e| ConfigFileError::Serialize {
            format: "JSON",
            message: e.to_string(),
        })
    }
}

/// The process's variables. One named `STEADFAST_...` whose value is not
/// UTF-8 is refused rather than skipped; others that are not UTF-8 cannot be
/// settings and are left alone.
fn process_vars() -> Result<Vec<(String, String)>, ConfigFileError> {
    let mut vars = Vec::new();
    for (key, value) in std::env::vars_os() {
        let (Ok(key), value) = (key.into_string(), value.into_string()) else {
            continue;
        };
        match value {
            Ok(value) => vars.push((key, value)),
            Err(_) if key.starts_with(env::PREFIX) => {
                return Err(ConfigFileError::Invalid {
                    file: None,
                    key: key.clone(),
                    origin: Origin::Env { variable: key },
                    message: "the value is not valid UTF-8".to_string(),
                });
            }
            Err(_) => {}
        }
    }
    Ok(vars)
}
