//! The CloudEvents 1.0 envelope on the bus, in the NATS protocol binding's
//! binary mode: the event's payload is the message's data, its attributes
//! are headers (`ce-id`, `ce-source`, `ce-type`, `ce-specversion`,
//! `ce-time`, `ce-subject`, `ce-dataschema`, and `content-type` for
//! `datacontenttype`). `Nats-Msg-Id` is the event id too, so JetStream
//! drops a second publish of it within the stream's duplicate window. The
//! outbox row's own `headers` (a JSON object) travel as `silo-headers`.

use async_nats::HeaderMap;

/// CloudEvents' `specversion`.
pub const SPEC_VERSION: &str = "1.0";

/// The `datacontenttype` of every silo event.
pub const CONTENT_TYPE: &str = "application/json";

/// The header that carries the outbox row's `headers` object.
pub const SILO_HEADERS: &str = "silo-headers";

/// An event on the bus: what the outbox row holds, and what the inbox row
/// gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `id`: the event id (a UUID).
    pub id: String,
    /// `source`: the publishing service.
    pub source: String,
    /// `type`.
    pub event_type: String,
    /// `subject`: the event's key.
    pub key: String,
    /// `time`: when it was published (RFC 3339).
    pub time: String,
    /// `dataschema`: the contract's URI, when the type has one.
    pub dataschema: Option<String>,
    /// The outbox row's headers, a JSON object as text.
    pub headers: String,
    /// `data`: the payload, JSON text.
    pub payload: String,
}

impl Envelope {
    /// The message headers of this event.
    pub fn to_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("Nats-Msg-Id", self.id.as_str());
        h.insert("ce-id", self.id.as_str());
        h.insert("ce-source", self.source.as_str());
        h.insert("ce-type", self.event_type.as_str());
        h.insert("ce-specversion", SPEC_VERSION);
        h.insert("ce-time", self.time.as_str());
        h.insert("ce-subject", self.key.as_str());
        h.insert("content-type", CONTENT_TYPE);
        if let Some(schema) = &self.dataschema {
            h.insert("ce-dataschema", schema.as_str());
        }
        if self.headers.trim() != "{}" {
            h.insert(SILO_HEADERS, self.headers.as_str());
        }
        h
    }

    /// The event a message carries, or why it is not one of silo's.
    pub fn from_message(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Self, String> {
        let headers = headers.ok_or("it has no headers")?;
        let get = |name: &str| headers.get(name).map(|v| v.as_str().to_string());
        let need = |name: &str| get(name).ok_or_else(|| format!("it has no {name} header"));
        let spec = need("ce-specversion")?;
        if spec != SPEC_VERSION {
            return Err(format!("its ce-specversion is {spec}, not {SPEC_VERSION}"));
        }
        let id = need("ce-id")?;
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(format!("its ce-id {id:?} is not a UUID"));
        }
        let payload = std::str::from_utf8(payload)
            .map_err(|_| "its data is not UTF-8".to_string())?
            .to_string();
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            return Err("its data is not JSON".into());
        }
        let headers_json = get(SILO_HEADERS).unwrap_or_else(|| "{}".into());
        if !serde_json::from_str::<serde_json::Value>(&headers_json).is_ok_and(|v| v.is_object()) {
            return Err(format!("its {SILO_HEADERS} header is not a JSON object"));
        }
        Ok(Envelope {
            id,
            source: need("ce-source")?,
            event_type: need("ce-type")?,
            key: need("ce-subject")?,
            time: need("ce-time")?,
            dataschema: get("ce-dataschema"),
            headers: headers_json,
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Envelope {
        Envelope {
            id: "0190a4a2-7b1c-7cde-8f00-0123456789ab".into(),
            source: "orders".into(),
            event_type: "order.placed".into(),
            key: "42".into(),
            time: "2026-11-27T10:00:00.123456Z".into(),
            dataschema: None,
            headers: "{\"trace\":\"x\"}".into(),
            payload: "{\"n\":1}".into(),
        }
    }

    #[test]
    fn an_event_survives_the_trip() {
        let e = event();
        let h = e.to_headers();
        assert_eq!(h.get("Nats-Msg-Id").unwrap().as_str(), e.id);
        assert_eq!(h.get("ce-specversion").unwrap().as_str(), "1.0");
        assert_eq!(h.get("content-type").unwrap().as_str(), CONTENT_TYPE);
        assert!(h.get("ce-dataschema").is_none());
        assert_eq!(
            Envelope::from_message(Some(&h), e.payload.as_bytes()).unwrap(),
            e
        );
        let with_schema = Envelope {
            dataschema: Some("services/orders/events/order.placed.v1.json".into()),
            headers: "{}".into(),
            ..e
        };
        let h = with_schema.to_headers();
        assert!(h.get(SILO_HEADERS).is_none());
        assert_eq!(
            Envelope::from_message(Some(&h), with_schema.payload.as_bytes()).unwrap(),
            with_schema
        );
    }

    #[test]
    fn a_message_that_is_not_an_event_is_refused() {
        let e = event();
        assert!(Envelope::from_message(None, b"{}").is_err());
        let mut h = e.to_headers();
        h.insert("ce-id", "not-a-uuid");
        assert!(
            Envelope::from_message(Some(&h), b"{}")
                .unwrap_err()
                .contains("not a UUID")
        );
        let h = e.to_headers();
        assert!(
            Envelope::from_message(Some(&h), b"not json")
                .unwrap_err()
                .contains("not JSON")
        );
    }
}
