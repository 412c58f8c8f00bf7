//! Numbered `$n` arguments for SQL assembled at run time (filters, scopes),
//! because sqlx's query builder writes `?`, which PostgreSQL does not read.
//!
//! SQLite reads `$n` as a *named* parameter and looks every name up in a
//! list while it parses: a statement with thousands of them (a bulk insert)
//! takes seconds to prepare. [`Args::in_order`] therefore writes plain `?`
//! on SQLite, for statements whose placeholders appear in the text in the
//! order they were added, each once.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::Any;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text or NULL.
    Text(Option<String>),
    /// Integer or NULL.
    Int(Option<i64>),
}

/// Collects values and hands out their placeholders.
#[derive(Debug, Default)]
pub struct Args {
    values: Vec<Arg>,
    /// Placeholders are plain `?` (SQLite, in-order statements).
    anonymous: bool,
}

impl Args {
    /// A new, empty list handing out `$n`: placeholders may appear in any
    /// order and more than once.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new, empty list for a statement whose placeholders appear in the
    /// text exactly in the order they are added, each once (bulk inserts,
    /// long `IN` lists): `?` on SQLite, `$n` on PostgreSQL.
    pub fn in_order(backend: super::Backend) -> Self {
        Args {
            values: Vec::new(),
            anonymous: backend == super::Backend::Sqlite,
        }
    }

    fn push(&mut self, arg: Arg) -> String {
        self.values.push(arg);
        if self.anonymous {
            "?".to_string()
        } else {
            format!("${}", self.values.len())
        }
    }

    /// Add a text value; returns its placeholder.
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.push(Arg::Text(Some(v.into())))
    }

    /// Add a text NULL; returns its placeholder.
    pub fn null_text(&mut self) -> String {
        self.push(Arg::Text(None))
    }

    /// Add an integer value; returns its placeholder.
    pub fn int(&mut self, v: i64) -> String {
        self.push(Arg::Int(Some(v)))
    }

    /// Bind every value to a query, in order.
    pub fn bind<'q>(
        self,
        mut q: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for a in self.values {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        q
    }

    /// Bind every value to a typed query, in order.
    pub fn bind_as<'q, O>(
        self,
        mut q: QueryAs<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryAs<'q, Any, O, AnyArguments<'q>> {
        for a in self.values {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        q
    }

    /// Bind every value to a scalar query, in order.
    pub fn bind_scalar<'q, O>(
        self,
        mut q: QueryScalar<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryScalar<'q, Any, O, AnyArguments<'q>> {
        for a in self.values {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        q
    }
}
