//! Storage credentials and configurations: the SQL of [`CredentialStore`] and
//! [`ConfigurationStore`].

use async_trait::async_trait;
use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, ConfigurationStatus, KeyPrefix, KmsKeyArn, ResourceName, RoleArn,
    ServerSideEncryption, SseAlgorithm, ValidationReport, VersioningState,
};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt, is_foreign_key_violation, stored_problem, unique_violation, uuid};
use crate::model::{Configuration, ConfigurationSpec, Credential, CredentialIdentity};
use crate::{
    ConfigurationStore, Conflict, CredentialStore, Result, StoreError, ValidationOutcome, from_millis, millis,
};

const CREDENTIAL_COLUMNS: &str = "id, name, kind, access_key_id, role_arn, sealed_secret, created_at, updated_at";
const CONFIGURATION_COLUMNS: &str = "id, name, region, bucket, key_prefix, credential_id, \
    sse_algorithm, sse_kms_key_arn, default_for_region, status, versioning, validation, \
    error_code, error_message, last_verified_at, last_used_at, created_at, updated_at, next_check_at, check_failures, bucket_account";

super::row! {
    struct CredentialRow {
        id: String,
        name: String,
        kind: String,
        access_key_id: Option<String>,
        role_arn: Option<String>,
        sealed_secret: Vec<u8>,
        created_at: i64,
        updated_at: i64,
    }
}

