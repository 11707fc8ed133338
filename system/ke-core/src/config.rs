//! What every daemon's YAML configuration shares: the error type, YAML loading with
//! errors that name the key and line, and small range checks for `validate()`.

use serde::de::DeserializeOwned;

/// A configuration that could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML did not parse into the configuration: syntax error, unknown key, wrong type.
    /// `message` names the key path, the offending key or value, and the line and column.
    #[error("invalid {file} config: {message}")]
    Parse {
        /// Which configuration (`cloudcore`, `edgecore`).
        file: &'static str,
        /// serde_yaml's description, including the key path and location.
        message: String,
        /// 1-based line of the error, when known.
        line: Option<usize>,
        /// 1-based column of the error, when known.
        column: Option<usize>,
    },
    /// A value parsed but is out of range or inconsistent.
    #[error("invalid value for {field}: {reason}")]
    Invalid {
        /// The YAML path of the key, e.g. `modules.cloudHub.websocket.port`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// An [`ConfigError::Invalid`] for `field`.
pub fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks that `value` is not zero.
pub fn positive(field: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(field, "must be greater than 0"));
    }
    Ok(())
}

/// Parses a configuration document. Omitted keys take their defaults; an empty document
/// (only blank lines, comments or `---`) is the default configuration.
pub fn from_yaml<T: DeserializeOwned + Default>(
    file: &'static str,
    text: &str,
) -> Result<T, ConfigError> {
    if text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---"
    }) {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let location = e.location();
        ConfigError::Parse {
            file,
            message: e.to_string(),
            line: location.as_ref().map(serde_yaml::Location::line),
            column: location.as_ref().map(serde_yaml::Location::column),
        }
    })
}
