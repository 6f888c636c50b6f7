//! The SQL both databases share. The statements use `$N` parameters and the subset of SQL that
//! SQLite and PostgreSQL both accept; [`impl_stores!`] expands the same trait implementations
//! over each database's pool, so the two can only differ where a backend module says so
//! (connecting, starting a write transaction, locking a table).

pub(crate) mod data;
pub(crate) mod postgres;
pub(crate) mod projects;
pub(crate) mod sqlite;

use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, ConfigurationStatus, ErrorCode, KeyPrefix, KmsKeyArn, Problem, ResourceName,
    Role, RoleArn, ServerSideEncryption, SseAlgorithm, TokenName, ValidationReport, VersioningState,
};
use uuid::Uuid;

use crate::model::{Configuration, ConfigurationSpec, Credential, CredentialIdentity, Token};
use crate::{Result, StoreError, from_millis};

pub(crate) const CREDENTIAL_COLUMNS: &str =
    "id, name, kind, access_key_id, role_arn, sealed_secret, created_at, updated_at";
pub(crate) const CONFIGURATION_COLUMNS: &str = "id, name, region, bucket, key_prefix, credential_id, \
    sse_algorithm, sse_kms_key_arn, default_for_region, status, versioning, validation, \
    error_code, error_message, last_verified_at, last_used_at, created_at, updated_at, next_check_at, check_failures, bucket_account";
