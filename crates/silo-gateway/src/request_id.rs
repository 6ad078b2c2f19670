//! The id that ties one request's response, error body, audit line and
//! the caller's own logs together (`X-Request-Id`).
//!
//! A caller's id is kept when it is short and plain, so a trace started
//! upstream carries through; anything else is replaced rather than
//! escaped, because the id is echoed into headers and logs where a long
//! or odd value could forge lines or bloat them.

/// The header that carries the id, both ways.
pub const HEADER: &str = "x-request-id";

/// The longest id kept from a caller (a UUID is 36, a W3C trace id 32).
pub const MAX_LEN: usize = 128;

/// The caller's id if it is sane, else a new one.
pub fn accept(presented: Option<&str>) -> String {
    match presented {
        Some(id) if is_sane(id) => id.to_string(),
        _ => generate(),
    }
}

/// A new id: a UUID v7, so ids sort by time in a log.
pub fn generate() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// 1 to [`MAX_LEN`] characters from a set that needs no escaping in a
/// header, a JSON string or a log line.
pub fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_kept_and_others_replaced() {
        for kept in [
            "abc",
            "0193a4f2-7c1e-7d2a-9b1f-3c4d5e6f7a8b",
            "trace:01/span=2",
        ] {
            assert_eq!(accept(Some(kept)), kept);
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in ["", "a b", "a\"b", "é", "a\\b", long.as_str()] {
            let id = accept(Some(bad));
            assert_ne!(id, bad);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        }
        let a = accept(None);
        let b = accept(None);
        assert_ne!(a, b);
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 7);
    }
}
