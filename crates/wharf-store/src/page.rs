//! Keyset pagination for the API's `Range` header.

use wharf_core::range::{Order, Range};

use crate::{Result, StoreError};

/// One page of a list, and whether more items follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The sort value of the last item, when more items remain after this page.
    pub next_after: Option<String>,
}

/// How a sortable field compares in SQL.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldKind {
    Text,
    Integer,
}

/// The `WHERE`, `ORDER BY` and `LIMIT` parts for `range` over `column`, with their bind values.
/// Placeholders are numbered from `first_param`.
pub(crate) struct KeysetQuery {
    pub conditions: Vec<String>,
    pub binds: Vec<Bind>,
    pub order_by: String,
    pub limit: i64,
}

pub(crate) enum Bind {
    Text(String),
    Integer(i64),
}

impl KeysetQuery {
    pub(crate) fn new(
        range: &Range,
        column: &str,
        kind: FieldKind,
        first_param: usize,
    ) -> Result<KeysetQuery> {
        let mut conditions = Vec::new();
        let mut binds = Vec::new();
        let (after, before) = match range.order {
            Order::Asc => (">", "<"),
            Order::Desc => ("<", ">"),
        };
        let mut push = |value: &str, op: String| -> Result<()> {
            let bind = match kind {
                FieldKind::Text => Bind::Text(value.to_owned()),
                FieldKind::Integer => Bind::Integer(value.parse::<i64>().map_err(|_| {
                    StoreError::Invalid(format!(
                        "Range bound `{value}` for `{}` must be a whole number",
                        range.field
                    ))
                })?),
            };
            conditions.push(format!("{column} {op} ${}", first_param + binds.len()));
            binds.push(bind);
            Ok(())
        };
        if let Some(start) = &range.start {
            let op = if range.start_exclusive {
                after.to_owned()
            } else {
                format!("{after}=")
            };
            push(start, op)?;
        }
        if let Some(end) = &range.end {
            push(end, format!("{before}="))?;
        }
        let direction = match range.order {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        };
        Ok(KeysetQuery {
            conditions,
            binds,
            order_by: format!("{column} {direction}"),
            // One more than asked for tells whether another page follows.
            limit: i64::from(range.max) + 1,
        })
    }

    /// Cuts the extra row off and records where the next page starts.
    pub(crate) fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let max = usize::try_from(self.limit - 1).unwrap_or(usize::MAX);
        let next_after = if items.len() > max {
            items.truncate(max);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next_after }
    }
}

/// Binds every value of `binds` to `query`, in order.
pub(crate) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for bind in binds {
        query = match bind {
            Bind::Text(s) => query.bind(s.as_str()),
            Bind::Integer(i) => query.bind(*i),
        };
    }
    query
}
