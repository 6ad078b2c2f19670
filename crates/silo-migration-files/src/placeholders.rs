//! `${name}` placeholders, replaced before a script runs, with a map back
//! from the replaced text to the file so errors point at the file.

use std::collections::BTreeMap;

/// A script after substitution.
#[derive(Debug, Clone)]
pub struct Substituted {
    pub text: String,
    /// `(offset in text, offset in original, length in text, length in
    /// original)` of each replacement, in order.
    spans: Vec<(usize, usize, usize, usize)>,
}

/// An unknown placeholder: its name and byte offset in the original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPlaceholder {
    pub name: String,
    pub offset: usize,
}

/// Replaces every `${name}` with its value.
pub fn substitute(
    original: &str,
    values: &BTreeMap<String, String>,
) -> Result<Substituted, UnknownPlaceholder> {
    let mut text = String::with_capacity(original.len());
    let mut spans = Vec::new();
    let mut rest = 0;
    while let Some(found) = original[rest..].find("${") {
        let start = rest + found;
        let Some(close) = original[start + 2..].find('}') else {
            break;
        };
        let name = &original[start + 2..start + 2 + close];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            // Not a placeholder (`${` inside other text): keep it as is.
            text.push_str(&original[rest..start + 2]);
            rest = start + 2;
            continue;
        }
        let value = values.get(name).ok_or_else(|| UnknownPlaceholder {
            name: name.to_string(),
            offset: start,
        })?;
        text.push_str(&original[rest..start]);
        let original_len = close + 3;
        spans.push((text.len(), start, value.len(), original_len));
        text.push_str(value);
        rest = start + original_len;
    }
    text.push_str(&original[rest..]);
    Ok(Substituted { text, spans })
}

impl Substituted {
    /// The text unchanged.
    pub fn plain(text: &str) -> Self {
        Substituted {
            text: text.to_string(),
            spans: Vec::new(),
        }
    }

    /// Maps a byte offset in the substituted text back to the original.
    pub fn to_original(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for &(at, orig, len, orig_len) in &self.spans {
            if offset < at {
                break;
            }
            if offset < at + len {
                return orig;
            }
            shift = (orig + orig_len) as isize - (at + len) as isize;
        }
        (offset as isize + shift) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        [("role", "orders_svc"), ("db", "x")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_and_maps_back() {
        let original = "GRANT SELECT ON t TO ${role}; SELECT '${db}' || oops;";
        let s = substitute(original, &values()).unwrap();
        assert_eq!(
            s.text,
            "GRANT SELECT ON t TO orders_svc; SELECT 'x' || oops;"
        );
        let oops = s.text.find("oops").unwrap();
        assert_eq!(s.to_original(oops), original.find("oops").unwrap());
        let in_value = s.text.find("orders_svc").unwrap() + 3;
        assert_eq!(s.to_original(in_value), original.find("${role}").unwrap());
        assert_eq!(s.to_original(0), 0);
    }

    #[test]
    fn unknown_placeholder_is_located() {
        let err = substitute("SELECT 1;\nSELECT ${nope};", &values()).unwrap_err();
        assert_eq!(err.name, "nope");
        assert_eq!(err.offset, 17);
    }

    #[test]
    fn dollar_brace_that_is_not_a_placeholder_stays() {
        let s = substitute("SELECT '${ not one }'", &values()).unwrap();
        assert_eq!(s.text, "SELECT '${ not one }'");
    }
}
