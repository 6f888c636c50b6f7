//! A project's data: browsing its catalog. A path ending in `/` lists that folder's direct
//! children, files and folders, by name, a page at a time; any other path gives that one entry.
//! Paths are relative to the project and start with `/`.
//!
//! Pages are keyset pages: the token holds the last name of the page, so a page never repeats or
//! skips an entry that stays while the folder changes around it. It is sealed for its listing
//! (the project, the folder and the name filter; see `pages`).

use byos_catalog::{Entry, FileEntry, StoreError};
use byos_domain::objects::RestoreState;
use byos_domain::{KeyPrefix, Problem};

use crate::error::internal;
use crate::{Internal, ProjectScope, Read, ServiceError, Services, pages};

/// The largest page.
const MAX_LIMIT: u32 = 1000;
const DEFAULT_LIMIT: u32 = 100;

/// What to browse, as a client asks.
#[derive(Debug, Default)]
pub struct BrowseRequest {
    /// `/` or `/a/b/` for a folder's children; `/a/b/c.txt` for one entry. Defaults to `/`.
    pub path: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The token of the previous page.
    pub page_token: Option<String>,
    /// Only the entries whose names start with this (no `/`).
    pub prefix: Option<String>,
}

/// A page of a folder, or one entry.
#[derive(Debug, Clone)]
pub struct Listing {
    pub entries: Vec<Entry>,
    /// The token of the next page; none on the last one.
    pub next_page_token: Option<String>,
}

/// Where an object stands with the archive storage classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveState {
    /// In `GLACIER` or `DEEP_ARCHIVE`, not readable until restored.
    Archived,
    /// A restore was requested and is running.
    Restoring,
    /// A restored copy is readable until it expires.
    Restored,
}

impl ArchiveState {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveState::Archived => "archived",
            ArchiveState::Restoring => "restoring",
            ArchiveState::Restored => "restored",
        }
    }
}

/// A file's archive state; none for an object that was never archived.
pub fn archive_state(file: &FileEntry) -> Option<ArchiveState> {
    let archived = matches!(file.storage_class.as_deref(), Some("GLACIER" | "DEEP_ARCHIVE"));
    match &file.restore {
        Some(RestoreState::InProgress) => Some(ArchiveState::Restoring),
        Some(RestoreState::Restored { .. }) => Some(ArchiveState::Restored),
        Some(RestoreState::Expired) => Some(ArchiveState::Archived),
        None if archived => Some(ArchiveState::Archived),
        None => None,
    }
}

/// The operations on a project's data, for those who may see the project.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    services: &'a Services,
}

impl<'a> Data<'a> {
    pub(crate) fn new(services: &'a Services) -> Data<'a> {
        Data { services }
    }

    /// A folder's children, a page at a time, or one entry.
    pub async fn browse(&self, scope: &ProjectScope<Read>, request: BrowseRequest) -> Result<Listing, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = request.path.as_deref().unwrap_or("/");
        let relative = relative(path)?;
        let not_found = |e: StoreError| match e {
            StoreError::NotFound => ServiceError::from(Problem::not_found("Path", path)),
            e => internal(e),
        };
        let data = &self.services.store().data;
        if !relative.is_empty() && !relative.ends_with('/') {
            let entry = data.entry(project.id, relative).await.map_err(not_found)?;
            return Ok(Listing { entries: vec![entry], next_page_token: None });
        }
        let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Problem::invalid_request(&format!("limit: {limit} is not 1 to {MAX_LIMIT}")).into());
        }
        let prefix = name_prefix(request.prefix.as_deref().unwrap_or(""))?;
        let key = self.services.master_key();
        let listing = browse_listing(project.id, relative, prefix);
        let after = match request.page_token.as_deref() {
            Some(token) => Some(String::from_utf8(pages::open(key, &listing, token)?).map_err(|e| {
                Internal::Inconsistent(format!("a page token this server sealed holds {:?}", e.as_bytes()))
            })?),
            None => None,
        };
        let after = after.as_deref();
        let entries = data.entries(project.id, relative, after, prefix, limit).await.map_err(internal)?;
        if entries.is_empty() && after.is_none() && !relative.is_empty() {
            // An empty page of a folder that is not there: say so, rather than show it empty.
            data.entry(project.id, relative).await.map_err(not_found)?;
        }
        let next_page_token = (entries.len() == limit as usize)
            .then(|| entries.last().map(|e| pages::seal(key, &listing, e.name.as_bytes())))
            .flatten();
        Ok(Listing { entries, next_page_token })
    }

    /// The token of the page of folder `path` (`/a/b/`) whose names start with `prefix` that
    /// starts after the entry named `after` (a folder's with its `/`): what a listing hands out,
    /// for tools that start a listing at a known name (the benchmarks).
    pub fn page_token(
        &self,
        scope: &ProjectScope<Read>,
        path: &str,
        prefix: &str,
        after: &str,
    ) -> Result<String, ServiceError> {
        let listing = browse_listing(scope.project(), relative(path)?, name_prefix(prefix)?);
        Ok(pages::seal(self.services.master_key(), &listing, after.as_bytes()))
    }
}