pub(crate) const TOKEN_COLUMNS: &str = "id, name, role, projects, hint, created_at, last_used_at, expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialRow {
    id: String,
    name: String,
    kind: String,
    access_key_id: Option<String>,
    role_arn: Option<String>,
    sealed_secret: Vec<u8>,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConfigurationRow {
    id: String,
    name: String,
    region: String,
    bucket: String,
    key_prefix: Option<String>,
    credential_id: String,
    sse_algorithm: Option<String>,
    sse_kms_key_arn: Option<String>,
    default_for_region: bool,
    status: String,
    versioning: Option<String>,
    validation: Option<String>,
    error_code: Option<String>,
    error_message: Option<String>,
    last_verified_at: Option<i64>,
    last_used_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    next_check_at: Option<i64>,
    check_failures: i64,
    bucket_account: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: String,
    name: String,
    role: String,
    projects: String,
    hint: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

pub(crate) fn corrupt(table: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { table, reason: reason.to_string() }
}

pub(crate) fn uuid(table: &'static str, s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt(table, format!("id {s:?}: {e}")))
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;

    fn try_from(row: CredentialRow) -> Result<Credential> {
        const T: &str = "storage_credentials";
        let identity = match (row.kind.as_str(), row.access_key_id, row.role_arn) {
            ("aws-user", Some(key), None) => {
                CredentialIdentity::AwsUser { access_key_id: AccessKeyId::parse(&key).map_err(|e| corrupt(T, e))? }
            }
            ("aws-role", None, Some(arn)) => {
                CredentialIdentity::AwsRole { role_arn: RoleArn::parse(&arn).map_err(|e| corrupt(T, e))? }
            }
            (kind, ..) => {
                return Err(corrupt(T, format!("kind {kind:?} with the wrong identity columns")));
            }
        };
        Ok(Credential {
            id: uuid(T, &row.id)?,
            name: ResourceName::parse(&row.name).map_err(|e| corrupt(T, e))?,
            identity,
            sealed_secret: row.sealed_secret,
            created_at: from_millis(T, row.created_at)?,
            updated_at: from_millis(T, row.updated_at)?,
        })
    }
}

impl TryFrom<ConfigurationRow> for Configuration {
    type Error = StoreError;

    fn try_from(row: ConfigurationRow) -> Result<Configuration> {
        const T: &str = "storage_configurations";
        let server_side_encryption = match (row.sse_algorithm.as_deref().map(SseAlgorithm::parse), row.sse_kms_key_arn)
        {
            (None, None) => None,
            (Some(Some(SseAlgorithm::Aes256)), None) => Some(ServerSideEncryption::Aes256),
            (Some(Some(SseAlgorithm::AwsKms)), Some(arn)) => {
                Some(ServerSideEncryption::Kms(KmsKeyArn::parse(&arn).map_err(|e| corrupt(T, e))?))
            }
            _ => return Err(corrupt(T, "inconsistent server-side encryption columns")),
        };
        let versioning = match row.versioning.as_deref() {
            None => None,
            Some("unversioned") => Some(VersioningState::Unversioned),
            Some("enabled") => Some(VersioningState::Enabled),
            Some("suspended") => Some(VersioningState::Suspended),
            Some(other) => return Err(corrupt(T, format!("versioning {other:?}"))),
        };
        let validation = row
            .validation
            .map(|json| serde_json_report(&json))
            .transpose()
            .map_err(|e| corrupt(T, format!("validation report: {e}")))?;
        let error = match (row.error_code, row.error_message) {
            (Some(code), Some(message)) => {
                let code = ErrorCode::from_code(&code).ok_or_else(|| corrupt(T, format!("error code {code:?}")))?;
                Some(Problem::restore(code, message))
            }
            (None, None) => None,
            _ => return Err(corrupt(T, "error code without message, or the reverse")),
        };
        Ok(Configuration {
            id: uuid(T, &row.id)?,
            spec: ConfigurationSpec {
                name: ResourceName::parse(&row.name).map_err(|e| corrupt(T, e))?,
                region: AwsRegion::parse(&row.region).map_err(|e| corrupt(T, e))?,
                bucket: BucketName::parse(&row.bucket).map_err(|e| corrupt(T, e))?,
                key_prefix: row.key_prefix.as_deref().map(KeyPrefix::parse).transpose().map_err(|e| corrupt(T, e))?,
                credential_id: uuid(T, &row.credential_id)?,
                server_side_encryption,
                default_for_region: row.default_for_region,
            },
            status: ConfigurationStatus::parse(&row.status)
                .ok_or_else(|| corrupt(T, format!("status {:?}", row.status)))?,
            versioning,
            validation,
            error,
            last_verified_at: row.last_verified_at.map(|ms| from_millis(T, ms)).transpose()?,
            last_used_at: row.last_used_at.map(|ms| from_millis(T, ms)).transpose()?,
            created_at: from_millis(T, row.created_at)?,
            updated_at: from_millis(T, row.updated_at)?,
            next_check_at: row.next_check_at.map(|ms| from_millis(T, ms)).transpose()?,
            check_failures: u32::try_from(row.check_failures).unwrap_or(u32::MAX),
            bucket_account: row.bucket_account,
        })
    }
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<Token> {
        const T: &str = "api_tokens";
        let projects: Vec<String> = serde_json_list(&row.projects).map_err(|e| corrupt(T, e))?;
        Ok(Token {
            id: uuid(T, &row.id)?,
            name: TokenName::parse(&row.name).map_err(|e| corrupt(T, e))?,
            role: Role::parse(&row.role).ok_or_else(|| corrupt(T, format!("role {:?}", row.role)))?,
            projects: projects.iter().map(|p| uuid(T, p)).collect::<Result<_>>()?,
            hint: row.hint,
            created_at: from_millis(T, row.created_at)?,
            last_used_at: row.last_used_at.map(|ms| from_millis(T, ms)).transpose()?,
            expires_at: row.expires_at.map(|ms| from_millis(T, ms)).transpose()?,
        })
    }
}

fn serde_json_report(json: &str) -> Result<ValidationReport, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn serde_json_list(json: &str) -> Result<Vec<String>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// The text that names the constraint a unique violation broke, if `e` is one.
pub(crate) fn unique_violation(e: &sqlx::Error) -> Option<String> {
    let db = e.as_database_error()?;
    db.is_unique_violation().then(|| format!("{} {}", db.constraint().unwrap_or_default(), db.message()))
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| db.is_foreign_key_violation())
}

