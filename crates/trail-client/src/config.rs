//! Recorder configuration, from code or from `TRAIL_*` variables.

use std::path::PathBuf;
use std::time::Duration;

/// Where events go.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// A trail server: `POST {url}/v1/events` with `Authorization: Bearer {key}`.
    Remote { url: String, key: String },
    /// A local data directory (`trail serve --data-dir` reads it later),
    /// written into `tenant`'s log.
    Embedded { data_dir: PathBuf, tenant: String },
}

/// Everything a [`crate::Recorder`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `false`: the recorder does nothing at all (`TRAIL_ENABLED`).
    pub enabled: bool,
    /// `None` with `enabled`: nothing to send to, so disabled (with a warning).
    pub sink: Option<SinkConfig>,
    /// The disk spool (`TRAIL_SPOOL_DIR`); default `./trail-spool`, made
    /// only when something must be spooled.
    pub spool_dir: PathBuf,
    /// Events the in-memory queue holds (`TRAIL_QUEUE_SIZE`, 10,000).
    pub queue_size: usize,
    /// Events per request at most (`TRAIL_BATCH_SIZE`, 500).
    pub batch_size: usize,
    /// A partial batch is sent after this long (`TRAIL_FLUSH_MS`, 200 ms).
    pub flush_interval: Duration,
    /// Only these event types are recorded (`TRAIL_RECORD_TYPES`, comma
    /// separated); `None` records every type.
    pub record_types: Option<Vec<String>>,
    /// Only these event names are recorded (`TRAIL_RECORD_NAMES`).
    pub record_names: Option<Vec<String>>,
    /// Attempts per batch before it goes to the spool (at least 1).
    pub max_attempts: u32,
    /// The first retry delay; doubled each time (with jitter).
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
    /// One HTTP request may take this long (`TRAIL_TIMEOUT_MS`, 10 s).
    pub request_timeout: Duration,
    /// How long dropping the last handle waits for delivery (5 s).
    pub drop_flush_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            sink: None,
            spool_dir: PathBuf::from("trail-spool"),
            queue_size: 10_000,
            batch_size: 500,
            flush_interval: Duration::from_millis(200),
            record_types: None,
            record_names: None,
            max_attempts: 3,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            drop_flush_timeout: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// A remote configuration with defaults.
    pub fn remote(url: &str, key: &str) -> Config {
        Config {
            sink: Some(SinkConfig::Remote {
                url: url.to_owned(),
                key: key.to_owned(),
            }),
            ..Config::default()
        }
    }

    /// An embedded configuration with defaults; the spool sits in the data
    /// directory.
    pub fn embedded(data_dir: impl Into<PathBuf>, tenant: &str) -> Config {
        let data_dir = data_dir.into();
        Config {
            spool_dir: data_dir.join("spool"),
            sink: Some(SinkConfig::Embedded {
                data_dir,
                tenant: tenant.to_owned(),
            }),
            ..Config::default()
        }
    }

    /// Defaults overridden by the environment: `TRAIL_ENABLED`, `TRAIL_URL`
    /// and `TRAIL_KEY` (remote) or `TRAIL_DATA_DIR` and `TRAIL_TENANT`
    /// (embedded), `TRAIL_SPOOL_DIR`, `TRAIL_QUEUE_SIZE`, `TRAIL_BATCH_SIZE`,
    /// `TRAIL_FLUSH_MS`, `TRAIL_TIMEOUT_MS`, `TRAIL_RECORD_TYPES`,
    /// `TRAIL_RECORD_NAMES`.
    pub fn from_env() -> Config {
        Config::default().with_env(|name| std::env::var(name).ok())
    }

    /// Applies variables read through `var` over `self`.
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Config {
        if let Some(value) = var("TRAIL_ENABLED") {
            self.enabled = !matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            );
        }
        if let Some(url) = var("TRAIL_URL").filter(|v| !v.is_empty()) {
            self.sink = Some(SinkConfig::Remote {
                url,
                key: var("TRAIL_KEY").unwrap_or_default(),
            });
        } else if let Some(dir) = var("TRAIL_DATA_DIR").filter(|v| !v.is_empty()) {
            let data_dir = PathBuf::from(dir);
            self.spool_dir = data_dir.join("spool");
            self.sink = Some(SinkConfig::Embedded {
                data_dir,
                tenant: var("TRAIL_TENANT").unwrap_or_else(|| "default".into()),
            });
        }
        if let Some(dir) = var("TRAIL_SPOOL_DIR").filter(|v| !v.is_empty()) {
            self.spool_dir = PathBuf::from(dir);
        }
        let number = |name: &str| var(name).and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(n) = number("TRAIL_QUEUE_SIZE") {
            self.queue_size = n as usize;
        }
        if let Some(n) = number("TRAIL_BATCH_SIZE") {
            self.batch_size = n as usize;
        }
        if let Some(n) = number("TRAIL_FLUSH_MS") {
            self.flush_interval = Duration::from_millis(n);
        }
        if let Some(n) = number("TRAIL_TIMEOUT_MS") {
            self.request_timeout = Duration::from_millis(n);
        }
        let list = |name: &str| {
            var(name).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        if let Some(types) = list("TRAIL_RECORD_TYPES") {
            self.record_types = Some(types);
        }
        if let Some(names) = list("TRAIL_RECORD_NAMES") {
            self.record_names = Some(names);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reads_the_environment() {
        let config = Config::default().with_env(env(&[
            ("TRAIL_URL", "http://x:1"),
            ("TRAIL_KEY", "k"),
            ("TRAIL_SPOOL_DIR", "/tmp/s"),
            ("TRAIL_QUEUE_SIZE", "7"),
            ("TRAIL_BATCH_SIZE", "3"),
            ("TRAIL_RECORD_TYPES", "tool_call, llm_call"),
            ("TRAIL_RECORD_NAMES", "a"),
        ]));
        assert!(config.enabled);
        assert!(matches!(
            config.sink,
            Some(SinkConfig::Remote { ref url, ref key }) if url == "http://x:1" && key == "k"
        ));
        assert_eq!(config.spool_dir, PathBuf::from("/tmp/s"));
        assert_eq!((config.queue_size, config.batch_size), (7, 3));
        assert_eq!(
            config.record_types,
            Some(vec!["tool_call".into(), "llm_call".into()])
        );
        assert_eq!(config.record_names, Some(vec!["a".into()]));
        for off in ["false", "0", "OFF"] {
            assert!(
                !Config::default()
                    .with_env(env(&[("TRAIL_ENABLED", off)]))
                    .enabled
            );
        }
    }
}
