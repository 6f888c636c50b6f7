//! Reading what a bucket holds, page by page: objects (ListObjectsV2), versions and delete
//! markers (ListObjectVersions), and one key's current state (HeadObject). The sync engine's
//! reconcile streams these pages, so memory stays bounded whatever the bucket's size.

use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::EncodingType;

use crate::boxed;
use crate::bucket::BucketAccess;
use crate::error::{AwsError, AwsErrorKind, classify};

/// One object of a listing, or one version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedVersion {
    pub key: String,
    /// `None` in a ListObjectsV2 page; `"null"` for the null version.
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
}

/// One page and where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub entries: Vec<ListedVersion>,
    /// The folders of a page listed by folder ([`BucketAccess::list_folder_page`]): each key
    /// below one of them is in no entry. Empty for other listings.
    pub folders: Vec<String>,
    /// Pass back to get the next page; `None` after the last one.
    pub next: Option<PageMarker>,
}

/// Where a listing goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageMarker {
    Objects {
        continuation_token: String,
    },
    /// The keys after this one: where a listing stopped long ago goes on (a continuation token
    /// is S3's to expire).
    After {
        key: String,
    },
    Versions {
        key_marker: String,
        version_id_marker: Option<String>,
    },
}

/// What HeadObject says about a key (or one of its versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub version_id: Option<String>,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
    /// The `x-amz-restore` header: `ongoing-request="true"`, or `ongoing-request="false",
    /// expiry-date="..."`.
    pub restore: Option<String>,
    /// The object's server-side encryption as S3 reports it: `AES256`, `aws:kms`.
    pub server_side_encryption: Option<String>,
}

fn millis(t: Option<&DateTime>) -> i64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0)
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn size(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

/// A key (or key marker) of a listing. Listings ask for `encoding-type=url`, because a key may
/// hold characters XML 1.0 cannot carry (NUL and most other control characters) and a page
/// with one would not parse; S3 then percent-encodes keys, with a space as `+`, and says so in
/// the answer's `EncodingType` (an S3 that ignores the request sends the keys as they are).
pub(crate) fn listed_key(
    raw: Option<&str>,
    encoding: Option<&EncodingType>,
    operation: &'static str,
) -> Result<String, AwsError> {
    let raw = raw.unwrap_or_default();
    if encoding != Some(&EncodingType::Url) {
        return Ok(raw.to_owned());
    }
    decode_key(raw).map_err(|e| AwsError { operation, ..e })
}

/// A key percent-encoded with a space as `+`, as URL-encoded listings and inventory reports
/// give keys.
pub(crate) fn decode_key(raw: &str) -> Result<String, AwsError> {
    if !raw.contains(['%', '+']) {
        return Ok(raw.to_owned());
    }
    let plus_as_space = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space).decode_utf8().map(|key| key.into_owned()).map_err(|e| {
        AwsError::new(AwsErrorKind::Other, "decoding a key", format!("a key is not UTF-8 once decoded: {raw:?}"))
            .caused_by(e)
    })
}

