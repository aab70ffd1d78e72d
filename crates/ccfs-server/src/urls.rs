//! Where the store and the file store live: `database_url` and `blob_url`, read once when the
//! configuration is loaded into the kinds this server can open, so a URL it cannot open is
//! refused at start with the schemes it can, instead of becoming a local path.
//!
//! Messages show a URL without its user name, password and query, which may hold secrets.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the store is (`database_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DatabaseUrl {
    /// `sqlite://PATH` (or `sqlite:PATH`): an SQLite database file, created when missing.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database (which must exist), shared by
    /// any number of nodes.
    Postgres(PostgresUrl),
}

/// A PostgreSQL connection URL, which may hold a password: shown (`Display`, `Debug`) without
/// its user info and query, and handed whole only to the driver ([`PostgresUrl::expose`]).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    /// The whole URL, password included: for connecting, never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({:?})", redact(&self.0))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.0))
    }
}

/// Where finished exports are kept (`blob_url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BlobUrl {
    /// `file://DIR` or a plain directory path: a local directory, created when missing.
    Local(PathBuf),
    /// `s3://BUCKET/PREFIX`: objects under `PREFIX/` in an S3-compatible bucket (which must
    /// exist), shared by any number of nodes.
    S3(S3Location),
}

/// A bucket and a key prefix: where `s3://BUCKET/PREFIX` puts the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's root.
    prefix: String,
}

impl S3Location {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/`; empty for the bucket's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// The scheme of `url` (`postgres` in `postgres://…`), when it starts with one: a letter, then
/// letters, digits, `+`, `-` or `.`, then `:`. A one-letter scheme is taken for a Windows drive.
fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && scheme.len() > 1).then_some(scheme)
}

/// `url` without what may be secret: the user name and password before `@` in the authority,
/// and the query.
pub fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    // Everything up to the last `@` may be user info: a password may hold `/`, `?` or `@`.
    // Cutting at the last one can only hide more than needed, never show a password.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = match rest.split_once('?') {
        Some((before, _)) => format!("{before}?…"),
        None => rest.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{rest}"),
        None => rest,
    }
}

impl DatabaseUrl {
    /// The schemes this server opens, as a message lists them.
    pub const SUPPORTED: &'static str =
        "sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE";

    /// Reads a `database_url`; the error names the key, the URL (without secrets) and the
    /// supported schemes.
    pub fn parse(url: &str) -> Result<Self, String> {
        let refuse = |why: String| {
            format!(
                "database_url \"{}\": {why}; supported: {}",
                redact(url),
                Self::SUPPORTED
            )
        };
        match scheme(url) {
            Some(s) if s.eq_ignore_ascii_case("sqlite") => {
                let rest = &url[s.len() + 1..];
                let path = rest.strip_prefix("//").unwrap_or(rest);
                if path.is_empty() {
                    return Err(refuse("no file path after the scheme".into()));
                }
                if path.contains('?') || path.starts_with(':') {
                    return Err(refuse(
                        "options (?…) and in-memory databases are not supported".into(),
                    ));
                }
                Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
            }
            Some(s)
                if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") =>
            {
                if !url[s.len() + 1..].starts_with("//") {
                    return Err(refuse(format!("write {s}://HOST/DATABASE")));
                }
                // The parser's messages never quote the URL, so none can show a password.
                if let Err(e) = url::Url::parse(url) {
                    return Err(refuse(format!("not a valid URL ({e})")));
                }
                Ok(DatabaseUrl::Postgres(PostgresUrl(url.to_owned())))
            }
            Some(s) => Err(refuse(format!("unsupported scheme \"{s}\""))),
            None => Err(refuse(format!(
                "no scheme (for an SQLite file write sqlite://{})",
                redact(url)
            ))),
        }
    }

    /// The default: `{data_dir}/ccfs.db`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        DatabaseUrl::Sqlite(data_dir.join("ccfs.db"))
    }
}

impl BlobUrl {
    /// The schemes this server opens, as a message lists them.
    pub const SUPPORTED: &'static str = "file://DIR, a plain directory path, s3://BUCKET/PREFIX";

