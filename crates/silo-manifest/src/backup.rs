//! A service's backup policy (`[services.<name>.backup]` over
//! `[defaults.backup]`) and the checks of each of its values.
//!
//! Every check returns the message and help of a manifest problem; the
//! parser puts them at the value's place in silo.toml.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// What goes wrong with one value: a message and, where there is one, what
/// to write instead.
pub(crate) type Refusal = (String, Option<String>);

/// How one service is backed up, every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPolicy {
    /// When `silo backup daemon` backs the service up; `None`: only when
    /// asked (`silo backup`, `silo migrate --backup-first`).
    pub schedule: Option<BackupSchedule>,
    /// Backups older than this may be pruned (`retention = "30d"`).
    pub retention: Option<Duration>,
    /// The newest this many backups are kept (`keep = 10`).
    pub keep: Option<u32>,
    /// Where the backups go.
    pub destination: BackupDestination,
    /// Whether backups are encrypted to the project's age recipients.
    pub encrypt: bool,
    /// pg_dump's compression level, 0 (none) to 9 (`compression = 1`);
    /// `None`: pg_dump's own default. PostgreSQL dumps only.
    pub compression: Option<u8>,
    /// Every this many backups, the daemon restores the newest into a
    /// scratch store to prove it (`silo backup verify`).
    pub verify_every: Option<u32>,
    /// How the backups are taken: logical dumps (the default), or
    /// pgBackRest on the service's own server for point-in-time recovery.
    pub method: BackupMethod,
}

/// How a service is backed up (`method = "dump"` or `"pgbackrest"`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackupMethod {
    /// A logical dump of the service's store, as its own role, into the
    /// policy's destination.
    #[default]
    Dump,
    /// pgBackRest backups of the service's whole server (instance
    /// isolation only), with its WAL archived for point-in-time recovery.
    Pgbackrest(PgbackrestSettings),
}

/// What pgBackRest needs to back up one service's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgbackrestSettings {
    /// The repository folder, absolute (`repository`; default
    /// `<data_dir>/pgbackrest/<service>`).
    pub repository: PathBuf,
    /// The server's data directory, absolute (`pg_data`).
    pub pg_data: PathBuf,
    /// The stanza name (`stanza`; default the service's name).
    pub stanza: String,
}

impl BackupPolicy {
    /// The pgBackRest settings, when the service is backed up that way.
    pub fn pgbackrest(&self) -> Option<&PgbackrestSettings> {
        match &self.method {
            BackupMethod::Pgbackrest(settings) => Some(settings),
            BackupMethod::Dump => None,
        }
    }
}

/// Checks a pgBackRest stanza name: letters, digits, `_`, `-` and `.`
/// (it names folders in the repository and a section of the config file).
pub(crate) fn check_stanza(name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err((
            format!("invalid stanza name `{name}`"),
            Some("a stanza is 1 to 64 letters, digits, `_`, `-` and `.`, starting with a letter or digit; leave `stanza` out to use the service's name".into()),
        ))
    }
}

/// `[backup]` and `[defaults] backup_before_migrate`: project-wide backup
/// settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupSettings {
    /// The age X25519 recipients (`age1...`) encrypted backups are
    /// readable by.
    pub recipients: Vec<String>,
    /// Whether `silo migrate` backs every service up before it migrates it.
    pub backup_before_migrate: bool,
}

/// A cron schedule and the time zone its fields are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    expression: String,
    cron: Cron,
    timezone: chrono_tz::Tz,
}

impl BackupSchedule {
    /// Parses a five-field cron expression (`minute hour day-of-month month
    /// day-of-week`, or `@hourly`, `@daily`, `@weekly`, `@monthly`,
    /// `@yearly`), read in `timezone` (an IANA name; UTC when `None`).
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let cron = parse_cron(expression).map_err(|(message, _)| message)?;
        let timezone = match timezone {
            Some(name) => parse_timezone(name).map_err(|(message, _)| message)?,
            None => chrono_tz::UTC,
        };
        Ok(BackupSchedule {
            expression: expression.to_string(),
            cron,
            timezone,
        })
    }

    pub(crate) fn new(expression: &str, cron: Cron, timezone: chrono_tz::Tz) -> Self {
        BackupSchedule {
            expression: expression.to_string(),
            cron,
            timezone,
        }
    }

    /// The expression as written in the manifest.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The parsed expression.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }

    /// The zone the expression's hours and days are read in.
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone
    }
}

impl fmt::Display for BackupSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.timezone.name())
    }
}