impl BucketAccess {
    /// One page (up to `max` keys) of the current objects under `prefix`, in key order.
    #[boxed]
    pub async fn list_objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&PageMarker>,
        max: i32,
    ) -> Result<ListPage, AwsError> {
        self.objects_page(bucket, prefix, None, after, max).await
    }

    /// One page (up to `max` keys and folders) of what lies directly in the folder `prefix`: its
    /// keys, as [`list_objects_page`](Self::list_objects_page) or (with `versions`)
    /// [`list_versions_page`](Self::list_versions_page) gives them, and the folders below it,
    /// each once, in the order of their keys. The reconcile uses it to find where to split a
    /// listing.
    #[boxed]
    pub async fn list_folder_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&PageMarker>,
        max: i32,
        versions: bool,
    ) -> Result<ListPage, AwsError> {
        if versions {
            self.versions_page(bucket, prefix, Some("/"), after, max).await
        } else {
            self.objects_page(bucket, prefix, Some("/"), after, max).await
        }
    }

    async fn objects_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&PageMarker>,
        max: i32,
    ) -> Result<ListPage, AwsError> {
        let mut request = self
            .s3()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(max)
            .encoding_type(EncodingType::Url);
        match after {
            Some(PageMarker::Objects { continuation_token }) => {
                request = request.continuation_token(continuation_token);
            }
            Some(PageMarker::After { key }) => request = request.start_after(key),
            _ => {}
        }
        let out = request.send().await.map_err(|e| classify("ListObjectsV2", e))?;
        let entries = out
            .contents()
            .iter()
            .map(|o| {
                Ok(ListedVersion {
                    key: listed_key(o.key(), out.encoding_type(), "ListObjectsV2")?,
                    version_id: None,
                    is_latest: true,
                    delete_marker: false,
                    size: size(o.size()),
                    etag: unquote(o.e_tag()),
                    last_modified_ms: millis(o.last_modified()),
                    storage_class: o.storage_class().map(|c| c.as_str().to_owned()),
                })
            })
            .collect::<Result<_, AwsError>>()?;
        let folders = out
            .common_prefixes()
            .iter()
            .map(|p| listed_key(p.prefix(), out.encoding_type(), "ListObjectsV2"))
            .collect::<Result<_, AwsError>>()?;
        let next = match (out.is_truncated(), out.next_continuation_token()) {
            (Some(true), Some(token)) => Some(PageMarker::Objects { continuation_token: token.to_owned() }),
            _ => None,
        };
        Ok(ListPage { entries, folders, next })
    }

    /// One page of versions and delete markers under `prefix`: keys in order, each key's
    /// versions newest first (S3's order), with `is_latest` on the current one.
    #[boxed]
    pub async fn list_versions_page(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&PageMarker>,
        max: i32,
    ) -> Result<ListPage, AwsError> {
        self.versions_page(bucket, prefix, None, after, max).await
    }

    async fn versions_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&PageMarker>,
        max: i32,
    ) -> Result<ListPage, AwsError> {
        let mut request = self
            .s3()
            .list_object_versions()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_owned))
            .max_keys(max)
            .encoding_type(EncodingType::Url);
        match after {
            Some(PageMarker::Versions { key_marker, version_id_marker }) => {
                request = request.key_marker(key_marker).set_version_id_marker(version_id_marker.clone());
            }
            Some(PageMarker::After { key }) => request = request.key_marker(key),
            _ => {}
        }
        let out = request.send().await.map_err(|e| classify("ListObjectVersions", e))?;
        let key = |raw: Option<&str>| listed_key(raw, out.encoding_type(), "ListObjectVersions");
        let mut entries = out
            .versions()
            .iter()
            .map(|v| {
                Ok(ListedVersion {
                    key: key(v.key())?,
                    version_id: Some(v.version_id().unwrap_or("null").to_owned()),
                    is_latest: v.is_latest().unwrap_or(false),
                    delete_marker: false,
                    size: size(v.size()),
                    etag: unquote(v.e_tag()),
                    last_modified_ms: millis(v.last_modified()),
                    storage_class: v.storage_class().map(|c| c.as_str().to_owned()),
                })
            })
            .collect::<Result<Vec<_>, AwsError>>()?;
        for m in out.delete_markers() {
            entries.push(ListedVersion {
                key: key(m.key())?,
                version_id: Some(m.version_id().unwrap_or("null").to_owned()),
                is_latest: m.is_latest().unwrap_or(false),
                delete_marker: true,
                size: 0,
                etag: String::new(),
                last_modified_ms: millis(m.last_modified()),
                storage_class: None,
            });
        }
        // S3 sends versions and markers in two lists; one stream in key order, newest first
        // within a key, is what the reconcile merges.
        entries.sort_by(|a, b| {
            a.key.cmp(&b.key).then(b.is_latest.cmp(&a.is_latest)).then(b.last_modified_ms.cmp(&a.last_modified_ms))
        });
        let next = match (out.is_truncated(), out.next_key_marker()) {
            (Some(true), Some(marker)) => Some(PageMarker::Versions {
                key_marker: key(Some(marker))?,
                version_id_marker: out.next_version_id_marker().map(str::to_owned),
            }),
            _ => None,
        };
        let folders = out.common_prefixes().iter().map(|p| key(p.prefix())).collect::<Result<_, AwsError>>()?;
        Ok(ListPage { entries, folders, next })
    }

    /// Every version and delete marker of exactly `key`, newest first (ListObjectVersions;
    /// the prefix `key` also lists longer keys, which are left out).
    #[boxed]
    pub async fn key_versions(&self, bucket: &str, key: &str) -> Result<Vec<ListedVersion>, AwsError> {
        let mut versions = Vec::new();
        let mut marker = None;
        loop {
            let page = self.list_versions_page(bucket, key, marker.as_ref(), 1000).await?;
            versions.extend(page.entries.iter().filter(|e| e.key == key).cloned());
            let past = page.entries.last().is_some_and(|e| e.key.as_str() > key);
            match page.next {
                Some(next) if !past => marker = Some(next),
                _ => return Ok(versions),
            }
        }
    }

    /// The key's current object (or a given version); `None` when there is none (deleted, or a
    /// delete marker is current).
    #[boxed]
    pub async fn head(&self, bucket: &str, key: &str, version_id: Option<&str>) -> Result<Option<Head>, AwsError> {
        let result =
            self.s3().head_object().bucket(bucket).key(key).set_version_id(version_id.map(str::to_owned)).send().await;
        match result {
            Ok(out) => Ok(Some(Head {
                version_id: out.version_id().map(str::to_owned),
                size: size(out.content_length()),
                etag: unquote(out.e_tag()),
                last_modified_ms: millis(out.last_modified()),
                storage_class: out.storage_class().map(|c| c.as_str().to_owned()),
                restore: out.restore().map(str::to_owned),
                server_side_encryption: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            })),
            Err(e) => {
                let error = classify("HeadObject", e);
                // A HEAD answer has no body: a missing key is a bare 404, and a current delete
                // marker a 404 (or 405 for a version that is one).
                if matches!(error.kind, AwsErrorKind::NotFound | AwsErrorKind::NoSuchKey) || error.message == "HTTP 405"
                {
                    Ok(None)
                } else {
                    Err(error)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_keys_are_decoded() {
        let url = Some(&EncodingType::Url);
        assert_eq!(listed_key(Some("a+b%2Bc%00d%20%E2%82%AC"), url, "ListObjectsV2").unwrap(), "a b+c\0d \u{20ac}");
        assert_eq!(listed_key(Some("a+b%00"), None, "ListObjectsV2").unwrap(), "a+b%00", "not encoded: as sent");
        assert_eq!(listed_key(None, url, "ListObjectsV2").unwrap(), "");
        let error = listed_key(Some("bad%FF"), url, "ListObjectVersions").unwrap_err();
        assert_eq!(error.operation, "ListObjectVersions");
        assert!(error.message.contains("bad%FF"), "{error}");
    }
}
