//! The checksums other tools keep of a migration file, computed the way
//! each tool computes them, so `silo migrations adopt` can tell whether
//! the file it has is the file the tool applied.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha384};

/// Flyway's checksum: CRC-32 over the file's lines without their line
/// endings, the first line without a byte-order mark, as a signed 32-bit
/// integer. Flyway reads lines with Java's `BufferedReader.readLine`, which
/// ends a line at `\n`, `\r` or `\r\n`; feeding the lines one after the
/// other into one CRC is the CRC of the text with every `\r` and `\n` left
/// out.
pub fn flyway(bytes: &[u8]) -> i32 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut digest = CRC.digest();
    for line in bytes.split(|b| *b == b'\n' || *b == b'\r') {
        digest.update(line);
    }
    // Java's `(int) crc32.getValue()`: the same 32 bits, read as signed.
    digest.finalize() as i32
}

/// sqlx's checksum: SHA-384 of the file exactly as it is (sqlx reads it
/// with `read_to_string` and hashes the text), in lower-case hex.
///
/// sqlx 0.9 can be told to ignore some characters (`migrate.ignored-chars`
/// in `sqlx.toml`); a project that set it has other checksums, and adopt
/// reports them as mismatches.
pub fn sqlx(bytes: &[u8]) -> String {
    hex(&Sha384::digest(bytes))
}

/// refinery's checksum: SipHash-1-3 with zero keys over the migration's
/// name (the part of the file name after `__`, without `.sql`), its version
/// and its SQL, hashed as refinery hashes them (`Hash` of `String`, of the
/// version's integer type, of `&str`). Versions are `i32` unless refinery
/// was built with `int8-versions`, where they are `i64`: both are returned,
/// the `i64` one only when the version fits it.
pub fn refinery(name: &str, version: i64, sql: &str) -> Vec<u64> {
    let with = |hash_version: &dyn Fn(&mut siphasher::sip::SipHasher13)| {
        let mut hasher = siphasher::sip::SipHasher13::new();
        name.hash(&mut hasher);
        hash_version(&mut hasher);
        sql.hash(&mut hasher);
        hasher.finish()
    };
    let mut out = Vec::new();
    if let Ok(v) = i32::try_from(version) {
        out.push(with(&|h| v.hash(h)));
    }
    out.push(with(&|h| version.hash(h)));
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values below were computed outside Rust:
    //   python3 -c 'import zlib; print(zlib.crc32(b"CREATE TABLE a (id int);SELECT 1;"))'
    //   -> 1455298515 (below 2^31, so the same as a signed integer)
    // and Java agrees: a java.util.zip.CRC32 updated with each line that
    // BufferedReader.readLine() returns, BOM dropped from the first, gives
    // (int) getValue() = 1455298515 for the LF, CRLF and BOM inputs below.
    #[test]
    fn flyway_ignores_line_endings_and_the_bom() {
        let expected = 1_455_298_515;
        assert_eq!(flyway(b"CREATE TABLE a (id int);\nSELECT 1;\n"), expected);
        assert_eq!(flyway(b"CREATE TABLE a (id int);\r\nSELECT 1;"), expected);
        assert_eq!(
            flyway(b"CREATE TABLE a (id int);\rSELECT 1;\r\n\r\n"),
            expected
        );
        assert_eq!(
            flyway(b"\xEF\xBB\xBFCREATE TABLE a (id int);\nSELECT 1;\n"),
            expected
        );
        assert_ne!(flyway(b"CREATE TABLE a (id int);\nSELECT 2;\n"), expected);
        // An empty file: CRC-32 of nothing.
        assert_eq!(flyway(b""), 0);
        // Above 2^31 the value is negative, as Flyway stores it:
        // zlib.crc32(b"x") = 2363233923 = 2^32 - 1931733373.
        assert_eq!(flyway(b"x\n"), -1_931_733_373);
    }

    // refinery hashes `name`, `version` and `sql` with Rust's `Hash`: the
    // bytes of a str then 0xff, the integer's little-endian bytes. Python
    // 3.11 hashes bytes with SipHash-1-3, with zero keys under
    // PYTHONHASHSEED=0, so the expected values come from:
    //   PYTHONHASHSEED=0 python3 -c 'print(hash(b"initial\xff" +
    //     (1).to_bytes(4, "little") + b"CREATE TABLE persons (id int,
    //     name varchar(255), city varchar(255));\xff") % 2**64)'
    // (8 bytes of version for the int8-versions value).
    #[test]
    fn refinery_is_siphash13_of_name_version_and_sql() {
        let sql = "CREATE TABLE persons (id int, name varchar(255), city varchar(255));";
        assert_eq!(
            refinery("initial", 1, sql),
            [9_011_118_159_008_407_467, 4_937_351_808_774_016_580]
        );
        // A version past i32 has only the int8-versions checksum.
        assert_eq!(refinery("initial", 1 << 40, sql).len(), 1);
    }

    // python3 -c 'import hashlib; print(hashlib.sha384(b"SELECT 1;\n").hexdigest())'
    #[test]
    fn sqlx_is_sha384_of_the_bytes() {
        assert_eq!(
            sqlx(b"SELECT 1;\n"),
            "24454095d8d7876ca8e842f34296ca645c83e0f7b50f048c99db4b2ff4da659267afc4ef3e994f3d74e18c741165d931"
        );
    }
}