/// What a browse page token is sealed for: the project, the folder and the name filter.
fn browse_listing(project: uuid::Uuid, folder: &str, prefix: &str) -> Vec<u8> {
    pages::listing("browse", &[&project.to_string(), folder, prefix])
}

/// A filter on entries' names, checked: part of one name, so no `/`, and not longer than a key.
fn name_prefix(prefix: &str) -> Result<&str, Problem> {
    if prefix.contains('/') {
        return Err(Problem::invalid_request(&format!("prefix: {prefix:?} is the start of a name, without '/'")));
    }
    if prefix.len() > 1024 || prefix.contains('\0') {
        return Err(Problem::invalid_request("prefix: longer than a key (1,024 bytes), or holds NUL"));
    }
    Ok(prefix)
}

/// The relative key of `path`, checked: `/a/b/` is `a/b/`, `/` is ``.
pub(crate) fn relative(path: &str) -> Result<&str, Problem> {
    relative_in("path", path)
}

/// [`relative`] for the field `field` of a request.
pub(crate) fn relative_in<'a>(field: &str, path: &'a str) -> Result<&'a str, Problem> {
    let invalid = |why: &str| Problem::invalid_request(&format!("{field}: {path:?} {why}"));
    let Some(relative) = path.strip_prefix('/') else {
        return Err(invalid("starts with '/', from the project's root"));
    };
    if relative.is_empty() {
        return Ok(relative);
    }
    // A folder path is a key prefix; a file path is one with its last segment.
    let as_prefix = if relative.ends_with('/') { relative.to_owned() } else { format!("{relative}/") };
    // Keys inside a project may hold any character a policy reads as a wildcard: paths are
    // never put into a policy unescaped.
    KeyPrefix::parse_relaxed(&as_prefix).map_err(|e| invalid(&format!("is not a valid path: {e}")))?;
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use byos_catalog::{EntryKind, KeyUpdate};
    use byos_domain::events::Sequencer;
    use byos_domain::objects::Change;

    use super::*;
    use crate::testing::{Fixture, code};

    #[test]
    fn paths_are_checked() {
        assert_eq!(relative("/"), Ok(""));
        assert_eq!(relative("/a/b/"), Ok("a/b/"));
        assert_eq!(relative("/a/b/c.txt"), Ok("a/b/c.txt"));
        for bad in ["a/b/", "/a//b/", "/../x", "/a/./b"] {
            assert!(relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn archive_states() {
        let file = |storage_class: Option<&str>, restore: Option<RestoreState>| FileEntry {
            size: 1,
            etag: "e".to_owned(),
            last_modified_ms: 0,
            storage_class: storage_class.map(str::to_owned),
            version_id: None,
            restore,
        };
        assert_eq!(archive_state(&file(Some("STANDARD"), None)), None);
        assert_eq!(archive_state(&file(Some("DEEP_ARCHIVE"), None)), Some(ArchiveState::Archived));
        assert_eq!(
            archive_state(&file(Some("GLACIER"), Some(RestoreState::InProgress))),
            Some(ArchiveState::Restoring)
        );
        let restored = RestoreState::Restored { expires: None };
        assert_eq!(archive_state(&file(Some("GLACIER"), Some(restored))), Some(ArchiveState::Restored));
        assert_eq!(archive_state(&file(Some("GLACIER"), Some(RestoreState::Expired))), Some(ArchiveState::Archived));
    }

    fn created(key: &str, size: u64) -> KeyUpdate {
        KeyUpdate::Changes {
            key: key.to_owned(),
            changes: vec![Change::Created {
                version_id: "null".to_owned(),
                sequencer: Sequencer::parse("0A").unwrap(),
                size,
                etag: format!("etag-{key}"),
                at_ms: 1_764_000_000_000,
            }],
        }
    }

    #[tokio::test]
    async fn a_folder_is_read_in_pages_that_neither_repeat_nor_skip() {
        let fixture = Fixture::new().await;
        let project = fixture.project("study").await;
        let mut updates: Vec<KeyUpdate> = (0..25).map(|i| created(&format!("many/f{i:02}.txt"), i)).collect();
        updates.push(created("top.txt", 3));
        fixture.services.store().data.apply(project, &updates).await.unwrap();
        let data = fixture.services.data();
        let admin = &fixture.admin;

        let mut seen = Vec::new();
        let mut page_token = None;
        let mut tokens = Vec::new();
        loop {
            let request =
                BrowseRequest { path: Some("/many/".to_owned()), limit: Some(10), page_token, ..Default::default() };
            let listing = data.browse(&admin.project(project).unwrap(), request).await.unwrap();
            seen.extend(listing.entries.iter().map(|e| e.name.clone()));
            match listing.next_page_token {
                Some(next) => {
                    tokens.push(next.clone());
                    page_token = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(seen, (0..25).map(|i| format!("f{i:02}.txt")).collect::<Vec<_>>());
        // The benchmarks' tokens are the listing's own.
        let minted = data.page_token(&admin.project(project).unwrap(), "/many/", "", "f09.txt").unwrap();
        let from_minted =
            BrowseRequest { path: Some("/many/".to_owned()), page_token: Some(minted), ..Default::default() };
        let page = data.browse(&admin.project(project).unwrap(), from_minted).await.unwrap();
        assert_eq!(page.entries.first().map(|e| e.name.as_str()), Some("f10.txt"));

        // A token is refused by another folder, another filter and another project, never followed.
        let other = fixture.project("other").await;
        for (project, path, prefix) in [(project, "/", ""), (project, "/many/", "f1"), (other, "/many/", "")] {
            let request = BrowseRequest {
                path: Some(path.to_owned()),
                prefix: Some(prefix.to_owned()),
                page_token: Some(tokens[0].clone()),
                ..Default::default()
            };
            assert_eq!(code(data.browse(&admin.project(project).unwrap(), request).await), "invalid-request");
        }

        let root = data.browse(&admin.project(project).unwrap(), BrowseRequest::default()).await.unwrap();
        let kinds: Vec<(String, bool)> =
            root.entries.iter().map(|e| (e.path(), matches!(e.kind, EntryKind::Folder { .. }))).collect();
        assert_eq!(kinds, [("many/".to_owned(), true), ("top.txt".to_owned(), false)]);
        let one = BrowseRequest { path: Some("/top.txt".to_owned()), ..Default::default() };
        let one = data.browse(&admin.project(project).unwrap(), one).await.unwrap();
        assert_eq!(one.entries.len(), 1);

        for (path, limit, token) in [
            ("/nowhere/", None, None),
            ("/many/f99.txt", None, None),
            ("many/", None, None),
            ("/many/", Some(0), None),
            ("/many/", Some(1001), None),
            ("/many/", None, Some("%%")),
        ] {
            let request = BrowseRequest {
                path: Some(path.to_owned()),
                limit,
                page_token: token.map(str::to_owned),
                ..Default::default()
            };
            let expected =
                if path.starts_with("/many/f") || path == "/nowhere/" { "not-found" } else { "invalid-request" };
            assert_eq!(
                code(data.browse(&admin.project(project).unwrap(), request).await),
                expected,
                "{path} {limit:?} {token:?}"
            );
        }
    }
}
