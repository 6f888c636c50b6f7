//! Transfers: the bytes go straight between the client and the customer's bucket, over URLs
//! presigned with the configuration's credential; byos decides what may be transferred and signs.

use std::time::Duration;

use byos_aws::{CredentialSecret, Vended};
use byos_buckets::{OpenBucket, OpenError};
use byos_catalog::{EntryKind, Project, StoreError};
use byos_domain::session::{MAX_SESSION_POLICY_CHARS, session_name, session_policy, session_policy_text};
use byos_domain::{AwsRegion, BucketName, ErrorCode, KeyPrefix, Problem, ProjectAccess};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::data::relative;
use crate::error::internal;
use crate::uploads::UploadSettings;
use crate::{Internal, ProjectScope, Projects, Read, ReadWrite, ServiceError, Services, required};

/// The settings of data access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSettings {
    /// How long a presigned URL works, at most: shorter when the credential's session ends
    /// sooner.
    pub url_expiry: Duration,
    /// Temporary credentials one token may get per minute: STS throttles the platform's
    /// identity for everyone.
    pub credentials_per_minute: u32,
    pub uploads: UploadSettings,
}

impl Default for DataSettings {
    fn default() -> DataSettings {
        DataSettings {
            url_expiry: Duration::from_secs(900),
            credentials_per_minute: 60,
            uploads: UploadSettings::default(),
        }
    }
}

/// Temporary credentials, as a client asks for them.
#[derive(Debug, Default, Clone)]
pub struct CredentialsRequest {
    /// `read` or `read-write`.
    pub access: Option<String>,
    /// 900 s up to 36 h for an `aws-user` credential, up to the role's maximum for `aws-role`.
    pub duration_seconds: Option<u64>,
    /// A folder below the project (`/a/b/`), which need not exist yet; the whole project
    /// without it.
    pub path: Option<String>,
}

/// Temporary credentials for a project's prefix (or a folder below it).
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    pub credentials: Vended,
    pub access: ProjectAccess,
    pub region: AwsRegion,
    pub bucket: BucketName,
    /// The key prefix the session reaches.
    pub prefix: String,
    /// The session policy, as STS got it.
    pub session_policy: serde_json::Value,
}

/// The most files one request may ask download URLs for.
pub(crate) const MAX_DOWNLOADS_PER_REQUEST: usize = 1000;

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

