//! Contract file names: `<type>.v<N>.json`.

use std::fmt;

/// What a contract file's name says: the event type and the version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContractName {
    /// The event type, such as `killmail.enriched`.
    pub event_type: String,
    /// The version, 1 or more.
    pub version: u32,
}

impl ContractName {
    /// The file name of this type and version.
    pub fn file_name(&self) -> String {
        format!("{}.v{}.json", self.event_type, self.version)
    }
}

impl fmt::Display for ContractName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.event_type, self.version)
    }
}

/// Reads `<type>.v<N>.json`. `N` is a whole number from 1 without leading
/// zeros (so `v1` and `v01` can never both name version 1); the type is
/// checked like silo.toml checks event types. `Err` says what is wrong.
pub fn parse(file_name: &str) -> Result<ContractName, String> {
    let Some(stem) = file_name.strip_suffix(".json") else {
        return Err("a contract file ends in `.json`".into());
    };
    let Some((event_type, version)) = stem.rsplit_once('.') else {
        return Err("a contract file is named `<type>.v<N>.json`".into());
    };
    let digits = version
        .strip_prefix('v')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            format!("`{version}` is not a version: a contract file is named `<type>.v<N>.json`, like `{event_type}.v1.json`")
        })?;
    if digits.starts_with('0') {
        return Err(format!(
            "version `{version}` starts with 0: versions count from v1, without leading zeros"
        ));
    }
    let version = digits
        .parse::<u32>()
        .map_err(|_| format!("version `v{digits}` is too large"))?;
    silo_manifest::names::check_event_type(event_type)
        .map_err(|why| format!("`{event_type}` is not an event type: {why}"))?;
    Ok(ContractName {
        event_type: event_type.to_string(),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_type_and_version() {
        let n = parse("killmail.enriched.v12.json").unwrap();
        assert_eq!(n.event_type, "killmail.enriched");
        assert_eq!(n.version, 12);
        assert_eq!(n.file_name(), "killmail.enriched.v12.json");
        // A type may have a part that looks like a version.
        assert_eq!(parse("a.v1.v2.json").unwrap().event_type, "a.v1");
    }

    #[test]
    fn bad_names_say_why() {
        for (name, why) in [
            ("killmail.enriched.json", "not a version"),
            ("killmail.enriched.v1.yaml", "ends in `.json`"),
            ("killmail.enriched.v0.json", "starts with 0"),
            ("killmail.enriched.v01.json", "starts with 0"),
            ("killmail.enriched.v.json", "not a version"),
            ("killmail.enriched.v1x.json", "not a version"),
            ("killmail.v1.json", "at least two"),
            ("Killmail.enriched.v1.json", "lowercase"),
            ("v1.json", "named `<type>.v<N>.json`"),
            ("killmail.enriched.v99999999999.json", "too large"),
        ] {
            let err = parse(name).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