/// Where a service's backups are kept: `<destination>/<backup id>/...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackupDestination {
    /// A folder on this machine.
    Local(PathBuf),
    /// S3-compatible object storage: a bucket and a key prefix without
    /// leading or trailing `/` (empty for the bucket's root).
    S3 { bucket: String, prefix: String },
}

impl BackupDestination {
    /// The destination one level down, for one service of a shared base.
    pub fn join(&self, name: &str) -> BackupDestination {
        match self {
            BackupDestination::Local(path) => BackupDestination::Local(path.join(name)),
            BackupDestination::S3 { bucket, prefix } => BackupDestination::S3 {
                bucket: bucket.clone(),
                prefix: if prefix.is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                },
            },
        }
    }

    /// The store (`""` for local folders, `s3://bucket` for S3) and the
    /// path inside it, to tell whether two destinations overlap.
    pub(crate) fn key(&self) -> (String, PathBuf) {
        match self {
            BackupDestination::Local(path) => (
                String::new(),
                crate::parse::normalize(
                    &std::path::absolute(path).unwrap_or_else(|_| path.clone()),
                ),
            ),
            BackupDestination::S3 { bucket, prefix } => {
                (format!("s3://{bucket}"), PathBuf::from("/").join(prefix))
            }
        }
    }
}

impl fmt::Display for BackupDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupDestination::Local(path) => write!(f, "{}", path.display()),
            BackupDestination::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "s3://{bucket}")
            }
            BackupDestination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

const CRON_HELP: &str = "five fields, `minute hour day-of-month month day-of-week`, such as `0 */4 * * *` (every 4 hours) or `30 2 * * 0` (Sundays at 02:30), or `@hourly`, `@daily`, `@weekly`, `@monthly`";

/// Parses a schedule: standard five-field cron, no seconds and no year
/// (a backup every few seconds is not a backup policy, and a sixth field
/// would make Quartz-style expressions mean something else silently).
pub(crate) fn parse_cron(expression: &str) -> Result<Cron, Refusal> {
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(expression).map_err(|e| {
        let field = match bad_field(&parser, expression) {
            Some((name, value)) => format!("in the {name} field `{value}`: "),
            None => String::new(),
        };
        (
            format!("invalid schedule `{expression}`: {field}{e}"),
            Some(CRON_HELP.to_string()),
        )
    })?;
    // `0 0 30 2 *` parses but never fires: better said now than by a
    // daemon that silently never backs up.
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    if cron.find_next_occurrence(&epoch, false).is_err() {
        return Err((
            format!("the schedule `{expression}` never fires"),
            Some(CRON_HELP.to_string()),
        ));
    }
    Ok(cron)
}

/// The first field of a five-field expression that fails on its own (the
/// others set to `*`), by name: croner's reasons do not say which field
/// they are about.
fn bad_field<'e>(parser: &CronParser, expression: &'e str) -> Option<(&'static str, &'e str)> {
    const NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != NAMES.len() {
        return None;
    }
    (0..fields.len()).find_map(|i| {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { fields[j] } else { "*" })
            .collect();
        parser
            .parse(&alone.join(" "))
            .is_err()
            .then_some((NAMES[i], fields[i]))
    })
}

/// Parses an IANA time zone name (`Europe/Paris`, `UTC`).
pub(crate) fn parse_timezone(name: &str) -> Result<chrono_tz::Tz, Refusal> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        (
            format!("unknown time zone `{name}`"),
            Some("use an IANA time zone name such as `UTC`, `Europe/Paris` or `America/New_York`; leave `timezone` out for UTC".into()),
        )
    })
}

/// Parses a retention period: a whole number and a unit, `m` (minutes),
/// `h`, `d` or `w` (`30d`, `12h`, `4w`). Zero is refused: it would prune
/// every backup but the newest as soon as it is taken.
pub(crate) fn parse_retention(text: &str) -> Result<Duration, Refusal> {
    let help = || {
        Some("a whole number and a unit: `m` (minutes), `h` (hours), `d` (days) or `w` (weeks), such as `30d`, `12h` or `4w`".to_string())
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let unit_secs: u64 = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err((format!("invalid retention `{text}`"), help())),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| (format!("invalid retention `{text}`"), help()))?;
    if n == 0 {
        return Err((
            format!("retention `{text}` is zero: every backup but the newest would be pruned at once"),
            Some("give a period such as `30d`, or leave `retention` out to keep backups by `keep` alone or forever".into()),
        ));
    }
    // Past a thousand years the figure is a typo, and the seconds would
    // soon overflow the time arithmetic of a prune.
    const MAX_SECS: u64 = 1000 * 366 * 86_400;
    match n.checked_mul(unit_secs) {
        Some(secs) if secs <= MAX_SECS => Ok(Duration::from_secs(secs)),
        _ => Err((
            format!("retention `{text}` is longer than a thousand years"),
            Some("leave `retention` out to keep backups forever".into()),
        )),
    }
}

