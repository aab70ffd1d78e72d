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

/// The remark after the supported schemes for a scheme that is planned but not built yet.
fn planned(scheme: &str, planned: &[(&str, &str)]) -> String {
    planned
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(scheme))
        .map(|(_, what)| format!(" ({what} is not supported yet)"))
        .unwrap_or_default()
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
    pub const SUPPORTED: &'static str = "file://DIR or a plain directory path";

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
            Some(s) => Err(refuse(format!(
                "unsupported scheme \"{s}\"{}",
                planned(s, &[("s3", "S3")])
            ))),
            None if url.trim().is_empty() => Err(refuse("empty".into())),
            None => Ok(BlobUrl::Local(PathBuf::from(url))),
        }
    }

    /// The default: `{data_dir}/files`.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        BlobUrl::Local(data_dir.join("files"))
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
        let e = BlobUrl::parse("s3://AKIA:secret@bucket/prefix").unwrap_err();
        assert_eq!(
            e,
            "blob_url \"s3://bucket/prefix\": unsupported scheme \"s3\" (S3 is not supported \
             yet); supported: file://DIR or a plain directory path"
        );
        let e = BlobUrl::parse("gs://bucket").unwrap_err();
        assert!(e.contains("unsupported scheme \"gs\";"), "{e}");
        assert!(BlobUrl::parse("").is_err());
        assert!(BlobUrl::parse("file://").is_err());
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
