//! The closed vocabularies of an event (`type`, `status`, `transport`): their
//! wire strings, their stable integer codes for storage columns, and parsing.

use std::fmt;
use std::str::FromStr;

/// A string that names no variant of one of the event enums.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of: {allowed}")]
pub struct UnknownVariant {
    /// Which enum was being parsed (`"event type"`, `"status"`, ...).
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// Comma-separated list of the accepted strings.
    pub allowed: String,
}

/// Defines a fieldless enum with wire strings, codes, `ALL`, `FromStr`,
/// `Display` and string serde.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, $code:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(
                $(#[$vmeta])*
                #[doc = concat!("Wire string `", $text, "`, code ", stringify!($code), ".")]
                $variant,
            )+
        }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire string (lowercase snake case).
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Stable small integer stored in database columns. Never reuse
            /// or renumber a code.
            pub const fn code(self) -> u8 {
                match self { $($name::$variant => $code),+ }
            }

            /// Inverse of [`Self::code`].
            pub const fn from_code(code: u8) -> Option<Self> {
                match code {
                    $($code => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Parses the wire string (exact, case-sensitive).
            pub fn parse(s: &str) -> Result<Self, UnknownVariant> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        allowed: Self::allowed(),
                    }),
                }
            }

            /// The accepted wire strings, comma-separated (for messages).
            pub fn allowed() -> String {
                [$($text),+].join(", ")
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

wire_enum! {
    /// What kind of action an event records.
    EventType, "event type" {
        /// A call to a language model.
        LlmCall = "llm_call", 1;
        /// A tool invocation by an agent.
        ToolCall = "tool_call", 2;
        /// A hand-off to a human.
        Escalation = "escalation", 3;
        /// A fetch from an external connector.
        ConnectorFetch = "connector_fetch", 4;
        /// A document uploaded.
        DocumentUpload = "document_upload", 5;
        /// A document downloaded.
        DocumentDownload = "document_download", 6;
        /// An API request.
        ApiRequest = "api_request", 7;
    }
}

wire_enum! {
    /// Outcome of the recorded action.
    Status, "status" {
        /// Succeeded (the default).
        Ok = "ok", 0;
        /// Failed.
        Error = "error", 1;
    }
}

wire_enum! {
    /// How the event reached trail.
    Transport, "transport" {
        /// Plain HTTP ingest.
        Http = "http", 1;
        /// Model Context Protocol.
        Mcp = "mcp", 2;
        /// OpenTelemetry (OTLP).
        Otlp = "otlp", 3;
        /// The recording proxy.
        Proxy = "proxy", 4;
        /// Emitted by trail itself.
        System = "system", 5;
        /// A client SDK.
        Sdk = "sdk", 6;
    }
}

impl Default for Status {
    /// Events that do not say otherwise succeeded.
    fn default() -> Self {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_strings_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::from_code(t.code()), Some(*t));
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
        }
        for t in Transport::ALL {
            assert_eq!(Transport::from_code(t.code()), Some(*t));
            assert_eq!(t.as_str().parse::<Transport>(), Ok(*t));
        }
        for t in Status::ALL {
            assert_eq!(Status::from_code(t.code()), Some(*t));
        }
        assert_eq!(Status::default(), Status::Ok);
        assert!("LLM_CALL".parse::<EventType>().is_err());
        assert_eq!(
            serde_json::to_string(&EventType::ConnectorFetch)
                .ok()
                .as_deref(),
            Some("\"connector_fetch\"")
        );
        let t: Result<Transport, _> = serde_json::from_str("\"mcp\"");
        assert_eq!(t.ok(), Some(Transport::Mcp));
    }
}
