//! Projects: the SQL of [`ProjectStore`](crate::ProjectStore), shared by both databases like the
//! rest (see [`impl_stores!`](super::impl_stores)).

use byos_domain::{AwsRegion, BucketName, KeyPrefix, ProjectFolder, ResourceName};

use crate::model::Project;
use crate::sql::{corrupt, uuid};
use crate::{Result, from_millis};

pub(crate) const PROJECT_COLUMNS: &str =
    "id, name, region, configuration_id, folder, bucket, key_prefix, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ProjectRow {
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

impl TryFrom<ProjectRow> for Project {
    type Error = crate::StoreError;

    fn try_from(row: ProjectRow) -> Result<Project> {
        const T: &str = "projects";
        Ok(Project {
            id: uuid(T, &row.id)?,
            name: ResourceName::parse(&row.name).map_err(|e| corrupt(T, e))?,
            region: AwsRegion::parse(&row.region).map_err(|e| corrupt(T, e))?,
            configuration_id: uuid(T, &row.configuration_id)?,
            folder: ProjectFolder::parse(&row.folder).map_err(|e| corrupt(T, e))?,
            bucket: BucketName::parse(&row.bucket).map_err(|e| corrupt(T, e))?,
            key_prefix: KeyPrefix::parse(&row.key_prefix).map_err(|e| corrupt(T, e))?,
            created_at: from_millis(T, row.created_at)?,
            updated_at: from_millis(T, row.updated_at)?,
        })
    }
}

/// Implements [`ProjectStore`](crate::ProjectStore) for a backend, like
/// [`impl_stores!`](super::impl_stores).
macro_rules! impl_project_stores {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::ProjectStore for $store {
            async fn insert_project(&self, p: &$crate::Project) -> $crate::Result<()> {
                let mut tx = self.begin_write().await?;
                // Serialises project inserts, so two overlapping projects cannot both pass the
                // check below on PostgreSQL.
                Self::lock_table(&mut tx, "projects").await?;
                let taken: Option<String> = sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
                    .bind(p.name.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if taken.is_some() {
                    return Err($crate::Conflict::NameTaken { resource: "project", name: p.name.to_string() }.into());
                }
                let configuration: Option<String> =
                    sqlx::query_scalar("SELECT id FROM storage_configurations WHERE id = $1")
                        .bind(p.configuration_id.to_string())
                        .fetch_optional(&mut *tx)
                        .await?;
                if configuration.is_none() {
                    return Err($crate::StoreError::NotFound);
                }
                let on_bucket: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, key_prefix FROM projects WHERE bucket = $1")
                        .bind(p.bucket.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                let ours = p.key_prefix.as_str();
                for (name, theirs) in on_bucket {
                    if ours.starts_with(theirs.as_str()) || theirs.starts_with(ours) {
                        return Err($crate::Conflict::ProjectPrefixOverlap {
                            name,
                            bucket: p.bucket.to_string(),
                            prefix: theirs,
                        }
                        .into());
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
                .bind($crate::millis(p.created_at))
                .bind($crate::millis(p.updated_at))
                .execute(&mut *tx)
                .await?;
                Ok(tx.commit().await?)
            }

            async fn get_project(&self, id: uuid::Uuid) -> $crate::Result<$crate::Project> {
                let sql = format!("SELECT {} FROM projects WHERE id = $1", $crate::sql::projects::PROJECT_COLUMNS);
                let row: $crate::sql::projects::ProjectRow =
                    sqlx::query_as(&sql).bind(id.to_string()).fetch_one(&self.pool).await?;
                row.try_into()
            }

            async fn list_projects(&self) -> $crate::Result<Vec<$crate::Project>> {
                let sql = format!("SELECT {} FROM projects ORDER BY name", $crate::sql::projects::PROJECT_COLUMNS);
                let rows: Vec<$crate::sql::projects::ProjectRow> = sqlx::query_as(&sql).fetch_all(&self.pool).await?;
                rows.into_iter().map(TryInto::try_into).collect()
            }

            async fn delete_project(&self, id: uuid::Uuid) -> $crate::Result<()> {
                // The catalog rows go with it (ON DELETE CASCADE).
                let done =
                    sqlx::query("DELETE FROM projects WHERE id = $1").bind(id.to_string()).execute(self.write_pool()).await?;
                if done.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                Ok(())
            }
        }
    };
}

pub(crate) use impl_project_stores;
