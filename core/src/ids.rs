//! Typed identifiers.
//!
//! Every id is a UUIDv7 (time-ordered, so keyset paging by id is stable and
//! inserts stay local in indexes) stored as text. Wrapping each in its own
//! type makes it a compile error to pass a customer id where a tenant id is
//! expected — and [`TenantId`] can only be obtained from the authenticated
//! principal or from trusted server-side code, never parsed from a request.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, time-ordered id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// The tenant that scopes a query. Comes from the principal, never from input.
    TenantId
);
id_type!(
    /// A user (staff member, reseller, portal customer...).
    UserId
);
id_type!(
    /// A customer record in the CRM.
    CustomerId
);

impl TenantId {
    /// Rebuild from a value read back from the database or from trusted
    /// server-side configuration (CLI flags of an operator, the session row).
    pub fn from_trusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl UserId {
    /// Rebuild from a stored value.
    pub fn from_trusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

impl CustomerId {
    /// A customer id named in a request path. Anyone can name any id; every
    /// query that uses it is also scoped by the caller's [`TenantId`].
    pub fn from_path(s: impl Into<String>) -> Self {
        Self(s.into())
    }
}

/// A fresh id for rows without a typed id of their own (notes, jobs...).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
