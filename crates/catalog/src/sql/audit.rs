//! The audit log: the SQL of [`AuditStore`]. Rows are only inserted, read and pruned by age.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;

use super::{ColumnType, Dialect, SqlStore, corrupt, uuid};
use crate::model::{ActorFilter, AuditActor, AuditEvent, AuditQuery};
use crate::{AuditStore, Result, StoreError, from_millis, millis};

const AUDIT_COLUMNS: &str =
    "id, at, actor_token, actor_name, action, target, status, source_ip, user_agent, request_id, detail";

super::row! {
    struct AuditRow {
        id: String,
        at: i64,
        actor_token: String,
        actor_name: String,
        action: String,
        target: String,
        status: i64,
        source_ip: Option<String>,
        user_agent: Option<String>,
        request_id: String,
        detail: Option<String>,
    }
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<AuditEvent> {
        const T: &str = "audit_events";
        let detail = row
            .detail
            .map(|json| serde_json::from_str(&json).map_err(|e| corrupt(T, format!("detail {json:?}: {e}"))))
            .transpose()?;
        Ok(AuditEvent {
            id: uuid(T, &row.id)?,
            at: from_millis(T, row.at)?,
            actor: AuditActor { token: uuid(T, &row.actor_token)?, name: row.actor_name },
            action: row.action,
            target: row.target,
            status: u16::try_from(row.status).map_err(|_| corrupt(T, format!("status {}", row.status)))?,
            source_ip: row.source_ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            detail,
        })
    }
}

/// A value a generated statement binds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Number(i64),
}

/// A statement's text and its parameters, built condition by condition.
#[derive(Debug, Default)]
struct Statement {
    sql: String,
    values: Vec<Value>,
}

impl Statement {
    /// Appends `text`, in which each `?` stands for the next of `values`.
    fn push<D: Dialect>(&mut self, text: &str, values: impl IntoIterator<Item = Value>) {
        let mut parts = text.split('?');
        self.sql.push_str(parts.next().unwrap_or_default());
        for (part, value) in parts.zip(values) {
            self.values.push(value);
            D::write_parameter(&mut self.sql, self.values.len());
            self.sql.push_str(part);
        }
    }
}

/// The statement that reads a page of `query`: only the filters the query has, so that each can
/// use its index. A target is a prefix, compared by `substr`, which counts characters on both
/// databases (a `LIKE` would read `%` and `_` in it as wildcards, and PostgreSQL's `<` follows
/// the database's collation, not bytes).
fn select_page<D: Dialect>(query: &AuditQuery, limit: u32) -> Statement {
    use Value::{Number, Text};
    let mut s = Statement::default();
    s.push::<D>(&format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1"), []);
    match &query.actor {
        Some(ActorFilter::Token(token)) => s.push::<D>(" AND actor_token = ?", [Text(token.to_string())]),
        Some(ActorFilter::Name(name)) => s.push::<D>(" AND actor_name = ?", [Text(name.clone())]),
        None => {}
    }
    if let Some(action) = &query.action {
        s.push::<D>(" AND action = ?", [Text(action.clone())]);
    }
    if let Some(target) = &query.target {
        let length = i64::try_from(target.chars().count()).unwrap_or(i64::MAX);
        s.push::<D>(" AND substr(target, 1, CAST(? AS INTEGER)) = ?", [Number(length), Text(target.clone())]);
    }
    if let Some(since) = query.since {
        s.push::<D>(" AND at >= ?", [Number(millis(since))]);
    }
    if let Some(until) = query.until {
        s.push::<D>(" AND at < ?", [Number(millis(until))]);
    }
    if let Some(after) = query.after {
        let at = millis(after.at);
        s.push::<D>(" AND (at < ? OR (at = ? AND id < ?))", [Number(at), Number(at), Text(after.id.to_string())]);
    }
    s.push::<D>(" ORDER BY at DESC, id DESC LIMIT ?", [Number(i64::from(limit))]);
    s
}

#[async_trait]
impl<D: Dialect> AuditStore for SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
    for<'q> &'q str: Encode<'q, D> + Type<D> + ColumnIndex<D::Row>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    usize: ColumnIndex<D::Row>,
    String: ColumnType<D>,
    Option<String>: ColumnType<D>,
    i64: ColumnType<D>,
    Option<i64>: ColumnType<D>,
    bool: ColumnType<D>,
    Vec<u8>: ColumnType<D>,
{
    async fn record_audit(&self, e: &AuditEvent) -> Result<()> {
        let detail = e.detail.as_ref().map(serde_json::Value::to_string);
        sqlx::query(
            "INSERT INTO audit_events \
             (id, at, actor_token, actor_name, action, target, status, source_ip, user_agent, request_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(e.id.to_string())
        .bind(millis(e.at))
        .bind(e.actor.token.to_string())
        .bind(e.actor.name.as_str())
        .bind(e.action.as_str())
        .bind(e.target.as_str())
        .bind(i64::from(e.status))
        .bind(e.source_ip.as_deref())
        .bind(e.user_agent.as_deref())
        .bind(e.request_id.as_str())
        .bind(detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery, limit: u32) -> Result<Vec<AuditEvent>> {
        let statement = select_page::<D>(query, limit);
        let mut select = sqlx::query_as::<D, AuditRow>(&statement.sql);
        for value in &statement.values {
            select = match value {
                Value::Text(text) => select.bind(text.as_str()),
                Value::Number(n) => select.bind(*n),
            };
        }
        select.fetch_all(&self.pool).await?.into_iter().map(AuditEvent::try_from).collect()
    }

    async fn prune_audit(&self, before: OffsetDateTime, limit: u32) -> Result<u64> {
        // In chunks, so that a first prune of a long log does not hold the writer for long.
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE id IN \
             (SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(millis(before))
        .bind(i64::from(limit))
        .execute(&self.writer)
        .await?;
        Ok(D::rows_affected(&done))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::model::AuditCursor;

    #[test]
    fn a_page_binds_only_the_filters_it_has() {
        let all = select_page::<sqlx::Postgres>(&AuditQuery::default(), 100);
        assert!(all.sql.ends_with("WHERE 1 = 1 ORDER BY at DESC, id DESC LIMIT $1"), "{}", all.sql);
        assert_eq!(all.values, vec![Value::Number(100)]);

        let id = Uuid::nil();
        let at = OffsetDateTime::from_unix_timestamp(1_796_119_200).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let query = AuditQuery {
            actor: Some(ActorFilter::Name("ci".to_owned())),
            target: Some("/api/v1/projects/é".to_owned()),
            after: Some(AuditCursor { at, id }),
            ..AuditQuery::default()
        };
        let page = select_page::<sqlx::Sqlite>(&query, 10);
        assert!(
            page.sql.contains(
                "AND actor_name = ? AND substr(target, 1, CAST(? AS INTEGER)) = ? AND (at < ? OR (at = ? AND id < ?)) ORDER BY"
            ),
            "{}",
            page.sql
        );
        let ms = millis(at);
        assert_eq!(
            page.values,
            vec![
                Value::Text("ci".to_owned()),
                Value::Number(18),
                Value::Text("/api/v1/projects/é".to_owned()),
                Value::Number(ms),
                Value::Number(ms),
                Value::Text(id.to_string()),
                Value::Number(10),
            ]
        );
    }
}