/// Implements the store traits for a backend struct that has a `pool` field and the inherent
/// functions `begin_write` and `lock_table`.
macro_rules! impl_stores {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::CredentialStore for $store {
            async fn insert_credential(&self, c: &$crate::Credential) -> $crate::Result<()> {
                let (kind, key, arn) = $crate::sql::identity_columns(&c.identity);
                let result = sqlx::query(
                    "INSERT INTO storage_credentials \
                     (id, name, kind, access_key_id, role_arn, sealed_secret, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(c.id.to_string())
                .bind(c.name.as_str())
                .bind(kind)
                .bind(key)
                .bind(arn)
                .bind(&c.sealed_secret)
                .bind($crate::millis(c.created_at))
                .bind($crate::millis(c.updated_at))
                .execute(self.write_pool())
                .await;
                match result {
                    Ok(_) => Ok(()),
                    Err(e) if $crate::sql::unique_violation(&e).is_some() => {
                        Err($crate::Conflict::NameTaken { resource: "storage credential", name: c.name.to_string() }
                            .into())
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_credential(&self, id: uuid::Uuid) -> $crate::Result<$crate::Credential> {
                let sql = format!("SELECT {} FROM storage_credentials WHERE id = $1", $crate::sql::CREDENTIAL_COLUMNS);
                let row: $crate::sql::CredentialRow =
                    sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn list_credentials(&self) -> $crate::Result<Vec<$crate::Credential>> {
                let sql = format!("SELECT {} FROM storage_credentials ORDER BY name", $crate::sql::CREDENTIAL_COLUMNS);
                let rows: Vec<$crate::sql::CredentialRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn rotate_credential(&self, c: &$crate::Credential) -> $crate::Result<()> {
                let (kind, key, arn) = $crate::sql::identity_columns(&c.identity);
                let done = sqlx::query(
                    "UPDATE storage_credentials \
                     SET access_key_id = $3, role_arn = $4, sealed_secret = $5, updated_at = $6 \
                     WHERE id = $1 AND kind = $2",
                )
                .bind(c.id.to_string())
                .bind(kind)
                .bind(key)
                .bind(arn)
                .bind(&c.sealed_secret)
                .bind($crate::millis(c.updated_at))
                .execute(self.write_pool())
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_credential(&self, id: uuid::Uuid) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                let name: Option<String> = sqlx::query_scalar("SELECT name FROM storage_credentials WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(name) = name else {
                    return Err($crate::StoreError::NotFound);
                };
                let users: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM storage_configurations WHERE credential_id = $1 ORDER BY name",
                )
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
                if !users.is_empty() {
                    return Err($crate::Conflict::InUse {
                        resource: "storage credential",
                        name,
                        used_by: "storage configuration",
                        users,
                    }
                    .into());
                }
                let result = sqlx::query("DELETE FROM storage_credentials WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await;
                match result {
                    Ok(_) => Ok(tx.commit().await?),
                    // A configuration that started to use it since the check above.
                    Err(e) if $crate::sql::is_foreign_key_violation(&e) => Err($crate::Conflict::InUse {
                        resource: "storage credential",
                        name,
                        used_by: "storage configuration",
                        users: vec!["a storage configuration created meanwhile".to_owned()],
                    }
                    .into()),
                    Err(e) => Err(e.into()),
                }
            }
        }

        #[async_trait::async_trait]
        impl $crate::ConfigurationStore for $store {
            async fn insert_configuration(&self, c: &$crate::Configuration) -> $crate::Result<()> {
                let spec = &c.spec;
                let mut tx = self.begin_write().await?;
                let taken: Option<String> = sqlx::query_scalar("SELECT id FROM storage_configurations WHERE name = $1")
                    .bind(spec.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err($crate::Conflict::NameTaken {
                        resource: "storage configuration",
                        name: spec.name.to_string(),
                    }
                    .into());
                }
                if spec.default_for_region {
                    let other: Option<String> = sqlx::query_scalar(
                        "SELECT name FROM storage_configurations WHERE region = $1 AND default_for_region",
                    )
                    .bind(spec.region.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(name) = other {
                        return Err(
                            $crate::Conflict::DefaultForRegionTaken { name, region: spec.region.clone() }.into()
                        );
                    }
                }
                // Two configurations never share keys of one bucket.
                Self::lock_table(&mut tx, "storage_configurations").await?;
                let on_bucket: Vec<(String, Option<String>)> =
                    sqlx::query_as("SELECT name, key_prefix FROM storage_configurations WHERE bucket = $1 ORDER BY created_at")
                        .bind(spec.bucket.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                let ours = spec.key_prefix.as_ref().map(|p| p.as_str()).unwrap_or_default();
                for (name, prefix) in on_bucket {
                    let theirs = prefix.as_deref().unwrap_or_default();
                    if ours.starts_with(theirs) || theirs.starts_with(ours) {
                        return Err($crate::Conflict::PrefixOverlap { name, bucket: spec.bucket.to_string(), prefix }.into());
                    }
                }
                let credential: Option<String> = sqlx::query_scalar("SELECT id FROM storage_credentials WHERE id = $1")
                    .bind(spec.credential_id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                if credential.is_none() {
                    return Err($crate::StoreError::NotFound);
                }
                let sse = spec.server_side_encryption.as_ref();
                let result = sqlx::query(
                    "INSERT INTO storage_configurations \
                     (id, name, region, bucket, key_prefix, credential_id, sse_algorithm, sse_kms_key_arn, \
                      default_for_region, status, versioning, validation, error_code, error_message, \
                      last_verified_at, last_used_at, created_at, updated_at, next_check_at, check_failures) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                )
                .bind(c.id.to_string())
                .bind(spec.name.as_str())
                .bind(spec.region.as_str())
                .bind(spec.bucket.as_str())
                .bind(spec.key_prefix.as_ref().map(|p| p.as_str()))
                .bind(spec.credential_id.to_string())
                .bind(sse.map(|s| s.algorithm().as_str()))
                .bind(sse.and_then(|s| s.kms_key()).map(|k| k.as_str()))
                .bind(spec.default_for_region)
                .bind(c.status.as_str())
                .bind(c.versioning.map($crate::sql::versioning_str))
                .bind(c.validation.as_ref().map($crate::sql::report_json))
                .bind(c.error.as_ref().map(|p| p.entry().code))
                .bind(c.error.as_ref().map(|p| p.message()))
                .bind(c.last_verified_at.map($crate::millis))
                .bind(c.last_used_at.map($crate::millis))
                .bind($crate::millis(c.created_at))
                .bind($crate::millis(c.updated_at))
                .bind(c.next_check_at.map($crate::millis))
                .bind(i64::from(c.check_failures))
                .execute(&mut *tx)
                .await;
                match result {
                    Ok(_) => Ok(tx.commit().await?),
                    Err(e) => Err(match $crate::sql::unique_violation(&e) {
                        Some(what) if what.contains("region") => $crate::Conflict::DefaultForRegionTaken {
                            name: "another configuration".to_owned(),
                            region: spec.region.clone(),
                        }
                        .into(),
                        Some(_) => $crate::Conflict::NameTaken {
                            resource: "storage configuration",
                            name: spec.name.to_string(),
                        }
                        .into(),
                        None if $crate::sql::is_foreign_key_violation(&e) => $crate::StoreError::NotFound,
                        None => e.into(),
                    }),
                }
            }

            async fn get_configuration(&self, id: uuid::Uuid) -> $crate::Result<$crate::Configuration> {
                let sql =
                    format!("SELECT {} FROM storage_configurations WHERE id = $1", $crate::sql::CONFIGURATION_COLUMNS);
                let row: $crate::sql::ConfigurationRow =
                    sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn list_configurations(&self) -> $crate::Result<Vec<$crate::Configuration>> {
                let sql =
                    format!("SELECT {} FROM storage_configurations ORDER BY name", $crate::sql::CONFIGURATION_COLUMNS);
                let rows: Vec<$crate::sql::ConfigurationRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn configurations_on_bucket(&self, bucket: &str) -> $crate::Result<Vec<$crate::Configuration>> {
                let sql = format!(
                    "SELECT {} FROM storage_configurations WHERE bucket = $1 ORDER BY created_at, id",
                    $crate::sql::CONFIGURATION_COLUMNS
                );
                let rows: Vec<$crate::sql::ConfigurationRow> =
                    sqlx::query_as(&sql).bind(bucket).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn record_validation(&self, id: uuid::Uuid, o: &$crate::ValidationOutcome) -> $crate::Result<()> {
                let done = sqlx::query(
                    "UPDATE storage_configurations \
                     SET status = $2, versioning = $3, validation = $4, error_code = $5, error_message = $6, \
                         last_verified_at = $7, updated_at = $7, next_check_at = $8, check_failures = $9, \
                         bucket_account = COALESCE($10, bucket_account) \
                     WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(o.status.as_str())
                .bind(o.versioning.map($crate::sql::versioning_str))
                .bind($crate::sql::report_json(&o.report))
                .bind(o.error.as_ref().map(|p| p.entry().code))
                .bind(o.error.as_ref().map(|p| p.message()))
                .bind($crate::millis(o.verified_at))
                .bind($crate::millis(o.next_check_at))
                .bind(i64::from(o.failures))
                .bind(o.bucket_account.as_deref())
                .execute(self.write_pool())
                .await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }

            async fn due_configurations(&self, now: time::OffsetDateTime, limit: u32) -> $crate::Result<Vec<uuid::Uuid>> {
                let ids: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM storage_configurations WHERE COALESCE(next_check_at, 0) <= $1 \
                     ORDER BY COALESCE(next_check_at, 0), id LIMIT $2",
                )
                .bind($crate::millis(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                ids.iter().map(|id| $crate::sql::uuid("storage_configurations", id)).collect()
            }

            async fn delete_configuration(&self, id: uuid::Uuid) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                Self::lock_table(&mut tx, "projects").await?;
                let name: Option<String> = sqlx::query_scalar("SELECT name FROM storage_configurations WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(name) = name else {
                    return Err($crate::StoreError::NotFound);
                };
                let users: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM projects WHERE configuration_id = $1 ORDER BY name")
                        .bind(id.to_string())
                        .fetch_all(&mut *tx)
                        .await?;
                if !users.is_empty() {
                    return Err($crate::Conflict::InUse {
                        resource: "storage configuration",
                        name,
                        used_by: "project",
                        users,
                    }
                    .into());
                }
                sqlx::query("DELETE FROM storage_configurations WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                Ok(tx.commit().await?)
            }
        }

        #[async_trait::async_trait]
        impl $crate::TokenStore for $store {
            async fn insert_token(&self, t: &$crate::NewToken) -> $crate::Result<()> {
                let token = &t.token;
                sqlx::query(
                    "INSERT INTO api_tokens \
                     (id, name, role, projects, token_hash, hint, created_at, last_used_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(token.id.to_string())
                .bind(token.name.as_str())
                .bind(token.role.as_str())
                .bind($crate::sql::projects_json(&token.projects))
                .bind(&t.hash)
                .bind(&token.hint)
                .bind($crate::millis(token.created_at))
                .bind(token.last_used_at.map($crate::millis))
                .bind(token.expires_at.map($crate::millis))
                .execute(self.write_pool())
                .await?;
                Ok(())
            }

            async fn authenticate(&self, hash: &str, now: time::OffsetDateTime) -> $crate::Result<$crate::Token> {
                let sql = format!("SELECT {} FROM api_tokens WHERE token_hash = $1", $crate::sql::TOKEN_COLUMNS);
                let row: $crate::sql::TokenRow = sqlx::query_as(&sql).bind(hash).fetch_one(&self.pool).await?;
                let token: $crate::Token = row.try_into()?;
                // Note the use at most once a minute, so that reads stay reads. An expired token
                // is refused by the caller: presenting it is no use.
                let now_ms = $crate::millis(now);
                if !token.is_expired(now) && token.last_used_at.is_none_or(|t| now_ms - $crate::millis(t) >= 60_000) {
                    sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                        .bind(token.id.to_string())
                        .bind(now_ms)
                        .execute(self.write_pool())
                        .await?;
                }
                Ok(token)
            }

            async fn get_token(&self, id: uuid::Uuid) -> $crate::Result<$crate::Token> {
                let sql = format!("SELECT {} FROM api_tokens WHERE id = $1", $crate::sql::TOKEN_COLUMNS);
                let row: $crate::sql::TokenRow =
                    sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn list_tokens(&self) -> $crate::Result<Vec<$crate::Token>> {
                let sql = format!("SELECT {} FROM api_tokens ORDER BY created_at, id", $crate::sql::TOKEN_COLUMNS);
                let rows: Vec<$crate::sql::TokenRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn delete_token(&self, id: uuid::Uuid) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                Self::lock_table(&mut tx, "api_tokens").await?;
                let found: Option<(String, String, Option<i64>)> =
                    sqlx::query_as("SELECT name, role, expires_at FROM api_tokens WHERE id = $1")
                        .bind(id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((name, role, expires_at)) = found else {
                    return Err($crate::StoreError::NotFound);
                };
                // Admin tokens that expire will all stop working one day: an admin token that
                // does not expire must stay, or System Settings could be locked for good.
                if role == "admin" && expires_at.is_none() {
                    let admins: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM api_tokens WHERE role = 'admin' AND expires_at IS NULL",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    if admins <= 1 {
                        return Err($crate::Conflict::LastAdminToken { name }.into());
                    }
                }
                sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
                Ok(tx.commit().await?)
            }

            async fn count_tokens(&self) -> $crate::Result<u64> {
                let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(&self.pool).await?;
                Ok(u64::try_from(n).unwrap_or_default())
            }
        }

        #[async_trait::async_trait]
        impl $crate::LeaseStore for $store {
            async fn try_lease(&self, name: &str, holder: &str, ttl: std::time::Duration) -> $crate::Result<bool> {
                // Expiry is by the database's clock, which every replica shares: replicas whose
                // clocks disagree still agree on who holds a lease.
                let taken = sqlx::query(&format!(
                    "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, {now} + $3) \
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.expires_at <= {now} OR leases.holder = excluded.holder",
                    now = Self::NOW_MS,
                ))
                .bind(name)
                .bind(holder)
                .bind(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2))
                .execute(self.write_pool())
                .await?;
                Ok(taken.rows_affected() == 1)
            }

            async fn release_lease(&self, name: &str, holder: &str) -> $crate::Result<()> {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(self.write_pool())
                    .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::MetaStore for $store {
            async fn get_meta(&self, key: &str) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn init_meta(&self, key: &str, value: &str) -> $crate::Result<String> {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(self.write_pool())
                    .await?;
                Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&self.pool).await?)
            }

            async fn ping(&self) -> $crate::Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_stores;

pub(crate) fn identity_columns(identity: &CredentialIdentity) -> (&'static str, Option<&str>, Option<&str>) {
    match identity {
        CredentialIdentity::AwsUser { access_key_id } => ("aws-user", Some(access_key_id.as_str()), None),
        CredentialIdentity::AwsRole { role_arn } => ("aws-role", None, Some(role_arn.as_str())),
    }
}

pub(crate) fn versioning_str(v: VersioningState) -> &'static str {
    match v {
        VersioningState::Unversioned => "unversioned",
        VersioningState::Enabled => "enabled",
        VersioningState::Suspended => "suspended",
    }
}

pub(crate) fn report_json(report: &ValidationReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|_| unreachable!("a report always serializes"))
}

pub(crate) fn projects_json(projects: &[Uuid]) -> String {
    serde_json::to_string(projects).unwrap_or_else(|_| unreachable!("ids always serialize"))
}
