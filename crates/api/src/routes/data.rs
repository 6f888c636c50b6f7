//! `/api/v1/projects/{id}/data`: browsing a project's catalog. A `path` ending in `/` lists that
//! folder's direct children, files and folders, by name, a page at a time; any other path gives
//! that one entry. Paths are relative to the project and start with `/`.
//!
//! Pages are keyset pages: the token is the last name of the page, so a page never repeats or
//! skips an entry that stays while the folder changes around it.

use axum::Json;
use axum::extract::{Query, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use byos_catalog::{Entry, EntryKind, StoreError};
use byos_domain::objects::RestoreState;
use byos_domain::{KeyPrefix, Problem};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::projects::visible_project;
use super::rfc3339;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Id;

/// The largest page.
const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 100;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(browse))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct BrowseQuery {
    /// `/` or `/a/b/` for a folder's children; `/a/b/c.txt` for one entry. Defaults to `/`.
    path: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<u32>,
    /// The `nextPageToken` of the previous page.
    page_token: Option<String>,
}

/// A file or a folder.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryView {
    /// The file's name, or the folder's (without `/`).
    name: String,
    /// From the project's root: `/a/b/c.txt`, `/a/b/` for a folder.
    path: String,
    /// `file` or `folder`.
    #[serde(rename = "type")]
    #[schema(example = "file")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_modified: Option<String>,
    /// As S3 lists it; unknown until a listing has shown the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    storage_class: Option<String>,
    /// On versioned buckets, the current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
    /// `archived`, `restoring` or `restored`, for objects in an archive storage class or being
    /// restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    restore_expires_at: Option<String>,
    /// For folders: whether a folder marker object keeps it while it is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    folder_marker: Option<bool>,
    /// For folders: how many direct children it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    children: Option<u64>,
}

/// A page of a folder, or one entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page {
    items: Vec<EntryView>,
    /// Pass as `pageToken` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_page_token: Option<String>,
}

fn archive_state(storage_class: Option<&str>, restore: Option<&RestoreState>) -> Option<&'static str> {
    let archived = matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE"));
    match restore {
        Some(RestoreState::InProgress) => Some("restoring"),
        Some(RestoreState::Restored { .. }) => Some("restored"),
        Some(RestoreState::Expired) => Some("archived"),
        None if archived => Some("archived"),
        None => None,
    }
}

impl From<&Entry> for EntryView {
    fn from(entry: &Entry) -> EntryView {
        let path = format!("/{}", entry.path());
        let name = entry.name.trim_end_matches('/').to_owned();
        match &entry.kind {
            EntryKind::File(file) => EntryView {
                name,
                path,
                kind: "file",
                size: Some(file.size),
                e_tag: Some(file.etag.clone()),
                last_modified: OffsetDateTime::from_unix_timestamp_nanos(i128::from(file.last_modified_ms) * 1_000_000)
                    .ok()
                    .map(rfc3339),
                storage_class: file.storage_class.clone(),
                version_id: file.version_id.clone(),
                archive_state: archive_state(file.storage_class.as_deref(), file.restore.as_ref()),
                restore_expires_at: match &file.restore {
                    Some(RestoreState::Restored { expires }) => expires.clone(),
                    _ => None,
                },
                folder_marker: None,
                children: None,
            },
            EntryKind::Folder { marker, children } => EntryView {
                name,
                path,
                kind: "folder",
                size: None,
                e_tag: None,
                last_modified: None,
                storage_class: None,
                version_id: None,
                archive_state: None,
                restore_expires_at: None,
                folder_marker: Some(*marker),
                children: Some(*children),
            },
        }
    }
}

/// The relative key of `path`, checked: `/a/b/` is `a/b/`, `/` is ``.
fn relative(path: &str) -> Result<&str, Problem> {
    let invalid = |why: &str| Problem::invalid_request(&format!("path: {path:?} {why}"));
    let Some(relative) = path.strip_prefix('/') else {
        return Err(invalid("starts with '/', from the project's root"));
    };
    if relative.is_empty() {
        return Ok(relative);
    }
    // A folder path is a key prefix; a file path is one with its last segment.
    let as_prefix = if relative.ends_with('/') { relative.to_owned() } else { format!("{relative}/") };
    KeyPrefix::parse(&as_prefix).map_err(|e| invalid(&format!("is not a valid path: {e}")))?;
    Ok(relative)
}

/// Browse a project's data: a folder's children (a path ending in `/`), or one entry.
#[utoipa::path(get, path = "/api/v1/projects/{id}/data", tag = "projects", security(("bearer" = [])),
    params(("id" = Uuid, Path), BrowseQuery),
    responses((status = 200, body = Page), (status = "4XX", body = ErrorBody)))]
async fn browse(
    principal: Principal,
    state: State<AppState>,
    Id(id): Id,
    query: Result<Query<BrowseQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Page>> {
    let Query(query) = query.map_err(|e| Problem::invalid_request(&format!("query: {}", e.body_text())))?;
    let project = visible_project(&state, &principal, id).await?;
    let path = query.path.as_deref().unwrap_or("/");
    let relative = relative(path)?;
    let not_found = || ApiError::from(Problem::not_found("Path", path));
    let data = &state.store().data;
    if !relative.is_empty() && !relative.ends_with('/') {
        let entry = data.entry(project.id, relative).await.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => ApiError::internal(e),
        })?;
        return Ok(Json(Page { items: vec![EntryView::from(&entry)], next_page_token: None }));
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::invalid_request(&format!("limit: {limit} is not 1 to {MAX_LIMIT}")).into());
    }
    let after = match &query.page_token {
        None => None,
        Some(token) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(token)
                .map_err(|_| Problem::invalid_request("pageToken: not a token this API gave"))?;
            Some(
                String::from_utf8(bytes)
                    .map_err(|_| Problem::invalid_request("pageToken: not a token this API gave"))?,
            )
        }
    };
    let entries = data.entries(project.id, relative, after.as_deref(), limit).await.map_err(ApiError::internal)?;
    if entries.is_empty() && after.is_none() && !relative.is_empty() {
        // An empty page of a folder that is not there: say so, rather than show it empty.
        data.entry(project.id, relative).await.map_err(|e| match e {
            StoreError::NotFound => not_found(),
            e => ApiError::internal(e),
        })?;
    }
    let next_page_token = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| URL_SAFE_NO_PAD.encode(e.name.as_bytes())))
        .flatten();
    Ok(Json(Page { items: entries.iter().map(EntryView::from).collect(), next_page_token }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(relative("/"), Ok(""));
        assert_eq!(relative("/a/b/"), Ok("a/b/"));
        assert_eq!(relative("/a/b/c.txt"), Ok("a/b/c.txt"));
        for bad in ["a/b/", "/a//b/", "/../x", "/a/./b"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }
}
