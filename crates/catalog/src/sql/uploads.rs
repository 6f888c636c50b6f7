//! Uploads in progress: the SQL of [`UploadStore`].

use async_trait::async_trait;
use sqlx::{ColumnIndex, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{ColumnType, Dialect, SqlStore, corrupt, is_foreign_key_violation, signed, uuid};
use crate::model::Upload;
use crate::{Result, StoreError, UploadStore, from_millis, millis};

const UPLOAD_COLUMNS: &str =
    "id, project_id, path, multipart_id, size, part_size, part_count, content_type, created_by, created_at, expires_at";

super::row! {
    struct UploadRow {
        id: String,
        project_id: String,
        path: String,
        multipart_id: Option<String>,
        size: i64,
        part_size: i64,
        part_count: i64,
        content_type: Option<String>,
        created_by: String,
        created_at: i64,
        expires_at: i64,
    }
}

impl TryFrom<UploadRow> for Upload {
    type Error = StoreError;

    fn try_from(row: UploadRow) -> Result<Upload> {
        const T: &str = "uploads";
        let count = |what: &str, n: i64| u64::try_from(n).map_err(|_| corrupt(T, format!("{what} {n}")));
        Ok(Upload {
            id: uuid(T, &row.id)?,
            project_id: uuid(T, &row.project_id)?,
            path: row.path,
            multipart_id: row.multipart_id,
            size: count("size", row.size)?,
            part_size: count("part size", row.part_size)?,
            part_count: u32::try_from(row.part_count)
                .map_err(|_| corrupt(T, format!("part count {}", row.part_count)))?,
            content_type: row.content_type,
            created_by: uuid(T, &row.created_by)?,
            created_at: from_millis(T, row.created_at)?,
            expires_at: from_millis(T, row.expires_at)?,
        })
    }
}

#[async_trait]
impl<D: Dialect> UploadStore for SqlStore<D>
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
    async fn insert_upload(&self, upload: &Upload) -> Result<()> {
        let inserted = sqlx::query(&format!(
            "INSERT INTO uploads ({UPLOAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(upload.id.to_string())
        .bind(upload.project_id.to_string())
        .bind(upload.path.as_str())
        .bind(upload.multipart_id.as_deref())
        .bind(signed(upload.size))
        .bind(signed(upload.part_size))
        .bind(i64::from(upload.part_count))
        .bind(upload.content_type.as_deref())
        .bind(upload.created_by.to_string())
        .bind(millis(upload.created_at))
        .bind(millis(upload.expires_at))
        .execute(&self.writer)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            // The project is gone.
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_upload(&self, project: Uuid, id: Uuid) -> Result<Upload> {
        let row: Option<UploadRow> =
            sqlx::query_as(&format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND project_id = $2"))
                .bind(id.to_string())
                .bind(project.to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    async fn list_uploads(&self, project: Uuid) -> Result<Vec<Upload>> {
        let rows: Vec<UploadRow> = sqlx::query_as(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE project_id = $1 ORDER BY created_at, id"
        ))
        .bind(project.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Upload::try_from).collect()
    }

    async fn delete_upload(&self, id: Uuid) -> Result<()> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1").bind(id.to_string()).execute(&self.writer).await?;
        if D::rows_affected(&done) == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn expired_uploads(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<Upload>> {
        let rows: Vec<UploadRow> = sqlx::query_as(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
        ))
        .bind(millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Upload::try_from).collect()
    }
}
