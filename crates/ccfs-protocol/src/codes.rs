//! Result codes (SPEC section 7) and the typed error every interface answers with.

use std::fmt;

/// A CC-FS result code. `Success` is `"0"`; the rest are errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultCode {
    Success,
    Null,
    Empty,
    TooLong,
    BadFormat,
    TooShort,
    BadVersion,
    NoBody,
    DownloadFlowControl,
    QueryFlowControl,
    FileNotFound,
    NoData,
    BeginAfterEnd,
    SpanTooLong,
    AccountNotOwned,
    AuthFailed,
    Internal,
}

impl ResultCode {
    /// Every code, in table order.
    pub const ALL: [ResultCode; 17] = [
        Self::Success,
        Self::Null,
        Self::Empty,
        Self::TooLong,
        Self::BadFormat,
        Self::TooShort,
        Self::BadVersion,
        Self::NoBody,
        Self::DownloadFlowControl,
        Self::QueryFlowControl,
        Self::FileNotFound,
        Self::NoData,
        Self::BeginAfterEnd,
        Self::SpanTooLong,
        Self::AccountNotOwned,
        Self::AuthFailed,
        Self::Internal,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::Null => "0300001",
            Self::Empty => "0300002",
            Self::TooLong => "0300003",
            Self::BadFormat => "0300004",
            Self::TooShort => "0300005",
            Self::BadVersion => "0300006",
            Self::NoBody => "0300007",
            Self::DownloadFlowControl => "0300008",
            Self::QueryFlowControl => "0300009",
            Self::FileNotFound => "0300011",
            Self::NoData => "0300012",
            Self::BeginAfterEnd => "0300013",
            Self::SpanTooLong => "0300014",
            Self::AccountNotOwned => "0300015",
            Self::AuthFailed => "0300401",
            Self::Internal => "0300500",
        }
    }

    /// Parses a wire code.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The description, with `{param}` (or `{reason}`, `{id}`) replaced by `param`.
    pub fn describe(self, param: &str) -> String {
        match self {
            Self::Success => "success".to_owned(),
            Self::Null => format!("The value of {param} cannot be null."),
            Self::Empty => format!("The value of {param} cannot be an empty string."),
            Self::TooLong => format!("The length of {param} is too long."),
            Self::BadFormat => format!("The format of {param} is incorrect."),
            Self::TooShort => format!("The length of {param} is too short."),
            Self::BadVersion => {
                "The value of version is error, current version is 2.0 .".to_owned()
            }
            Self::NoBody => "The params of requestBody is null.".to_owned(),
            Self::DownloadFlowControl => "Reached the download flow control threshold.".to_owned(),
            Self::QueryFlowControl => "Reached the query flow control threshold.".to_owned(),
            Self::FileNotFound => "The file does not exist.".to_owned(),
            Self::NoData => "No data found.".to_owned(),
            Self::BeginAfterEnd => "The beginTime cannot be later than the endTime.".to_owned(),
            Self::SpanTooLong => {
                format!("The time span between beginTime and endTime exceeds {param}.")
            }
            Self::AccountNotOwned => "The accountId does not belong to the developer.".to_owned(),
            Self::AuthFailed => format!("Authentication failed: {param}."),
            Self::Internal => format!("Internal error; the request id is {param}."),
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a result code and the description that goes with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {desc}")]
pub struct ApiError {
    pub code: ResultCode,
    pub desc: String,
}

impl ApiError {
    /// An error whose description takes a parameter (a field name, a limit, a reason).
    pub fn new(code: ResultCode, param: &str) -> Self {
        Self {
            code,
            desc: code.describe(param),
        }
    }

    /// An error whose description has no parameter.
    pub fn plain(code: ResultCode) -> Self {
        Self::new(code, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for c in ResultCode::ALL {
            assert_eq!(ResultCode::from_code(c.as_str()), Some(c));
        }
        assert_eq!(ResultCode::from_code("42"), None);
    }

    #[test]
    fn descriptions_fill_the_parameter() {
        assert_eq!(
            ApiError::new(ResultCode::Null, "beginTime").desc,
            "The value of beginTime cannot be null."
        );
        assert_eq!(
            ApiError::plain(ResultCode::BadVersion).desc,
            "The value of version is error, current version is 2.0 ."
        );
    }
}
