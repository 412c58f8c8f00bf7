//! Why a license was refused, in words a self-hoster understands, each
//! with its own stable code.

use crate::clock::rfc3339;
use crate::error::{Code, Error};

use super::file::{BEGIN, END};
use super::payload::FORMAT_VERSION;

/// A license refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// Not an armored license at all.
    #[error("this is not a Kontor license file: {reason}. A license starts with `{BEGIN}` and ends with `{END}`; paste or upload the whole file unchanged")]
    BadArmor {
        /// What is wrong with the text.
        reason: String,
    },
    /// A part that must be base64 is not.
    #[error("the license is damaged: {part} is not valid base64 (a character was changed, added or lost, e.g. by an e-mail program); use the original file")]
    BadBase64 {
        /// Which part: the license text, the payload or the signature.
        part: &'static str,
    },
    /// Malformed JSON, missing or unknown fields, or fields that contradict each other.
    #[error("the license is damaged or was not made by Kontor's vendor: its {part} is not valid ({reason})")]
    BadJson {
        /// Which part: the envelope or the payload.
        part: &'static str,
        /// What the parser or the field check said.
        reason: String,
    },
    /// Signed with a key this build does not trust.
    #[error("{}", unknown_key_message(key_id, *test_key))]
    UnknownKey {
        /// The key id the file names (escaped, shortened).
        key_id: String,
        /// Whether it is the test key, which only development builds trust.
        test_key: bool,
    },
    /// The signature does not verify: the file was edited or damaged.
    #[error("the license signature does not match its contents (key {key_id}): the file was edited or damaged; use the original file from your vendor")]
    BadSignature {
        /// The key it claims.
        key_id: String,
    },
    /// A payload format this build does not read.
    #[error("the license has format version {found}, but this Kontor reads version {FORMAT_VERSION} only; update Kontor, or ask your vendor for a version {FORMAT_VERSION} license")]
    UnsupportedVersion {
        /// The version in the file.
        found: u64,
    },
    /// The valid-from date lies ahead.
    #[error("the license is valid from {} only, and this server's clock says {}; install it on or after that date (or correct the server's clock)", rfc3339(*valid_from), rfc3339(*now))]
    NotYetValid {
        /// Unix ms.
        valid_from: i64,
        /// Unix ms.
        now: i64,
    },
    /// Issued after "now" by more than the allowed drift: the clock is wrong.
    #[error("the license was issued at {}, but this server's clock says {}: more than 5 minutes earlier. The server's clock is probably wrong; correct it and try again", rfc3339(*issued_at), rfc3339(*now))]
    IssuedInFuture {
        /// Unix ms.
        issued_at: i64,
        /// Unix ms.
        now: i64,
    },
    /// Past its expiry date.
    #[error("the license expired at {} (this server's clock says {}); ask your vendor for a renewed license", rfc3339(*expired_at), rfc3339(*now))]
    Expired {
        /// Unix ms.
        expired_at: i64,
        /// Unix ms.
        now: i64,
    },
    /// Bound to another installation.
    #[error("the license is for another installation: {reason}. Ask your vendor for a license for this one (`kontor license status` shows its instance id)")]
    WrongInstance {
        /// What differs.
        reason: String,
    },
}

fn unknown_key_message(key_id: &str, test_key: bool) -> String {
    if test_key {
        format!("the license is signed with Kontor's test key ({key_id}), which only development builds trust; it cannot be used in production. Ask your vendor for a real license")
    } else {
        format!("the license is signed with key {key_id}, which this Kontor does not know: it was not issued by Kontor's vendor, or it needs a newer Kontor version")
    }
}

impl LicenseError {
    /// The stable code of this refusal.
    pub fn code(&self) -> Code {
        match self {
            LicenseError::BadArmor { .. } => Code::LicenseBadArmor,
            LicenseError::BadBase64 { .. } => Code::LicenseBadBase64,
            LicenseError::BadJson { .. } => Code::LicenseBadJson,
            LicenseError::UnknownKey { .. } => Code::LicenseUnknownKey,
            LicenseError::BadSignature { .. } => Code::LicenseBadSignature,
            LicenseError::UnsupportedVersion { .. } => Code::LicenseUnsupportedVersion,
            LicenseError::NotYetValid { .. } => Code::LicenseNotYetValid,
            LicenseError::IssuedInFuture { .. } => Code::LicenseIssuedInFuture,
            LicenseError::Expired { .. } => Code::LicenseExpired,
            LicenseError::WrongInstance { .. } => Code::LicenseWrongInstance,
        }
    }
}

/// As the API shows a refusal: `{"code", "message"}`.
impl serde::Serialize for LicenseError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut out = s.serialize_struct("LicenseError", 2)?;
        out.serialize_field("code", self.code().as_str())?;
        out.serialize_field("message", &self.to_string())?;
        out.end()
    }
}

impl From<LicenseError> for Error {
    fn from(e: LicenseError) -> Self {
        Error::new(e.code(), e.to_string())
    }
}
