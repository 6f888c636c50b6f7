//! Reading one key from S3 when an event cannot be placed by itself (no `sequencer`, as moto
//! sends, or a storage-class transition), and turning listings into the domain's
//! [`Observation`]s. The rule is written down in [`byos_domain::objects`]: such an event is only
//! a hint that the key changed, and S3's answer is what gets applied.

use byos_aws::{AwsError, BucketAccess, Head, ListedVersion};
use byos_domain::VersioningState;
use byos_domain::objects::{NULL_VERSION, Observation, ObservedVersion, RestoreState, VersionKind};
use time::OffsetDateTime;

/// How far back an answer's `as_of` goes from the request's start: the skew allowed between this
/// clock and S3's event times. A wider margin only makes more events count as newer than the
/// answer, which is the safe side.
const CLOCK_SKEW_MS: i64 = 5_000;

pub(crate) fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// `as_of` for an answer to a request that started at `started_ms`.
pub(crate) fn as_of(started_ms: i64) -> i64 {
    started_ms - CLOCK_SKEW_MS
}

/// S3's `x-amz-restore` header: `ongoing-request="true"`, or `ongoing-request="false",
/// expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
pub(crate) fn restore_header(header: Option<&str>) -> Option<RestoreState> {
    let header = header?;
    if header.contains("ongoing-request=\"true\"") {
        return Some(RestoreState::InProgress);
    }
    let expires = header.split("expiry-date=\"").nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned);
    Some(RestoreState::Restored { expires })
}

fn observed(listed: &ListedVersion) -> ObservedVersion {
    ObservedVersion {
        version_id: listed.version_id.clone().unwrap_or_else(|| NULL_VERSION.to_owned()),
        kind: if listed.delete_marker {
            VersionKind::DeleteMarker
        } else {
            VersionKind::Object {
                size: listed.size,
                etag: listed.etag.clone(),
                storage_class: listed.storage_class.clone(),
            }
        },
        last_modified_ms: listed.last_modified_ms,
        restore: None,
    }
}

/// One key's entries of a listing (newest first) as an observation.
pub(crate) fn observation(as_of_ms: i64, entries: &[ListedVersion]) -> Observation {
    Observation { as_of_ms, versions: entries.iter().map(observed).collect() }
}

pub(crate) fn from_head(as_of_ms: i64, head: Option<Head>) -> Observation {
    let versions = head
        .map(|h| ObservedVersion {
            version_id: h.version_id.unwrap_or_else(|| NULL_VERSION.to_owned()),
            // S3 leaves the storage class header out for STANDARD objects; listings name it.
            kind: VersionKind::Object {
                size: h.size,
                etag: h.etag,
                storage_class: Some(h.storage_class.unwrap_or_else(|| "STANDARD".to_owned())),
            },
            last_modified_ms: h.last_modified_ms,
            restore: restore_header(h.restore.as_deref()),
        })
        .into_iter()
        .collect();
    Observation { as_of_ms, versions }
}

/// What S3 holds for `key` now. On a versioned or suspended bucket, every version of the key
/// (ListObjectVersions, which the versioned policy grants); on an unversioned one, HeadObject
/// (ICA's unversioned policy grants no version listing).
pub(crate) async fn look_up(
    access: &BucketAccess,
    bucket: &str,
    key: &str,
    versioning: Option<VersioningState>,
) -> Result<Observation, AwsError> {
    let started = now_ms();
    if matches!(versioning, Some(VersioningState::Enabled | VersioningState::Suspended)) {
        let versions = access.key_versions(bucket, key).await?;
        return Ok(observation(as_of(started), &versions));
    }
    let head = access.head(bucket, key, None).await?;
    Ok(from_head(as_of(started), head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_headers_are_read() {
        assert_eq!(restore_header(None), None);
        assert_eq!(restore_header(Some("ongoing-request=\"true\"")), Some(RestoreState::InProgress));
        assert_eq!(
            restore_header(Some("ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"")),
            Some(RestoreState::Restored { expires: Some("Fri, 21 Dec 2012 00:00:00 GMT".to_owned()) })
        );
    }
}