    /// Reads a `blob_url`; the error names the key, the URL (without secrets) and the supported
    /// schemes.
    pub fn parse(url: &str) -> Result<Self, String> {
        let refuse = |why: String| {
            format!(
                "blob_url \"{}\": {why}; supported: {}",
                redact(url),
                Self::SUPPORTED
            )
        };
        // A path may hold a colon (`./a:b`); only `scheme://` or a known scheme makes a URL.
        let scheme = scheme(url).filter(|s| url[s.len()..].starts_with("://"));
        match scheme {
            Some(s) if s.eq_ignore_ascii_case("file") => {
                let path = &url[s.len() + 3..];
                if path.is_empty() {
                    return Err(refuse("no directory after the scheme".into()));
                }
                Ok(BlobUrl::Local(PathBuf::from(path)))
            }
            Some(s) if s.eq_ignore_ascii_case("s3") => Self::parse_s3(&url[s.len() + 3..])
                .map(BlobUrl::S3)
                .map_err(refuse),
            Some(s) => Err(refuse(format!("unsupported scheme \"{s}\""))),
            None if url.trim().is_empty() => Err(refuse("empty".into())),
            None => Ok(BlobUrl::Local(PathBuf::from(url))),
        }
    }

    /// `BUCKET/PREFIX` of an `s3://` URL. Credentials belong in `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (or the configuration keys of the same names), never in the URL,
    /// where they would end up in messages and process listings.
    fn parse_s3(rest: &str) -> Result<S3Location, String> {
        if rest.contains('@') {
            return Err(
                "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and \
                        AWS_SECRET_ACCESS_KEY (or aws_access_key_id and aws_secret_access_key)"
                    .into(),
            );
        }
        if rest.contains(['?', '#']) {
            return Err("options (?…) are not supported; the aws_* keys set the connection".into());
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3–63 lower-case letters, digits, `-` and `.`, starting
        // and ending with a letter or digit.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid_bucket {
            return Err(format!(
                "\"{bucket}\" is not a bucket name (3-63 lower-case letters, digits, '-' or '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|part| part.is_empty() && !prefix.is_empty())
            || prefix.split('/').any(|part| part == "." || part == "..")
        {
            return Err(format!(
                "\"{prefix}\" is not a key prefix (empty, . or .. parts)"
            ));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The default: `{data_dir}/files`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        BlobUrl::Local(data_dir.join("files"))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, String> {
        Self::parse(url)
    }
}

impl std::str::FromStr for BlobUrl {
    type Err = String;
    fn from_str(url: &str) -> Result<Self, String> {
        Self::parse(url)
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        Self::parse(&url)
    }
}

impl TryFrom<String> for BlobUrl {
    type Error = String;
    fn try_from(url: String) -> Result<Self, String> {
        Self::parse(&url)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Display for BlobUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobUrl::Local(path) => write!(f, "{}", path.display()),
            BlobUrl::S3(at) if at.prefix.is_empty() => write!(f, "s3://{}", at.bucket),
            BlobUrl::S3(at) => write!(f, "s3://{}/{}", at.bucket, at.prefix),
        }
    }
}

/// The whole URL, password included, so that a configuration written back reads the same;
/// messages use `Display`, which leaves the password out.
impl From<DatabaseUrl> for String {
    fn from(url: DatabaseUrl) -> String {
        match url {
            DatabaseUrl::Postgres(url) => url.0,
            other => other.to_string(),
        }
    }
}

impl From<BlobUrl> for String {
    fn from(url: BlobUrl) -> String {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_become_paths() {
        let p = |u: &str| DatabaseUrl::parse(u).unwrap();
        assert_eq!(
            p("sqlite:///var/lib/ccfs/ccfs.db"),
            DatabaseUrl::Sqlite("/var/lib/ccfs/ccfs.db".into())
        );
        assert_eq!(
            p("sqlite://data/ccfs.db"),
            DatabaseUrl::Sqlite("data/ccfs.db".into())
        );
        assert_eq!(
            p("sqlite:data/ccfs.db"),
            DatabaseUrl::Sqlite("data/ccfs.db".into())
        );
        assert_eq!(
            p("SQLite:///x y/a.db"),
            DatabaseUrl::Sqlite("/x y/a.db".into())
        );
        assert_eq!(p("sqlite:///a.db").to_string(), "sqlite:///a.db");
    }

    #[test]
    fn postgres_urls_are_accepted_and_shown_without_the_password() {
        for url in [
            "postgres://ccfs:s3cret@db.example.com:5432/ccfs?sslmode=require&password=x",
            "postgresql://ccfs:s3cret@db.example.com:5432/ccfs?sslmode=require&password=x",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            let DatabaseUrl::Postgres(pg) = &parsed else {
                panic!("{url}: {parsed:?}");
            };
            assert_eq!(pg.expose(), url);
            let shown = parsed.to_string();
            assert!(shown.ends_with("://db.example.com:5432/ccfs?…"), "{shown}");
            assert!(!format!("{parsed:?}").contains("s3cret"));
            assert!(!shown.contains("s3cret"));
            // Written back whole, so that it reads the same.
            assert_eq!(String::from(parsed.clone()), url);
        }
        let e = DatabaseUrl::parse("postgres:db").unwrap_err();
        assert!(e.contains("write postgres://HOST/DATABASE"), "{e}");
        let e = DatabaseUrl::parse("postgres://u:pw@host:notaport/db").unwrap_err();
        assert!(e.contains("not a valid URL"), "{e}");
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn other_database_schemes_are_refused_with_the_supported_ones_and_no_password() {
        let e = DatabaseUrl::parse("mysql://root:pw@localhost/ccfs?password=x").unwrap_err();
        assert_eq!(
            e,
            "database_url \"mysql://localhost/ccfs?…\": unsupported scheme \"mysql\"; \
             supported: sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE"
        );
        assert!(!e.contains("pw"), "{e}");
        let e = DatabaseUrl::parse("/var/lib/ccfs.db").unwrap_err();
        assert!(e.contains("write sqlite:///var/lib/ccfs.db"), "{e}");
        for bad in ["sqlite://", "sqlite::memory:", "sqlite://a.db?mode=ro"] {
            let e = DatabaseUrl::parse(bad).unwrap_err();
            assert!(e.contains("supported: sqlite://PATH"), "{bad}: {e}");
        }
    }

    #[test]
    fn blob_urls_are_directories_and_other_schemes_are_refused() {
        let p = |u: &str| BlobUrl::parse(u).unwrap();
        assert_eq!(p("file:///srv/ccfs"), BlobUrl::Local("/srv/ccfs".into()));
        assert_eq!(p("/srv/ccfs"), BlobUrl::Local("/srv/ccfs".into()));
        assert_eq!(p("files"), BlobUrl::Local("files".into()));
        assert_eq!(p("./a:b"), BlobUrl::Local("./a:b".into()));
        let e = BlobUrl::parse("gs://bucket").unwrap_err();
        assert!(e.contains("unsupported scheme \"gs\";"), "{e}");
        assert!(BlobUrl::parse("").is_err());
        assert!(BlobUrl::parse("file://").is_err());
    }

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix_and_never_credentials() {
        let s3 = |u: &str| match BlobUrl::parse(u) {
            Ok(BlobUrl::S3(at)) => (at.bucket().to_owned(), at.prefix().to_owned()),
            other => panic!("{u}: {other:?}"),
        };
        assert_eq!(s3("s3://ccfs-exports"), ("ccfs-exports".into(), "".into()));
        assert_eq!(s3("s3://ccfs-exports/"), ("ccfs-exports".into(), "".into()));
        assert_eq!(
            s3("S3://b.example/a/b/"),
            ("b.example".into(), "a/b".into())
        );
        assert_eq!(
            BlobUrl::parse("s3://bkt/cluster/one").unwrap().to_string(),
            "s3://bkt/cluster/one"
        );
        let e = BlobUrl::parse("s3://AKIAX:pw-xyzzy@bucket/prefix").unwrap_err();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(!e.contains("xyzzy") && !e.contains("AKIAX"), "{e}");
        for bad in [
            "s3://",
            "s3://B",
            "s3://Upper/x",
            "s3://-b-/x",
            "s3://bkt/a//b",
            "s3://bkt/../x",
        ] {
            let e = BlobUrl::parse(bad).unwrap_err();
            assert!(e.contains("supported: file://DIR"), "{bad}: {e}");
        }
        assert!(BlobUrl::parse("s3://bkt/x?region=y").is_err());
    }

    #[test]
    fn redaction_keeps_host_and_path_only() {
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u:p@h"), "postgres://h");
        assert_eq!(redact("s3://b/p?k=v"), "s3://b/p?…");
        assert_eq!(redact("/plain/path"), "/plain/path");
        // Passwords holding `/`, `?` or `@` stay hidden.
        assert_eq!(redact("postgres://u:pa/ss@h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u:p?ss@h/db?x=1"), "postgres://h/db?…");
        assert_eq!(
            redact("postgres://u:p@ss@h:5432/db"),
            "postgres://h:5432/db"
        );
    }
}