/// What a project's downloads are signed with.
#[derive(Debug)]
struct Signer {
    project: Project,
    bucket: OpenBucket,
    validity: Duration,
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
        let signer = self.signer(scope).await?;
        self.sign_download(&signer, request).await
    }

    /// What every download of the project signs with: the project, its bucket, how long a URL
    /// may work. Made once for a batch of downloads.
    async fn signer(&self, scope: &ProjectScope<Read>) -> Result<Signer, ServiceError> {
        let project = self.services.projects().get(scope).await?;
        let bucket = open_bucket(self.services, &project).await?;
        let validity = bucket.access.presigned_validity(self.services.data_settings().url_expiry).await;
        let validity = validity.map_err(|e| aws_problem(&e, &project))?;
        Ok(Signer { project, bucket, validity })
    }

    /// One file's URL, with the project's signer.
    async fn sign_download(&self, signer: &Signer, request: DownloadRequest) -> Result<DownloadUrl, ServiceError> {
        let Signer { project, bucket, validity } = signer;
        let path = required("path", request.path.as_deref()).map_err(|e| Problem::invalid_request(&e))?;
        let relative = relative(path)?;
        let not_a_file = |why: &str| ServiceError::from(Problem::file_not_found(path, why));
        if relative.is_empty() || relative.ends_with('/') {
            return Err(not_a_file("it is a folder"));
        }
        let version_id = request.version_id.as_deref().map(version_id).transpose()?;
        let key = format!("{}{relative}", project.key_prefix);
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
                Err(e) => return Err(aws_problem(&e, project)),
            },
        };
        let name = relative.rsplit('/').next().unwrap_or(relative);
        let presigned = bucket
            .access
            .presign_get(project.bucket.as_str(), &key, version_id, &attachment(name), *validity)
            .await
            .map_err(|e| aws_problem(&e, project))?;
        Ok(DownloadUrl { url: presigned.url, expires_at: OffsetDateTime::from(presigned.expires_at), size })
    }

    /// URLs for many files at once (the current version of each), in the order asked: for each
    /// path its URL, or the problem that keeps it from being downloaded. One request signs up
    /// to `MAX_DOWNLOADS_PER_REQUEST` (1,000) files, so that a client fetching a folder of small
    /// files makes one call per page instead of one per file.
    pub async fn download_urls(
        &self,
        scope: &ProjectScope<Read>,
        paths: Option<&[String]>,
    ) -> Result<Vec<(String, Result<DownloadUrl, Problem>)>, ServiceError> {
        let paths = paths.ok_or_else(|| Problem::invalid_request("paths: required"))?;
        if paths.is_empty() || paths.len() > MAX_DOWNLOADS_PER_REQUEST {
            return Err(Problem::invalid_request(&format!(
                "paths: 1 to {MAX_DOWNLOADS_PER_REQUEST} paths of files, not {}",
                paths.len()
            ))
            .into());
        }
        let signer = self.signer(scope).await?;
        let mut signed = Vec::with_capacity(paths.len());
        for path in paths {
            let request = DownloadRequest { path: Some(path.clone()), version_id: None };
            match self.sign_download(&signer, request).await {
                Ok(url) => signed.push((path.clone(), Ok(url))),
                Err(ServiceError::Problem(problem)) => signed.push((path.clone(), Err(problem))),
                Err(e) => return Err(e),
            }
        }
        Ok(signed)
    }

    /// Temporary AWS credentials for the project's prefix (or a folder below it), limited by a
    /// session policy to `access`: GetFederationToken with an `aws-user` credential, AssumeRole
    /// with its external id for an `aws-role` one. `read-write` needs read-write access to the
    /// project.
    pub async fn temporary_credentials(
        &self,
        scope: &ProjectScope<Read>,
        request: CredentialsRequest,
    ) -> Result<TemporaryCredentials, ServiceError> {
        let invalid = |message: String| ServiceError::from(Problem::invalid_request(&message));
        let access_text = required("access", request.access.as_deref()).map_err(invalid)?;
        let access = ProjectAccess::parse(access_text)
            .ok_or_else(|| invalid(format!("access: {access_text:?} is not read or read-write")))?;
        if !scope.access().covers(access) {
            // The same refusal as a read-write route's.
            scope.caller().project::<ReadWrite>(scope.project())?;
        }
        let project = self.services.projects().get(scope).await?;
        Projects::policy_prefix(&project)?;
        let relative = match request.path.as_deref() {
            None => "",
            Some(path) => {
                let relative = relative(path)?;
                if !relative.is_empty() && !relative.ends_with('/') {
                    return Err(invalid(format!("path: {path:?} is not a folder; a folder's path ends with '/'")));
                }
                relative
            }
        };
        let prefix = KeyPrefix::parse_relaxed(&format!("{}{relative}", project.key_prefix))
            .map_err(|e| invalid(format!("path: {e}")))?;
        let bucket = open_bucket(self.services, &project).await?;
        let spec = &bucket.configuration.spec;
        let kms_key = spec.server_side_encryption.as_ref().and_then(|sse| sse.kms_key());
        let policy = session_policy(&project.bucket, &prefix, access, kms_key);
        let text = session_policy_text(&policy);
        if text.len() > MAX_SESSION_POLICY_CHARS {
            return Err(ErrorCode::CredentialsPathTooLong.into());
        }
        let store = self.services.store();
        let token = store.tokens.get_token(scope.caller().token()).await.map_err(internal)?;
        let short_id = &project.id.simple().to_string()[..8];
        let credential = store.credentials.get_credential(spec.credential_id).await.map_err(internal)?;
        let secret = self
            .services
            .buckets()
            .secret(&credential, project.configuration_id)
            .map_err(|e| internal(Internal::Open(e)))?;
        // STS's limits: 36 h for a federated user, the role's maximum (12 h at most) for a role.
        let max = if matches!(secret, CredentialSecret::AwsUser { .. }) { 129_600 } else { 43_200 };
        let duration = duration(request.duration_seconds, max)?;
        // Only a request that reaches STS counts against the token's budget.
        self.count_vend(scope.caller().token())?;
        let vended = match secret {
            CredentialSecret::AwsUser { .. } => {
                let name = session_name(&[token.name.as_str(), short_id], 32);
                bucket.access.federation_token(&name, &text, duration).await
            }
            CredentialSecret::AwsRole { role_arn, external_id, .. } => {
                let name = session_name(&[token.name.as_str(), short_id], 64);
                let aws = self.services.buckets().aws();
                aws.assume_role_scoped(&role_arn, &external_id, &name, &text, duration).await
            }
        };
        let credentials = vended.map_err(|e| match e.code.as_deref() {
            Some("PackedPolicyTooLarge") => ErrorCode::CredentialsPathTooLong.into(),
            _ => aws_problem(&e, &project),
        })?;
        tracing::info!(
            project = %project.id, token = %token.id, access = access.as_str(), prefix = %prefix,
            access_key_id = %credentials.access_key_id, "temporary credentials vended"
        );
        Ok(TemporaryCredentials {
            credentials,
            access,
            region: project.region.clone(),
            bucket: project.bucket.clone(),
            prefix: prefix.as_str().to_owned(),
            session_policy: policy,
        })
    }

    /// Counts a vend against the token's budget per minute, or refuses it.
    fn count_vend(&self, token: uuid::Uuid) -> Result<(), ServiceError> {
        let limit = self.services.data_settings().credentials_per_minute;
        if self.services.vends().admit(token, limit, std::time::Instant::now()) {
            return Ok(());
        }
        Err(Problem::too_many_requests(&format!(
            "this token got {limit} temporary credentials in the last minute, the most data.credentials_per_minute allows"
        ))
        .into())
    }
}

