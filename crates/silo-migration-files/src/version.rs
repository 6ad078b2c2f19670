//! Migration versions: digit groups separated by `.` or `_`, compared
//! numerically group by group, as Flyway does (`1.10` > `1.9`, `001` = `1`,
//! `1.0` = `1`).

use std::cmp::Ordering;
use std::fmt;

/// A version as written in a file name, compared numerically.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    /// Groups without leading zeros, trailing zero groups dropped.
    groups: Vec<String>,
}

impl Version {
    /// Parses `1`, `001`, `1.2`, `2_1`, `20240101120000`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("the version is empty".into());
        }
        let mut groups = Vec::new();
        for group in text.split(['.', '_']) {
            if group.is_empty() {
                return Err(format!("version `{text}` has an empty part"));
            }
            if !group.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "version `{text}` must be digit groups separated by `.` or `_`"
                ));
            }
            let trimmed = group.trim_start_matches('0');
            groups.push(if trimmed.is_empty() { "0" } else { trimmed }.to_string());
        }
        while groups.len() > 1 && groups.last().is_some_and(|g| g == "0") {
            groups.pop();
        }
        Ok(Version {
            text: text.to_string(),
            groups,
        })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The canonical form (`001` -> `1`, `1_2.0` -> `1.2`): equal versions
    /// have equal canonical forms.
    pub fn canonical(&self) -> String {
        self.groups.join(".")
    }

    /// The next version after this one at the same width and shape: `009`
    /// -> `010`, `1.2` -> `1.3`.
    pub fn next(&self) -> Version {
        let last_start = self.text.rfind(['.', '_']).map_or(0, |i| i + 1);
        let last = &self.text[last_start..];
        let bumped = increment_digits(last);
        Version::parse(&format!("{}{bumped}", &self.text[..last_start])).expect("still digits")
    }
}

fn increment_digits(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    for b in out.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return String::from_utf8(out).expect("ascii");
        }
    }
    format!("1{}", String::from_utf8(out).expect("ascii"))
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.groups.hash(state);
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.groups.iter().zip(&other.groups) {
            let ord = a.len().cmp(&b.len()).then_with(|| a.cmp(b));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        self.groups.len().cmp(&other.groups.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn numeric_ordering() {
        assert!(v("1.10") > v("1.9"));
        assert!(v("10") > v("9"));
        assert_eq!(v("001"), v("1"));
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1_2"), v("1.2"));
        assert!(v("1.2.1") > v("1.2"));
        assert!(v("20240101120000") > v("20231231235959"));
        assert!(v("99999999999999999999999") > v("9999999999999999999999"));
    }

    #[test]
    fn rejects_non_digits() {
        assert!(Version::parse("").is_err());
        assert!(Version::parse("1..2").is_err());
        assert!(Version::parse("1a").is_err());
        assert!(Version::parse("v1").is_err());
    }

    #[test]
    fn next_keeps_width() {
        assert_eq!(v("009").next().as_str(), "010");
        assert_eq!(v("1.2").next().as_str(), "1.3");
        assert_eq!(v("99").next().as_str(), "100");
    }

    proptest! {
        // Comparison agrees with comparing the numbers themselves.
        #[test]
        fn agrees_with_integers(a in 0u64..1_000_000, b in 0u64..1_000_000, za in 0usize..3, zb in 0usize..3) {
            let va = v(&format!("{}{a}", "0".repeat(za)));
            let vb = v(&format!("{}{b}", "0".repeat(zb)));
            prop_assert_eq!(va.cmp(&vb), a.cmp(&b));
        }

        // Dotted versions order like tuples.
        #[test]
        fn agrees_with_tuples(a in proptest::collection::vec(0u32..50, 1..4), b in proptest::collection::vec(0u32..50, 1..4)) {
            let strip = |x: &Vec<u32>| { let mut x = x.clone(); while x.len() > 1 && x.last() == Some(&0) { x.pop(); } x };
            let join = |x: &Vec<u32>| x.iter().map(u32::to_string).collect::<Vec<_>>().join(".");
            prop_assert_eq!(v(&join(&a)).cmp(&v(&join(&b))), strip(&a).cmp(&strip(&b)));
        }

        #[test]
        fn next_is_greater(a in 0u64..1_000_000, w in 1usize..8) {
            let s = format!("{a:0w$}");
            prop_assert!(v(&s).next() > v(&s));
        }
    }
}
