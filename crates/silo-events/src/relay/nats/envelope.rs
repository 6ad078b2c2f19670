//! The CloudEvents 1.0 envelope on the bus, in the NATS protocol binding's
//! binary mode: the event's payload is the message's data, its attributes
//! are headers (`ce-id`, `ce-source`, `ce-type`, `ce-specversion`,
//! `ce-time`, `ce-subject`, `ce-dataschema`, and `content-type` for
//! `datacontenttype`). `Nats-Msg-Id` is the event id too, so JetStream
//! drops a second publish of it within the stream's duplicate window. The
//! outbox row's own `headers` (a JSON object) travel as `silo-headers`.
//!
//! Header values are percent-encoded as the binding asks (after the HTTP
//! binding, 3.1.3.2): every byte of the value's UTF-8 outside printable
//! ASCII, and space, `"` and `%`, becomes `%XX`. So a key holding a line
//! break, a tab or any non-ASCII text travels intact (a raw `\r` or `\n`
//! would end the header line, and the client refuses it), and it is
//! decoded on delivery.

use async_nats::HeaderMap;

/// CloudEvents' `specversion`.
pub const SPEC_VERSION: &str = "1.0";

/// The `datacontenttype` of every silo event.
pub const CONTENT_TYPE: &str = "application/json";

/// The header that carries the outbox row's `headers` object.
pub const SILO_HEADERS: &str = "silo-headers";

/// The most header bytes JetStream stores with a message (it keeps their
/// length in 16 bits, and refuses a message with more).
pub const MAX_HEADER_BYTES: usize = u16::MAX as usize;

/// `value` percent-encoded for a header: bytes outside printable ASCII,
/// space, `"` and `%` as `%XX`. The result is always a valid header value.
pub fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A header value decoded: each `%XX` back to its byte. A `%` not followed
/// by two hex digits stays as it is. `None` when the bytes are not UTF-8.
pub fn decode_value(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The bytes `headers` take in a message, as the server counts them:
/// `NATS/1.0\r\n`, a `name: value\r\n` line each, and a blank line.
pub fn header_bytes(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            let name: &[u8] = name.as_ref();
            values
                .iter()
                .map(|v| name.len() + 2 + v.as_str().len() + 2)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + 2
}

/// Why an event's headers are too large for the stream, if they are.
pub fn headers_too_large(headers: &HeaderMap) -> Option<String> {
    let size = header_bytes(headers);
    (size > MAX_HEADER_BYTES).then(|| {
        format!(
            "its headers (the key and the outbox row's headers, encoded) are {size} bytes; \
             JetStream stores at most {MAX_HEADER_BYTES}"
        )
    })
}

/// Whether `text` is one JSON value, read without building it (a
/// delivery checks every message's payload).
fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

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
        // Every value encoded: an outbox row may hold anything, and the
        // client panics on a value it cannot send.
        let mut h = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| h.insert(name, encode_value(value));
        put("Nats-Msg-Id", &self.id);
        put("ce-id", &self.id);
        put("ce-source", &self.source);
        put("ce-type", &self.event_type);
        put("ce-specversion", SPEC_VERSION);
        put("ce-time", &self.time);
        put("ce-subject", &self.key);
        put("content-type", CONTENT_TYPE);
        if let Some(schema) = &self.dataschema {
            put("ce-dataschema", schema);
        }
        if self.headers.trim() != "{}" {
            put(SILO_HEADERS, &self.headers);
        }
        h
    }

    /// The event a message carries, or why it is not one of silo's.
    pub fn from_message(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Self, String> {
        let headers = headers.ok_or("it has no headers")?;
        let get = |name: &str| -> Result<Option<String>, String> {
            headers
                .get(name)
                .map(|v| {
                    decode_value(v.as_str())
                        .ok_or_else(|| format!("its {name} header is not UTF-8 once decoded"))
                })
                .transpose()
        };
        let need = |name: &str| get(name)?.ok_or_else(|| format!("it has no {name} header"));
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
        if !is_json(&payload) {
            return Err("its data is not JSON".into());
        }
        let headers_json = get(SILO_HEADERS)?.unwrap_or_else(|| "{}".into());
        if !(is_json(&headers_json) && headers_json.trim_start().starts_with('{')) {
            return Err(format!("its {SILO_HEADERS} header is not a JSON object"));
        }
        Ok(Envelope {
            id,
            source: need("ce-source")?,
            event_type: need("ce-type")?,
            key: need("ce-subject")?,
            time: need("ce-time")?,
            dataschema: get("ce-dataschema")?,
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
    fn any_key_and_headers_survive_the_trip_encoded() {
        let e = Envelope {
            key: "x\r\ny \t\"100%\" é→ %41".into(),
            headers: "{\"a\":\"line\\nbreak\", \"b\": \"ü\"}\n".into(),
            ..event()
        };
        let h = e.to_headers();
        let subject = h.get("ce-subject").unwrap().as_str();
        assert_eq!(
            subject,
            "x%0D%0Ay%20%09%22100%25%22%20%C3%A9%E2%86%92%20%2541"
        );
        assert!(h.iter().all(|(_, vs)| {
            vs.iter()
                .all(|v| v.as_str().bytes().all(|b| (0x21..=0x7e).contains(&b)))
        }));
        assert_eq!(
            Envelope::from_message(Some(&h), e.payload.as_bytes()).unwrap(),
            e
        );
        // Not percent-encoded by its sender: a lone `%` stays.
        assert_eq!(decode_value("100%").as_deref(), Some("100%"));
        assert_eq!(decode_value("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(decode_value("%FF"), None);
    }

    #[test]
    fn headers_are_measured_as_the_server_counts_them() {
        let mut h = HeaderMap::new();
        h.insert("ab", "xyz");
        assert_eq!(header_bytes(&h), 10 + 2 + 2 + 3 + 2 + 2);
        let big = Envelope {
            key: "k".repeat(MAX_HEADER_BYTES),
            ..event()
        };
        assert!(headers_too_large(&big.to_headers()).is_some());
        assert!(headers_too_large(&event().to_headers()).is_none());
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