/// The project's bucket, opened with its configuration's credential.
pub(crate) async fn open_bucket(services: &Services, project: &Project) -> Result<OpenBucket, ServiceError> {
    services.buckets().open(project.configuration_id).await.map_err(|e| match e {
        // The project keeps its configuration: a delete of the one is refused while the other
        // exists.
        OpenError::NotFound => internal(Internal::Inconsistent(format!(
            "project {} names configuration {}, which does not exist",
            project.id, project.configuration_id
        ))),
        e => internal(Internal::Open(e)),
    })
}

/// A session's duration: `seconds`, 900 up to `max`; an hour without it.
fn duration(seconds: Option<u64>, max: u64) -> Result<Duration, ServiceError> {
    match seconds {
        None => Ok(Duration::from_secs(3600.min(max))),
        Some(s) if (900..=max).contains(&s) => Ok(Duration::from_secs(s)),
        Some(s) => Err(Problem::invalid_request(&format!("durationSeconds: {s} is not 900 to {max}")).into()),
    }
}

/// How many vends each token got in the last minute, per replica.
#[derive(Debug, Default)]
pub(crate) struct VendCounter {
    recent: std::sync::Mutex<std::collections::HashMap<uuid::Uuid, std::collections::VecDeque<std::time::Instant>>>,
}

impl VendCounter {
    /// Whether `token` may get one more at `now`, `limit` a minute; counts it if so.
    pub(crate) fn admit(&self, token: uuid::Uuid, limit: u32, now: std::time::Instant) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = recent.entry(token).or_default();
        while window.front().is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60)) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            return false;
        }
        window.push_back(now);
        true
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
pub(crate) fn aws_problem(error: &byos_aws::AwsError, project: &Project) -> ServiceError {
    tracing::warn!(project = %project.id, error = %byos_domain::ErrorChain(error), "an AWS request on the project's bucket failed");
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
    fn a_token_gets_so_many_credentials_a_minute() {
        let (counter, token, other) = (VendCounter::default(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let start = std::time::Instant::now();
        assert!((0..3).all(|_| counter.admit(token, 3, start)));
        assert!(!counter.admit(token, 3, start + Duration::from_secs(59)));
        assert!(counter.admit(other, 3, start), "each token has its own budget");
        assert!(counter.admit(token, 3, start + Duration::from_secs(60)), "a minute later, room again");
    }

    #[test]
    fn version_ids_are_visible_text() {
        assert_eq!(version_id("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY").ok(), Some("3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"));
        for bad in ["", "a b", "a\nb", &"v".repeat(1025)] {
            assert!(version_id(bad).is_err(), "{bad:?}");
        }
    }
}
