//! API tokens: the SQL of [`TokenStore`].

use async_trait::async_trait;
use byos_domain::{ProjectAccess, Role, TokenName};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt, uuid};
use crate::model::{NewSession, NewToken, ProjectGrant, Session, Token};
use crate::{Conflict, Result, StoreError, TokenStore, from_millis, millis};

const TOKEN_COLUMNS: &str = "id, name, role, projects, hint, created_at, last_used_at, expires_at";

super::row! {
    struct TokenRow {
        id: String,
        name: String,
        role: String,
        projects: String,
        hint: String,
        created_at: i64,
        last_used_at: Option<i64>,
        expires_at: Option<i64>,
    }
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Token> {
        const T: &str = "api_tokens";
        let projects = grants(&row.projects).map_err(|e| corrupt(T, e))?;
        Ok(Token {
            id: uuid(T, &row.id)?,
            name: TokenName::parse(&row.name).map_err(|e| corrupt(T, e))?,
            role: Role::parse(&row.role).ok_or_else(|| corrupt(T, format!("role {:?}", row.role)))?,
            projects,
            hint: row.hint,
            created_at: from_millis(T, row.created_at)?,
            last_used_at: row.last_used_at.map(|ms| from_millis(T, ms)).transpose()?,
            expires_at: row.expires_at.map(|ms| from_millis(T, ms)).transpose()?,
        })
    }
}

/// A token's projects as stored: a JSON list of `{"id", "access"}`; a bare id, as tokens made
/// before access levels were written, is `read-write`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredGrant {
    Grant { id: Uuid, access: ProjectAccess },
    Id(Uuid),
}

fn grants(json: &str) -> Result<Vec<ProjectGrant>, String> {
    let stored: Vec<StoredGrant> = serde_json::from_str(json).map_err(|e| format!("projects {json:?}: {e}"))?;
    Ok(stored
        .into_iter()
        .map(|grant| match grant {
            StoredGrant::Grant { id, access } => ProjectGrant { id, access },
            StoredGrant::Id(id) => ProjectGrant { id, access: ProjectAccess::ReadWrite },
        })
        .collect())
}

#[async_trait]
impl<D: Dialect> TokenStore for SqlStore<D>
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
    async fn insert_token(&self, t: &NewToken) -> Result<()> {
        let token = &t.token;
        sqlx::query(
            "INSERT INTO api_tokens \
             (id, name, role, projects, token_hash, hint, created_at, last_used_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(token.id.to_string())
        .bind(token.name.as_str())
        .bind(token.role.as_str())
        .bind(projects_json(&token.projects))
        .bind(&t.hash)
        .bind(&token.hint)
        .bind(millis(token.created_at))
        .bind(token.last_used_at.map(millis))
        .bind(token.expires_at.map(millis))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn authenticate(&self, hash: &str) -> Result<Token> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row: TokenRow = sqlx::query_as(&sql).bind(hash).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn note_token_uses(&self, uses: &[(Uuid, OffsetDateTime)]) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
            )
            .bind(id.to_string())
            .bind(millis(*at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_token(&self, id: Uuid) -> Result<Token> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1");
        let row: TokenRow = sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn list_tokens(&self) -> Result<Vec<Token>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id");
        let rows: Vec<TokenRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn delete_token(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        D::lock_table(&mut tx, "api_tokens").await?;
        let found: Option<(String, String, Option<i64>)> =
            sqlx::query_as("SELECT name, role, expires_at FROM api_tokens WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some((name, role, expires_at)) = found else {
            return Err(StoreError::NotFound);
        };
        // Admin tokens that expire will all stop working one day: an admin token that
        // does not expire must stay, or System Settings could be locked for good.
        if role == "admin" && expires_at.is_none() {
            let admins: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE role = 'admin' AND expires_at IS NULL")
                    .fetch_one(&mut *tx)
                    .await?;
            if admins <= 1 {
                return Err(Conflict::LastAdminToken { name }.into());
            }
        }
        sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        Ok(tx.commit().await?)
    }

    async fn count_tokens(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn insert_session(&self, session: &NewSession) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(millis(session.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (session_hash, token_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.hash)
        .bind(session.token_id.to_string())
        .bind(&session.csrf_token)
        .bind(millis(session.created_at))
        .bind(millis(session.expires_at))
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    async fn session(&self, hash: &str, now: OffsetDateTime) -> Result<Session> {
        let columns = TOKEN_COLUMNS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {columns}, s.csrf_token, s.expires_at AS session_expires_at \
             FROM console_sessions s JOIN api_tokens t ON t.id = s.token_id \
             WHERE s.session_hash = $1 AND s.expires_at > $2"
        );
        let row: SessionRow = sqlx::query_as(&sql).bind(hash).bind(millis(now)).fetch_one(&self.pool).await?;
        Ok(Session {
            expires_at: from_millis("console_sessions", row.session_expires_at)?,
            csrf_token: row.csrf_token,
            token: row.token.try_into()?,
        })
    }

    async fn delete_session(&self, hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE session_hash = $1").bind(hash).execute(&self.writer).await?;
        Ok(())
    }
}

/// A token's row with its console session's columns.
struct SessionRow {
    token: TokenRow,
    csrf_token: String,
    session_expires_at: i64,
}

impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for SessionRow
where
    TokenRow: sqlx::FromRow<'r, R>,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(SessionRow {
            token: TokenRow::from_row(row)?,
            csrf_token: row.try_get("csrf_token")?,
            session_expires_at: row.try_get("session_expires_at")?,
        })
    }
}

fn projects_json(projects: &[ProjectGrant]) -> String {
    let stored: Vec<StoredGrant> =
        projects.iter().map(|grant| StoredGrant::Grant { id: grant.id, access: grant.access }).collect();
    serde_json::to_string(&stored).unwrap_or_else(|_| unreachable!("ids and access levels always serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stored_before_access_levels_reach_their_projects_read_write() {
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        let stored = format!(r#"["{old}", {{"id": "{new}", "access": "read"}}]"#);
        assert_eq!(
            grants(&stored),
            Ok(vec![
                ProjectGrant { id: old, access: ProjectAccess::ReadWrite },
                ProjectGrant { id: new, access: ProjectAccess::Read },
            ])
        );
        let written = projects_json(&[ProjectGrant { id: new, access: ProjectAccess::Read }]);
        assert_eq!(written, format!(r#"[{{"id":"{new}","access":"read"}}]"#));
        assert!(grants(r#"[{"id": "nope", "access": "read"}]"#).is_err());
    }
}
