//! Transfers: the bytes go straight between the client and the customer's bucket, over URLs
//! presigned with the configuration's credential; byos decides what may be transferred and signs.

use std::time::Duration;

use byos_buckets::{OpenBucket, OpenError};
use byos_catalog::{EntryKind, Project, StoreError};
use byos_domain::Problem;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::data::relative;
use crate::error::internal;
use crate::{Internal, ProjectScope, Read, ServiceError, Services, required};

/// The settings of data access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSettings {
    /// How long a presigned URL works, at most: shorter when the credential's session ends
    /// sooner.
    pub url_expiry: Duration,
}

impl Default for DataSettings {
    fn default() -> DataSettings {
        DataSettings { url_expiry: Duration::from_secs(900) }
    }
}

/// A download, as a client asks for it.
#[derive(Debug, Default, Clone)]
pub struct DownloadRequest {
    /// The file's path in the project: `/a/b.txt`.
    pub path: Option<String>,
    /// One version of the file; the current one without it.
    pub version_id: Option<String>,
}

/// A presigned GET of a file.
#[derive(Debug, Clone)]
pub struct DownloadUrl {
    pub url: String,
    pub expires_at: OffsetDateTime,
    pub size: u64,
}

/// The operations that move a project's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Transfers<'a> {
    services: &'a Services,
}

impl<'a> Transfers<'a> {
    pub(crate) fn new(services: &'a Services) -> Transfers<'a> {
        Transfers { services }
    }

    /// A URL that downloads a file (or one version of it) straight from the bucket, saved under
    /// the file's name. A folder, a missing file and a version that is a delete marker are
    /// "not found".
    pub async fn download_url(
        &self,
        scope: &ProjectScope<Read>,
        request: DownloadRequest,
    ) -> Result<DownloadUrl, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let path = required("path", request.path.as_deref()).map_err(|e| Problem::invalid_request(&e))?;
        let relative = relative(path)?;
        let not_a_file = |why: &str| ServiceError::from(Problem::file_not_found(path, why));
        if relative.is_empty() || relative.ends_with('/') {
            return Err(not_a_file("it is a folder"));
        }
        let version_id = request.version_id.as_deref().map(version_id).transpose()?;
        let key = format!("{}{relative}", project.key_prefix);
        let bucket = self.open(&project).await?;
        let size = match version_id {
            None => match self.services.store().data.entry(project.id, relative).await {
                Ok(entry) => match entry.kind {
                    EntryKind::File(file) => file.size,
                    EntryKind::Folder { .. } => return Err(not_a_file("it is a folder")),
                },
                Err(StoreError::NotFound) => {
                    let folder = self.services.store().data.entry(project.id, &format!("{relative}/")).await;
                    return Err(not_a_file(if folder.is_ok() { "it is a folder" } else { "nothing is there" }));
                }
                Err(e) => return Err(internal(e)),
            },
            Some(version) => match bucket.access.head(project.bucket.as_str(), &key, Some(version)).await {
                Ok(Some(head)) => head.size,
                Ok(None) => {
                    return Err(not_a_file(&format!(
                        "it has no version {version}, or that version is a delete marker"
                    )));
                }
                Err(e) => return Err(aws_problem(&e, &project)),
            },
        };
        let access = &bucket.access;
        let validity = access.presigned_validity(self.services.data_settings().url_expiry).await;
        let validity = validity.map_err(|e| aws_problem(&e, &project))?;
        let name = relative.rsplit('/').next().unwrap_or(relative);
        let presigned = access
            .presign_get(project.bucket.as_str(), &key, version_id, &attachment(name), validity)
            .await
            .map_err(|e| aws_problem(&e, &project))?;
        Ok(DownloadUrl { url: presigned.url, expires_at: OffsetDateTime::from(presigned.expires_at), size })
    }

    async fn open(&self, project: &Project) -> Result<OpenBucket, ServiceError> {
        self.services.buckets().open(project.configuration_id).await.map_err(|e| match e {
            // The project keeps its configuration: a delete of the one is refused while the
            // other exists.
            OpenError::NotFound => internal(Internal::Inconsistent(format!(
                "project {} names configuration {}, which does not exist",
                project.id, project.configuration_id
            ))),
            e => internal(Internal::Open(e)),
        })
    }
}

/// A version id as S3 gives them: up to 1,024 visible characters.
fn version_id(text: &str) -> Result<&str, Problem> {
    if text.is_empty() || text.len() > 1024 || text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Problem::invalid_request(&format!("versionId: {text:?} is not a version id")));
    }
    Ok(text)
}

/// A failed AWS call on the project's bucket, as the catalogue says it.
fn aws_problem(error: &byos_aws::AwsError, project: &Project) -> ServiceError {
    byos_lifecycle::aws_problem(error, project.bucket.as_str(), project.region.as_str()).into()
}

/// What RFC 5987 lets stand unencoded in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `Content-Disposition` that saves a download as `name` (RFC 6266): `filename*` in UTF-8 for
/// browsers, and an ASCII `filename` for the rest, with what it cannot carry replaced by `_`.
fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| if c == ' ' || (c.is_ascii_graphic() && !"\"\\%".contains(c)) { c } else { '_' })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{}", utf8_percent_encode(name, ATTR_CHAR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_keep_their_name_in_every_browser() {
        assert_eq!(attachment("report.txt"), "attachment; filename=\"report.txt\"; filename*=UTF-8''report.txt");
        assert_eq!(
            attachment("Größe \"1\".csv"),
            "attachment; filename=\"Gr__e _1_.csv\"; filename*=UTF-8''Gr%C3%B6%C3%9Fe%20%221%22.csv"
        );
        assert_eq!(attachment("a%20b;c"), "attachment; filename=\"a_20b;c\"; filename*=UTF-8''a%2520b%3Bc");
    }

    #[test]
    fn version_ids_are_visible_text() {
        assert_eq!(version_id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY").ok(), Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"));
        for bad in ["", "a b", "a\nb", &"v".repeat(1025)] {
            assert!(version_id(bad).is_err(), "{bad:?}");
        }
    }
}