super::row! {
    struct ConfigurationRow {
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
            name: ResourceName::parse_relaxed(&row.name).map_err(|e| corrupt(T, e))?,
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
        let error = stored_problem(T, row.error_code, row.error_message)?;
        Ok(Configuration {
            id: uuid(T, &row.id)?,
            spec: ConfigurationSpec {
                name: ResourceName::parse_relaxed(&row.name).map_err(|e| corrupt(T, e))?,
                region: AwsRegion::parse(&row.region).map_err(|e| corrupt(T, e))?,
                bucket: BucketName::parse(&row.bucket).map_err(|e| corrupt(T, e))?,
                key_prefix: row
                    .key_prefix
                    .as_deref()
                    .map(KeyPrefix::parse_relaxed)
                    .transpose()
                    .map_err(|e| corrupt(T, e))?,
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

fn serde_json_report(json: &str) -> Result<ValidationReport, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[async_trait]
impl<D: Dialect> CredentialStore for SqlStore<D>
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
    async fn insert_credential(&self, c: &Credential) -> Result<()> {
        let (kind, key, arn) = identity_columns(&c.identity);
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
        .bind(millis(c.created_at))
        .bind(millis(c.updated_at))
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if unique_violation(&e).is_some() => {
                Err(Conflict::NameTaken { resource: "storage credential", name: c.name.to_string() }.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get_credential(&self, id: Uuid) -> Result<Credential> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM storage_credentials WHERE id = $1");
        let row: CredentialRow = sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn list_credentials(&self) -> Result<Vec<Credential>> {
        let sql = format!("SELECT {CREDENTIAL_COLUMNS} FROM storage_credentials ORDER BY name");
        let rows: Vec<CredentialRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn rotate_credential(&self, c: &Credential) -> Result<()> {
        let (kind, key, arn) = identity_columns(&c.identity);
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
        .bind(millis(c.updated_at))
        .execute(&self.writer)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_credential(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM storage_credentials WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(name) = name else {
            return Err(StoreError::NotFound);
        };
        let users: Vec<String> =
            sqlx::query_scalar("SELECT name FROM storage_configurations WHERE credential_id = $1 ORDER BY name")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
        if !users.is_empty() {
            return Err(Conflict::InUse {
                resource: "storage credential",
                name,
                used_by: "storage configuration",
                users,
            }
            .into());
        }
        let result =
            sqlx::query("DELETE FROM storage_credentials WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await;
        match result {
            Ok(_) => Ok(tx.commit().await?),
            // A configuration that started to use it since the check above.
            Err(e) if is_foreign_key_violation(&e) => Err(Conflict::InUse {
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

#[async_trait]
impl<D: Dialect> ConfigurationStore for SqlStore<D>
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
    async fn insert_configuration(&self, c: &Configuration) -> Result<()> {
        let spec = &c.spec;
        let mut tx = self.begin_write().await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM storage_configurations WHERE name = $1")
            .bind(spec.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Conflict::NameTaken { resource: "storage configuration", name: spec.name.to_string() }.into());
        }
        if spec.default_for_region {
            let other: Option<String> =
                sqlx::query_scalar("SELECT name FROM storage_configurations WHERE region = $1 AND default_for_region")
                    .bind(spec.region.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(name) = other {
                return Err(Conflict::DefaultForRegionTaken { name, region: spec.region.clone() }.into());
            }
        }
        // Two configurations never share keys of one bucket.
        D::lock_table(&mut tx, "storage_configurations").await?;
        let on_bucket: Vec<(String, Option<String>)> =
            sqlx::query_as("SELECT name, key_prefix FROM storage_configurations WHERE bucket = $1 ORDER BY created_at")
                .bind(spec.bucket.as_str())
                .fetch_all(&mut *tx)
                .await?;
        for (name, prefix) in on_bucket {
            let theirs = prefix
                .as_deref()
                .map(KeyPrefix::parse_relaxed)
                .transpose()
                .map_err(|e| corrupt("storage_configurations", e))?;
            if share_keys(spec.key_prefix.as_ref(), theirs.as_ref()) {
                return Err(Conflict::PrefixOverlap { name, bucket: spec.bucket.to_string(), prefix }.into());
            }
        }
        let credential: Option<String> = sqlx::query_scalar("SELECT id FROM storage_credentials WHERE id = $1")
            .bind(spec.credential_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if credential.is_none() {
            return Err(StoreError::NotFound);
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
        .bind(c.versioning.map(versioning_str))
        .bind(c.validation.as_ref().map(report_json))
        .bind(c.error.as_ref().map(|p| p.entry().code))
        .bind(c.error.as_ref().map(|p| p.message()))
        .bind(c.last_verified_at.map(millis))
        .bind(c.last_used_at.map(millis))
        .bind(millis(c.created_at))
        .bind(millis(c.updated_at))
        .bind(c.next_check_at.map(millis))
        .bind(i64::from(c.check_failures))
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => Ok(tx.commit().await?),
            Err(e) => Err(match unique_violation(&e) {
                Some(what) if what.contains("region") => Conflict::DefaultForRegionTaken {
                    name: "another configuration".to_owned(),
                    region: spec.region.clone(),
                }
                .into(),
                Some(_) => {
                    Conflict::NameTaken { resource: "storage configuration", name: spec.name.to_string() }.into()
                }
                None if is_foreign_key_violation(&e) => StoreError::NotFound,
                None => e.into(),
            }),
        }
    }

    async fn get_configuration(&self, id: Uuid) -> Result<Configuration> {
        let sql = format!("SELECT {CONFIGURATION_COLUMNS} FROM storage_configurations WHERE id = $1");
        let row: ConfigurationRow = sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn list_configurations(&self) -> Result<Vec<Configuration>> {
        let sql = format!("SELECT {CONFIGURATION_COLUMNS} FROM storage_configurations ORDER BY name");
        let rows: Vec<ConfigurationRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn configurations_on_bucket(&self, bucket: &str) -> Result<Vec<Configuration>> {
        let sql = format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM storage_configurations WHERE bucket = $1 ORDER BY created_at, id"
        );
        let rows: Vec<ConfigurationRow> = sqlx::query_as(&sql).bind(bucket).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn record_validation(&self, id: Uuid, o: &ValidationOutcome) -> Result<()> {
        let done = sqlx::query(
            "UPDATE storage_configurations \
             SET status = $2, versioning = $3, validation = $4, error_code = $5, error_message = $6, \
                 last_verified_at = $7, updated_at = $7, next_check_at = $8, check_failures = $9, \
                 bucket_account = COALESCE($10, bucket_account) \
             WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(o.status.as_str())
        .bind(o.versioning.map(versioning_str))
        .bind(report_json(&o.report))
        .bind(o.error.as_ref().map(|p| p.entry().code))
        .bind(o.error.as_ref().map(|p| p.message()))
        .bind(millis(o.verified_at))
        .bind(millis(o.next_check_at))
        .bind(i64::from(o.failures))
        .bind(o.bucket_account.as_deref())
        .execute(&self.writer)
        .await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn due_configurations(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM storage_configurations WHERE COALESCE(next_check_at, 0) <= $1 \
             ORDER BY COALESCE(next_check_at, 0), id LIMIT $2",
        )
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| uuid("storage_configurations", id)).collect()
    }

    async fn delete_configuration(&self, id: Uuid) -> Result<()> {
        let mut tx = self.begin_write().await?;
        D::lock_table(&mut tx, "projects").await?;
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM storage_configurations WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(name) = name else {
            return Err(StoreError::NotFound);
        };
        let users: Vec<String> =
            sqlx::query_scalar("SELECT name FROM projects WHERE configuration_id = $1 ORDER BY name")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?;
        if !users.is_empty() {
            return Err(Conflict::InUse { resource: "storage configuration", name, used_by: "project", users }.into());
        }
        sqlx::query("DELETE FROM storage_configurations WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        Ok(tx.commit().await?)
    }
}

/// Whether two configurations' prefixes of one bucket share keys, by the domain's rule; a
/// configuration without a prefix has the whole bucket.
fn share_keys(ours: Option<&KeyPrefix>, theirs: Option<&KeyPrefix>) -> bool {
    match (ours, theirs) {
        (Some(ours), Some(theirs)) => ours.overlaps(theirs),
        _ => true,
    }
}

fn identity_columns(identity: &CredentialIdentity) -> (&'static str, Option<&str>, Option<&str>) {
    match identity {
        CredentialIdentity::AwsUser { access_key_id } => ("aws-user", Some(access_key_id.as_str()), None),
        CredentialIdentity::AwsRole { role_arn } => ("aws-role", None, Some(role_arn.as_str())),
    }
}

fn versioning_str(v: VersioningState) -> &'static str {
    match v {
        VersioningState::Unversioned => "unversioned",
        VersioningState::Enabled => "enabled",
        VersioningState::Suspended => "suspended",
    }
}

fn report_json(report: &ValidationReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|_| unreachable!("a report always serializes"))
}