/// Parses a destination: a folder (relative to `root`, the folder of
/// silo.toml, or absolute), `file:///absolute/folder` or
/// `s3://bucket/prefix`.
pub(crate) fn parse_destination(text: &str, root: &Path) -> Result<BackupDestination, Refusal> {
    let help = || {
        Some("use a folder (relative to the folder of silo.toml, or absolute), `file:///absolute/folder` or `s3://bucket/prefix`".to_string())
    };
    if text.trim().is_empty() {
        return Err(("the destination is empty".into(), help()));
    }
    let Some((scheme, rest)) = url_scheme(text) else {
        return Ok(BackupDestination::Local(crate::parse::normalize(
            &root.join(text),
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => match rest.strip_prefix("//") {
            Some(path) if path.starts_with('/') => Ok(BackupDestination::Local(
                crate::parse::normalize(Path::new(path)),
            )),
            _ => Err((
                format!("the destination `{text}` is not a local folder: a file URL is `file://` and an absolute path"),
                Some("write `file:///var/backups/...` (three slashes), or a plain folder relative to silo.toml".into()),
            )),
        },
        "s3" => match rest.strip_prefix("//") {
            Some(rest) => parse_s3(text, rest),
            None => Err((
                format!("the destination `{text}` is not an S3 URL"),
                Some("write `s3://bucket/prefix`".into()),
            )),
        },
        _ => Err((
            format!("unknown destination scheme `{scheme}` in `{text}`"),
            help(),
        )),
    }
}

/// `scheme` and the rest of `text` when it starts like a URL (`x:`, with a
/// scheme of two characters or more so that `C:\...` stays a path).
fn url_scheme(text: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = text.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let url_like = scheme.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !scheme.contains('/');
    url_like.then_some((scheme, rest))
}

fn parse_s3(text: &str, rest: &str) -> Result<BackupDestination, Refusal> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // S3's bucket naming rules, which every S3-compatible server follows.
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !bucket.contains("..");
    if !bucket_ok {
        return Err((
            format!("invalid S3 bucket name `{bucket}` in `{text}`"),
            Some("a bucket name is 3 to 63 lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit: `s3://my-backups/battles`".into()),
        ));
    }
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err((
            format!("the S3 prefix in `{text}` has a `.` or `..` segment"),
            Some("write the prefix as plain names separated by `/`".into()),
        ));
    }
    Ok(BackupDestination::S3 {
        bucket: bucket.to_string(),
        prefix: segments.join("/"),
    })
}

/// Checks an age recipient: the bech32 encoding (BIP 173) of a 32-byte
/// X25519 public key with the human-readable part `age`. The checksum is
/// verified, so a mistyped character is caught here rather than when the
/// first encrypted backup is taken.
pub(crate) fn check_recipient(text: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| {
        Err((
            format!("invalid age recipient `{text}`: {why}"),
            Some("give X25519 recipients as `age-keygen` prints them (`age1` and 58 more characters); plugin and SSH recipients are not supported".into()),
        ))
    };
    let lower = text.to_ascii_lowercase();
    let Some(data) = lower.strip_prefix("age1") else {
        return refuse("it does not start with `age1`");
    };
    if text.chars().any(|c| c.is_ascii_uppercase()) && text.chars().any(|c| c.is_ascii_lowercase())
    {
        return refuse("it mixes upper and lower case");
    }
    if lower.len() != 62 {
        return refuse("an X25519 recipient is 62 characters long");
    }
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let mut values = Vec::with_capacity(data.len());
    for c in data.bytes() {
        match CHARSET.iter().position(|&x| x == c) {
            Some(v) => values.push(v as u8),
            None => return refuse("it has a character bech32 does not use"),
        }
    }
    let mut checked: Vec<u8> = b"age".iter().map(|c| c >> 5).collect();
    checked.push(0);
    checked.extend(b"age".iter().map(|c| c & 31));
    checked.extend(&values);
    if bech32_polymod(&checked) != 1 {
        return refuse("its checksum does not match (a character is mistyped)");
    }
    // 52 five-bit groups hold the key's 256 bits and 4 zero bits.
    if values[51] & 0x0f != 0 {
        return refuse("it does not encode a 32-byte key");
    }
    Ok(())
}

fn bech32_polymod(values: &[u8]) -> u32 {
    const GENERATORS: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk: u32 = 1;
    for &v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GENERATORS.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn a_real_recipient_passes_and_a_mistyped_one_fails() {
        check_recipient(RECIPIENT).unwrap();
        // Three more from `age-keygen`.
        for generated in [
            "age15mk65pw5e60l6sxmpp0s034anhktxe2mrgxkkf4585njcf62dc9sma3c33",
            "age1q3vq7gxj8wxc5n2zk64xa2zmzh0caqq8a3yfty0aaxudmwwhharqkzslyu",
            "age1z9gcq6ltektnnfm6hqecxc8303x3qj3wncul08jzzj5nplsaxekq6js05y",
        ] {
            check_recipient(generated).unwrap();
        }
        check_recipient(&RECIPIENT.to_uppercase()).unwrap();
        let typo = RECIPIENT.replace("ql3z", "ql3x");
        let (message, _) = check_recipient(&typo).unwrap_err();
        assert!(message.contains("checksum"), "{message}");
        let (message, _) = check_recipient("age1yubikey1qwerty").unwrap_err();
        assert!(message.contains("62 characters"), "{message}");
        let (message, _) = check_recipient("ssh-ed25519 AAAA").unwrap_err();
        assert!(message.contains("age1"), "{message}");
    }

    #[test]
    fn retention_periods() {
        assert_eq!(
            parse_retention("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_retention("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            parse_retention("4w").unwrap(),
            Duration::from_secs(28 * 86_400)
        );
        assert_eq!(
            parse_retention("90m").unwrap(),
            Duration::from_secs(90 * 60)
        );
        for bad in ["", "d", "30", "30 days", "-1d", "1.5d", "30s", "1y"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
        assert!(parse_retention("0d").unwrap_err().0.contains("zero"));
        assert!(
            parse_retention("99999999999999w")
                .unwrap_err()
                .0
                .contains("thousand")
        );
    }

    #[test]
    fn destinations() {
        let root = Path::new("/srv/proj");
        assert_eq!(
            parse_destination("backups/x", root).unwrap(),
            BackupDestination::Local("/srv/proj/backups/x".into())
        );
        assert_eq!(
            parse_destination("/var/b/../backups", root).unwrap(),
            BackupDestination::Local("/var/backups".into())
        );
        assert_eq!(
            parse_destination("file:///var/backups/battles", root).unwrap(),
            BackupDestination::Local("/var/backups/battles".into())
        );
        assert_eq!(
            parse_destination("s3://my-bucket/silo//battles/", root).unwrap(),
            BackupDestination::S3 {
                bucket: "my-bucket".into(),
                prefix: "silo/battles".into()
            }
        );
        assert_eq!(
            parse_destination("s3://my-bucket", root)
                .unwrap()
                .to_string(),
            "s3://my-bucket"
        );
        for (bad, says) in [
            ("gs://bucket/x", "unknown destination scheme `gs`"),
            ("file://var/backups", "not a local folder"),
            ("s3://My_Bucket/x", "bucket name"),
            ("s3://b/x", "bucket name"),
            ("s3://bucket/../x", "`..`"),
            ("s3:bucket", "not an S3 URL"),
            ("  ", "empty"),
        ] {
            let (message, _) = parse_destination(bad, root).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn cron_is_five_fields() {
        parse_cron("0 */4 * * *").unwrap();
        parse_cron("@daily").unwrap();
        parse_cron("30 2 * * SUN").unwrap();
        assert!(parse_cron("0 0 */4 * * *").is_err(), "six fields");
        let (message, _) = parse_cron("0 61 * * *").unwrap_err();
        assert!(
            message.starts_with("invalid schedule `0 61 * * *`: in the hour field `61`: "),
            "{message}"
        );
        let (message, _) = parse_cron("0 0 * * MON-FRII").unwrap_err();
        assert!(
            message.contains("in the day-of-week field `MON-FRII`"),
            "{message}"
        );
        assert!(
            parse_cron("0 0 30 2 *")
                .unwrap_err()
                .0
                .contains("never fires")
        );
    }

    #[test]
    fn schedules_read_their_zone() {
        let s = BackupSchedule::parse("0 3 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(s.timezone(), chrono_tz::Europe::Paris);
        assert_eq!(s.to_string(), "0 3 * * * (Europe/Paris)");
        assert_eq!(
            BackupSchedule::parse("0 3 * * *", None).unwrap().timezone(),
            chrono_tz::UTC
        );
        assert!(BackupSchedule::parse("0 3 * * *", Some("Mars/Olympus")).is_err());
    }
}
