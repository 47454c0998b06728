//! Decoding errors. Each names the part of the record and the field path that
//! was wrong and says what to do; the caller adds topic/partition/offset.

/// Which half of a Kafka record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Key => "record key",
            Part::Value => "record value",
        })
    }
}

/// A record that cannot be decoded. Never produced by a panic: every input
/// byte sequence yields either a record or one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a JSON document.
    #[error(
        "{part}: not valid JSON (byte {offset}: {message}); the topic must be written by Kafka Connect's \
         org.apache.kafka.connect.json.JsonConverter — check the connector's key.converter/value.converter"
    )]
    NotJson {
        part: Part,
        offset: usize,
        message: String,
    },

    /// JSON without the `{"schema": ..., "payload": ...}` envelope.
    #[error(
        "{part}: the record has no \"schema\" (JsonConverter with schemas.enable=false, or another \
         serialiser); lockstep needs the schema to type every column: set \
         key.converter.schemas.enable=true and value.converter.schemas.enable=true on the Debezium \
         connector (or on the Connect worker) and re-snapshot the affected tables"
    )]
    SchemasDisabled { part: Part },

    /// The `schema` half is not a valid Kafka Connect schema.
    #[error("{path}: invalid Kafka Connect schema: {message}")]
    InvalidSchema { path: String, message: String },

    /// A payload value does not match its schema.
    #[error("{path}: {message}")]
    InvalidValue { path: String, message: String },

    /// The record is well-formed Connect data but not a valid Debezium event.
    #[error("{path}: {message}")]
    InvalidEnvelope { path: String, message: String },
}

impl DecodeError {
    pub(crate) fn value(path: &str, message: impl Into<String>) -> DecodeError {
        DecodeError::InvalidValue {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn schema(path: &str, message: impl Into<String>) -> DecodeError {
        DecodeError::InvalidSchema {
            path: path.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn envelope(path: &str, message: impl Into<String>) -> DecodeError {
        DecodeError::InvalidEnvelope {
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The field path the error is about, if any.
    pub fn path(&self) -> Option<&str> {
        match self {
            DecodeError::InvalidSchema { path, .. }
            | DecodeError::InvalidValue { path, .. }
            | DecodeError::InvalidEnvelope { path, .. } => Some(path),
            _ => None,
        }
    }
}
