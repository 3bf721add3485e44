//! How much erasable content a tenant keeps per event: only hashes (the
//! default), also client summaries, or the full redacted bodies.

use std::fmt;
use std::str::FromStr;

/// Content retention policy, chosen per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ContentPolicy {
    /// Keep hashes and sizes of bodies only (plus `user_email`). Default.
    #[default]
    Hash,
    /// Also keep the client's summaries, redacted and cut to 512 characters.
    Summary,
    /// Also keep the redacted bodies (each cut to 64 KiB).
    Full,
}

/// A string that is not `hash`, `summary` or `full`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown content policy {0:?}; expected one of: hash, summary, full")]
pub struct UnknownPolicy(pub String);

impl ContentPolicy {
    /// Every policy, least to most retained.
    pub const ALL: &'static [ContentPolicy] = &[
        ContentPolicy::Hash,
        ContentPolicy::Summary,
        ContentPolicy::Full,
    ];

    /// The wire string: `hash`, `summary` or `full`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentPolicy::Hash => "hash",
            ContentPolicy::Summary => "summary",
            ContentPolicy::Full => "full",
        }
    }
}

impl FromStr for ContentPolicy {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hash" => Ok(ContentPolicy::Hash),
            "summary" => Ok(ContentPolicy::Summary),
            "full" => Ok(ContentPolicy::Full),
            _ => Err(UnknownPolicy(s.to_owned())),
        }
    }
}

impl fmt::Display for ContentPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ContentPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ContentPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for p in ContentPolicy::ALL {
            assert_eq!(p.as_str().parse::<ContentPolicy>(), Ok(*p));
        }
        assert_eq!(ContentPolicy::default(), ContentPolicy::Hash);
        assert!("FULL".parse::<ContentPolicy>().is_err());
    }
}
