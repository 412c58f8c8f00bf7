//! Numbered `$n` arguments for SQL assembled at run time (filters, scopes),
//! because sqlx's query builder writes `?`, which PostgreSQL does not read.

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

/// Collects values and hands out their `$n` placeholders.
#[derive(Debug, Default)]
pub struct Args(Vec<Arg>);

impl Args {
    /// A new, empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a text value; returns its placeholder.
    pub fn text(&mut self, v: impl Into<String>) -> String {
        self.0.push(Arg::Text(Some(v.into())));
        format!("${}", self.0.len())
    }

    /// Add a text NULL; returns its placeholder.
    pub fn null_text(&mut self) -> String {
        self.0.push(Arg::Text(None));
        format!("${}", self.0.len())
    }

    /// Add an integer value; returns its placeholder.
    pub fn int(&mut self, v: i64) -> String {
        self.0.push(Arg::Int(Some(v)));
        format!("${}", self.0.len())
    }

    /// Bind every value to a query, in order.
    pub fn bind<'q>(
        self,
        mut q: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for a in self.0 {
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
        for a in self.0 {
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
        for a in self.0 {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        q
    }
}
