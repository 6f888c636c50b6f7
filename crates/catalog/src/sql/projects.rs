//! Projects: the SQL of [`ProjectStore`].

use async_trait::async_trait;
use byos_domain::{AwsRegion, BucketName, KeyPrefix, ProjectFolder, ResourceName};
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt, uuid};
use crate::model::Project;
use crate::{Conflict, ProjectStore, Result, StoreError, from_millis, millis};

const PROJECT_COLUMNS: &str = "id, name, region, configuration_id, folder, bucket, key_prefix, created_at, updated_at";

super::row! {
    struct ProjectRow {
        id: String,
        name: String,
        region: String,
        configuration_id: String,
        folder: String,
        bucket: String,
        key_prefix: String,
        created_at: i64,
        updated_at: i64,
    }
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;

    fn try_from(row: ProjectRow) -> Result<Project> {
        const T: &str = "projects";
        Ok(Project {
            id: uuid(T, &row.id)?,
            name: ResourceName::parse_relaxed(&row.name).map_err(|e| corrupt(T, e))?,
            region: AwsRegion::parse(&row.region).map_err(|e| corrupt(T, e))?,
            configuration_id: uuid(T, &row.configuration_id)?,
            folder: ProjectFolder::parse_relaxed(&row.folder).map_err(|e| corrupt(T, e))?,
            bucket: BucketName::parse(&row.bucket).map_err(|e| corrupt(T, e))?,
            key_prefix: KeyPrefix::parse_relaxed(&row.key_prefix).map_err(|e| corrupt(T, e))?,
            created_at: from_millis(T, row.created_at)?,
            updated_at: from_millis(T, row.updated_at)?,
        })
    }
}

#[async_trait]
impl<D: Dialect> ProjectStore for SqlStore<D>
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
    async fn insert_project(&self, p: &Project) -> Result<()> {
        let mut tx = self.begin_write().await?;
        // Serialises project inserts, so two overlapping projects cannot both pass the
        // check below on PostgreSQL.
        D::lock_table(&mut tx, "projects").await?;
        let taken: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
            .bind(p.name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(Conflict::NameTaken { resource: "project", name: p.name.to_string() }.into());
        }
        let configuration: Option<String> = sqlx::query_scalar("SELECT id FROM storage_configurations WHERE id = $1")
            .bind(p.configuration_id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if configuration.is_none() {
            return Err(StoreError::NotFound);
        }
        let on_bucket: Vec<(String, String)> =
            sqlx::query_as("SELECT name, key_prefix FROM projects WHERE bucket = $1")
                .bind(p.bucket.as_str())
                .fetch_all(&mut *tx)
                .await?;
        for (name, prefix) in on_bucket {
            let theirs = KeyPrefix::parse_relaxed(&prefix).map_err(|e| corrupt("projects", e))?;
            if p.key_prefix.overlaps(&theirs) {
                return Err(Conflict::ProjectPrefixOverlap { name, bucket: p.bucket.to_string(), prefix }.into());
            }
        }
        sqlx::query(
            "INSERT INTO projects \
             (id, name, region, configuration_id, folder, bucket, key_prefix, revision, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9)",
        )
        .bind(p.id.to_string())
        .bind(p.name.as_str())
        .bind(p.region.as_str())
        .bind(p.configuration_id.to_string())
        .bind(p.folder.as_str())
        .bind(p.bucket.as_str())
        .bind(p.key_prefix.as_str())
        .bind(millis(p.created_at))
        .bind(millis(p.updated_at))
        .execute(&mut *tx)
        .await?;
        Ok(tx.commit().await?)
    }

    async fn get_project(&self, id: Uuid) -> Result<Project> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = $1");
        let row: ProjectRow = sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
        row.try_into()
    }

    async fn list_projects(&self) -> Result<Vec<Project>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name");
        let rows: Vec<ProjectRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn delete_project(&self, id: Uuid) -> Result<()> {
        // The catalog's rows go with it, in the same transaction: its tables have no foreign key
        // (migration 14). Deleting the row first takes its lock, so no batch of the project
        // runs in between.
        let mut tx = self.begin_write().await?;
        let key: Option<i64> = sqlx::query_scalar("DELETE FROM projects WHERE id = $1 RETURNING key")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(key) = key else {
            return Err(StoreError::NotFound);
        };
        for table in ["entries", "objects"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE project = $1")).bind(key).execute(&mut *tx).await?;
        }
        Ok(tx.commit().await?)
    }
}
