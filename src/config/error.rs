//! Why a configuration could not be loaded: [`ConfigError`], with file, line, column and key.

use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded. Every variant names the file (when there is one) and,
/// where it can, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{}{}: {message}", origin(path), position(*line, *column, key.as_deref()))]
    Parse {
        /// The file (`None` for a string).
        path: Option<PathBuf>,
        /// The offending key, when known.
        key: Option<String>,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A value set by a command-line flag or an environment variable is out of range (see
    /// [`TimeSyncConfig::merge`](super::TimeSyncConfig::merge)).
    #[error("{name}: {reason}")]
    Override {
        /// The flag (`--simulate-skew`) or variable (`KAFKA_BOOTSTRAP`) as the user gave it.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A value is well-typed but out of range.
    #[error("{}: {key}: {reason}", origin(path))]
    Invalid {
        /// The file (`None` for a string or a config built in code).
        path: Option<PathBuf>,
        /// The offending key (dotted for nested tables, e.g. `simulation.random_variation_ms`).
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    /// The offending key, when known.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Io { .. } | ConfigError::Override { .. } => None,
            ConfigError::Parse { key, .. } => key.as_deref(),
            ConfigError::Invalid { key, .. } => Some(key),
        }
    }

    pub(super) fn with_path(self, p: &Path) -> Self {
        match self {
            ConfigError::Parse {
                key,
                line,
                column,
                message,
                ..
            } => ConfigError::Parse {
                path: Some(p.to_path_buf()),
                key,
                line,
                column,
                message,
            },
            ConfigError::Invalid { key, reason, .. } => ConfigError::Invalid {
                path: Some(p.to_path_buf()),
                key,
                reason,
            },
            other @ (ConfigError::Io { .. } | ConfigError::Override { .. }) => other,
        }
    }
}

fn origin(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "config".to_string(),
    }
}

fn position(line: Option<usize>, column: Option<usize>, key: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(l) = line {
        s.push_str(&format!(":{l}"));
        if let Some(c) = column {
            s.push_str(&format!(":{c}"));
        }
    }
    if let Some(k) = key {
        s.push_str(&format!(": key '{k}'"));
    }
    s
}

/// Turns a toml error into a [`ConfigError::Parse`] with line, column and the key.
pub(super) fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e
        .message()
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let (mut line, mut column, mut key) = (None, None, None);
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let before = &text[..start];
        let l = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        line = Some(l);
        column = Some(before[line_start..].chars().count() + 1);
        // The key is the left-hand side of the line the error points into.
        let line_text = text[line_start..].lines().next().unwrap_or("");
        if let Some((lhs, _)) = line_text.split_once('=') {
            let k = lhs.trim().trim_matches('"');
            if !k.is_empty() && !k.starts_with('[') && !k.starts_with('#') {
                key = Some(k.to_string());
            }
        }
    }
    // "unknown field `x`, expected …": the key is in the message.
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            key = Some(rest[..end].to_string());
        }
    }
    ConfigError::Parse {
        path: None,
        key,
        line,
        column,
        message,
    }
}
