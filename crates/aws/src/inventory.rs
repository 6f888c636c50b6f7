//! S3 Inventory: a bucket's inventory configurations, its latest report (`manifest.json` and
//! the gzip CSV or Parquet files it names), and the report's rows as pages of
//! [`ListedVersion`]s in key order, the way a listing gives them.
//!
//! A report is laid out in its destination as
//! `{destination prefix}/{source bucket}/{configuration id}/{YYYY-MM-DDTHH-MMZ}/manifest.json`
//! (with `manifest.checksum`, the MD5 of `manifest.json`, written beside it), and the data files
//! under `.../{configuration id}/data/`. A CSV report quotes every field and URL-encodes its keys
//! (a space as `+`); the manifest's `fileSchema` names the columns. A Parquet report keeps its
//! keys as they are, under snake_case column names (`key`, `version_id`, `e_tag`, ...).
//!
//! S3 does not promise that a report's files, or the rows in one, come in key order. The reader
//! orders the files by their first key and checks every row against the one before: a report
//! out of order is refused with [`ReportError::OutOfOrder`] rather than read wrong.

use std::io::Write;

use aws_sdk_s3::types::{
    InventoryConfiguration, InventoryDestination, InventoryFilter, InventoryFormat, InventoryFrequency,
    InventoryIncludedObjectVersions, InventoryOptionalField, InventoryS3BucketDestination, InventorySchedule,
};
use flate2::write::MultiGzDecoder;
use md5::{Digest, Md5};
use parquet::file::metadata::ParquetMetaDataReader;
use parquet::file::reader::SerializedFileReader;
use parquet::record::reader::RowIter;
use parquet::record::{Field, Row};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::boxed;
use crate::error::classify;
use crate::listing::ListedVersion;
use crate::{AwsError, AwsErrorKind, BucketAccess};

/// The columns a report needs beyond the key (and, for a versioned bucket, the version columns)
/// to stand for a listing.
pub const REQUIRED_FIELDS: [&str; 4] = ["Size", "LastModifiedDate", "ETag", "StorageClass"];

/// How many bytes of a data file are read to learn its first key.
const PEEK_BYTES: u64 = 64 * 1024;

/// An inventory configuration of a bucket, as far as byos reads or writes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub id: String,
    pub enabled: bool,
    /// Only keys under it are in the reports.
    pub prefix: Option<String>,
    /// Every version of every key (`All`), or only the current ones.
    pub all_versions: bool,
    pub format: ReportFormat,
    /// The bucket the reports go to (its name, not its ARN).
    pub destination_bucket: String,
    pub destination_prefix: Option<String>,
    /// The optional columns, as S3 names them (`Size`, `ETag`, ...).
    pub fields: Vec<String>,
    pub daily: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Csv,
    Parquet,
    Orc,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Csv => "CSV",
            ReportFormat::Parquet => "Parquet",
            ReportFormat::Orc => "ORC",
        }
    }
}

/// The id of the inventory `byos aws bootstrap --inventory` sets up.
pub const BYOS_INVENTORY_ID: &str = "byos";

/// Where in the bucket that inventory's reports go: outside any configuration's prefix (a
/// configuration of the whole bucket sees a folder of that name, which no project need hold).
pub const BYOS_REPORTS_PREFIX: &str = "byos-inventory";

impl Inventory {
    /// The inventory `byos aws bootstrap --inventory` sets up: daily, CSV, every version when the
    /// bucket keeps versions, the columns a reconcile needs, its reports in the bucket itself.
    /// Where the platform may not read the bucket's inventory configurations, a reconcile looks
    /// for this one's reports.
    pub fn byos(bucket: &str, prefix: Option<&str>, all_versions: bool) -> Inventory {
        Inventory {
            id: BYOS_INVENTORY_ID.to_owned(),
            enabled: true,
            prefix: prefix.filter(|p| !p.is_empty()).map(str::to_owned),
            all_versions,
            format: ReportFormat::Csv,
            destination_bucket: bucket.to_owned(),
            destination_prefix: Some(BYOS_REPORTS_PREFIX.to_owned()),
            fields: REQUIRED_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            daily: true,
        }
    }

    /// Where this configuration's reports are written, up to the configuration's id.
    pub fn reports_prefix(&self, source_bucket: &str) -> String {
        let prefix = self.destination_prefix.as_deref().unwrap_or_default().trim_end_matches('/');
        let lead = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        format!("{lead}{source_bucket}/{}/", self.id)
    }

    /// Whether its reports can stand for a listing of `prefix`: enabled, CSV or Parquet, covering the
    /// prefix, with every version when the bucket keeps versions, with the columns a listing
    /// gives. Answers why not.
    pub fn unfit_for(&self, prefix: &str, versioned: bool) -> Option<String> {
        if !self.enabled {
            return Some("it is disabled".to_owned());
        }
        if self.format == ReportFormat::Orc {
            return Some("its reports are ORC; byos reads CSV and Parquet reports".to_owned());
        }
        if let Some(own) = &self.prefix
            && !prefix.starts_with(own.as_str())
        {
            return Some(format!("it covers only keys under {own:?}"));
        }
        if versioned && !self.all_versions {
            return Some("it lists only current versions of a bucket that keeps versions".to_owned());
        }
        let missing: Vec<&str> =
            REQUIRED_FIELDS.iter().copied().filter(|f| !self.fields.iter().any(|have| have == f)).collect();
        if !missing.is_empty() {
            return Some(format!("its reports lack the fields {}", missing.join(", ")));
        }
        None
    }

    fn from_sdk(c: &InventoryConfiguration) -> Option<Inventory> {
        let destination = c.destination()?.s3_bucket_destination()?;
        let format = match destination.format() {
            InventoryFormat::Csv => ReportFormat::Csv,
            InventoryFormat::Parquet => ReportFormat::Parquet,
            _ => ReportFormat::Orc,
        };
        Some(Inventory {
            id: c.id().to_owned(),
            enabled: c.is_enabled(),
            prefix: c.filter().map(|f| f.prefix().to_owned()).filter(|p| !p.is_empty()),
            all_versions: *c.included_object_versions() == InventoryIncludedObjectVersions::All,
            format,
            destination_bucket: bucket_of(destination.bucket()).to_owned(),
            destination_prefix: destination.prefix().map(str::to_owned).filter(|p| !p.is_empty()),
            fields: c.optional_fields().iter().map(|f| f.as_str().to_owned()).collect(),
            daily: c.schedule().is_none_or(|s| *s.frequency() == InventoryFrequency::Daily),
        })
    }

    fn to_sdk(&self) -> Result<InventoryConfiguration, AwsError> {
        let invalid = |e: aws_sdk_s3::error::BuildError| {
            AwsError::new(AwsErrorKind::InvalidRequest, "PutBucketInventoryConfiguration", e.to_string())
        };
        let format = match self.format {
            ReportFormat::Csv => InventoryFormat::Csv,
            ReportFormat::Parquet => InventoryFormat::Parquet,
            ReportFormat::Orc => InventoryFormat::Orc,
        };
        let destination = InventoryS3BucketDestination::builder()
            .bucket(format!("arn:aws:s3:::{}", self.destination_bucket))
            .format(format)
            .set_prefix(self.destination_prefix.clone())
            .build()
            .map_err(invalid)?;
        let versions = if self.all_versions {
            InventoryIncludedObjectVersions::All
        } else {
            InventoryIncludedObjectVersions::Current
        };
        let frequency = if self.daily { InventoryFrequency::Daily } else { InventoryFrequency::Weekly };
        InventoryConfiguration::builder()
            .id(&self.id)
            .is_enabled(self.enabled)
            .included_object_versions(versions)
            .destination(InventoryDestination::builder().s3_bucket_destination(destination).build())
            .set_filter(
                self.prefix
                    .as_ref()
                    .map(|p| InventoryFilter::builder().prefix(p).build())
                    .transpose()
                    .map_err(invalid)?,
            )
            .set_optional_fields(Some(self.fields.iter().map(|f| InventoryOptionalField::from(f.as_str())).collect()))
            .schedule(InventorySchedule::builder().frequency(frequency).build().map_err(invalid)?)
            .build()
            .map_err(invalid)
    }
}

/// A bucket's name from a destination's ARN (`arn:aws:s3:::name`), or the name itself.
fn bucket_of(arn: &str) -> &str {
    arn.strip_prefix("arn:aws:s3:::").or_else(|| arn.rsplit(":::").next()).unwrap_or(arn)
}

/// A report's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its key in the destination bucket.
    pub key: String,
    pub source_bucket: String,
    pub destination_bucket: String,
    /// When S3 began scanning the bucket for this report: no row is older than that.
    pub created_ms: i64,
    pub format: ReportFormat,
    /// The columns of each row, in order.
    pub schema: Vec<String>,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub key: String,
    pub size: u64,
    /// Hex MD5 of the (compressed) file.
    pub md5: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    source_bucket: String,
    destination_bucket: String,
    creation_timestamp: String,
    file_format: String,
    #[serde(default)]
    file_schema: String,
    files: Vec<RawFile>,
}

#[derive(Deserialize)]
struct RawFile {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "MD5checksum", default)]
    md5: String,
}

impl Manifest {
    /// Reads a `manifest.json` found at `key`.
    pub fn parse(key: &str, body: &[u8]) -> Result<Manifest, ReportError> {
        let bad = |message: String| ReportError::Format { file: key.to_owned(), line: 0, message };
        let raw: RawManifest = serde_json::from_slice(body).map_err(|e| bad(format!("not a manifest: {e}")))?;
        let created_ms = raw
            .creation_timestamp
            .trim()
            .parse::<i64>()
            .map_err(|_| bad(format!("creationTimestamp {:?} is not milliseconds", raw.creation_timestamp)))?;
        let format = match raw.file_format.to_ascii_uppercase().as_str() {
            "CSV" => ReportFormat::Csv,
            "PARQUET" => ReportFormat::Parquet,
            "ORC" => ReportFormat::Orc,
            other => return Err(bad(format!("unknown fileFormat {other:?}"))),
        };
        let schema = match format {
            ReportFormat::Csv => {
                raw.file_schema.split(',').map(|c| c.trim().to_owned()).filter(|c| !c.is_empty()).collect()
            }
            ReportFormat::Parquet => parquet_columns(&raw.file_schema),
            ReportFormat::Orc => Vec::new(),
        };
        Ok(Manifest {
            key: key.to_owned(),
            source_bucket: raw.source_bucket,
            destination_bucket: bucket_of(&raw.destination_bucket).to_owned(),
            created_ms,
            format,
            schema,
            files: raw.files.into_iter().map(|f| ManifestFile { key: f.key, size: f.size, md5: f.md5 }).collect(),
        })
    }
}

/// The columns of a Parquet message type (`message s3.inventory { required binary key (STRING);
/// ... }`), by the names the CSV reports give them.
fn parquet_columns(message: &str) -> Vec<String> {
    let body = message.split_once('{').map_or("", |(_, rest)| rest.rsplit_once('}').map_or(rest, |(b, _)| b));
    body.split(';').filter_map(|field| field.split_whitespace().nth(2)).map(|name| csv_name(name).to_owned()).collect()
}

/// A Parquet report's column name as a CSV report names it.
fn csv_name(parquet: &str) -> &str {
    match parquet {
        "bucket" => "Bucket",
        "key" => "Key",
        "version_id" => "VersionId",
        "is_latest" => "IsLatest",
        "is_delete_marker" => "IsDeleteMarker",
        "size" => "Size",
        "last_modified_date" => "LastModifiedDate",
        "e_tag" => "ETag",
        "storage_class" => "StorageClass",
        other => other,
    }
}

/// Why a report cannot stand for a listing.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{file}, line {line}: {message}")]
    Format { file: String, line: u64, message: String },
    #[error("{file}: the key {key:?} comes after {previous:?}, out of key order")]
    OutOfOrder { file: String, key: String, previous: String },
    #[error("{file}: its MD5 is {actual}, the manifest says {expected}")]
    Checksum { file: String, expected: String, actual: String },
}

impl BucketAccess {
    /// The bucket's inventory configurations; empty where S3 offers none (or the endpoint
    /// implements no inventory).
    #[boxed]
    pub async fn inventories(&self, bucket: &str) -> Result<Vec<Inventory>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .s3()
                .list_bucket_inventory_configurations()
                .bucket(bucket)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListBucketInventoryConfigurations", e))?;
            found.extend(out.inventory_configuration_list().iter().filter_map(Inventory::from_sdk));
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// Writes an inventory configuration of `bucket` (replacing one of the same id).
    #[boxed]
    pub async fn put_inventory(&self, bucket: &str, inventory: &Inventory) -> Result<(), AwsError> {
        self.s3()
            .put_bucket_inventory_configuration()
            .bucket(bucket)
            .id(&inventory.id)
            .inventory_configuration(inventory.to_sdk()?)
            .send()
            .await
            .map_err(|e| classify("PutBucketInventoryConfiguration", e))?;
        Ok(())
    }

    /// The newest complete report of `inventory` for `source_bucket`: the latest dated folder
    /// whose `manifest.json` has its `manifest.checksum` beside it (S3 writes the checksum once
    /// the report is whole) and matches it. `None` when there is none yet.
    #[boxed]
    pub async fn latest_report(
        &self,
        source_bucket: &str,
        inventory: &Inventory,
    ) -> Result<Option<Manifest>, ReportError> {
        let base = inventory.reports_prefix(source_bucket);
        let mut dated: Vec<String> = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_folder_page(&inventory.destination_bucket, &base, after.as_ref(), 1000, false).await?;
            dated.extend(
                page.folders.iter().filter(|f| report_date(f.strip_prefix(&base).unwrap_or(f)).is_some()).cloned(),
            );
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        dated.sort();
        // A report still being written has no checksum yet: the one before it is the latest.
        for folder in dated.iter().rev().take(3) {
            let key = format!("{folder}manifest.json");
            let checksum =
                match self.get_object(&inventory.destination_bucket, &format!("{folder}manifest.checksum")).await {
                    Ok(body) => String::from_utf8_lossy(&body).trim().to_ascii_lowercase(),
                    Err(e) if e.kind == AwsErrorKind::NoSuchKey => continue,
                    Err(e) => return Err(e.into()),
                };
            let body = self.get_object(&inventory.destination_bucket, &key).await?;
            let actual = hex(&Md5::digest(&body));
            if actual != checksum {
                return Err(ReportError::Checksum { file: key, expected: checksum, actual });
            }
            return Manifest::parse(&key, &body).map(Some);
        }
        Ok(None)
    }

    /// The rows of `manifest`'s report under `prefix`, a page at a time in key order.
    #[boxed]
    pub async fn report_rows(&self, manifest: &Manifest, prefix: &str) -> Result<ReportRows, ReportError> {
        if manifest.format == ReportFormat::Orc {
            return Err(ReportError::Format {
                file: manifest.key.clone(),
                line: 0,
                message: "the report is ORC; byos reads CSV and Parquet reports".to_owned(),
            });
        }
        let columns = Columns::new(&manifest.key, &manifest.schema)?;
        // Each file's first key, to read the files in key order.
        let mut firsts = Vec::with_capacity(manifest.files.len());
        for file in &manifest.files {
            let first = match manifest.format {
                ReportFormat::Parquet => self.parquet_first_key(&manifest.destination_bucket, file).await?,
                _ => self.first_key(&manifest.destination_bucket, file, &columns).await?,
            };
            firsts.push((first, file.clone()));
        }
        firsts.sort_by(|a, b| a.0.cmp(&b.0));
        // A file holds the keys from its first to the next file's first: the files wholly
        // before or after the prefix are not read.
        let mut files = Vec::new();
        for (i, (first, file)) in firsts.iter().enumerate() {
            let Some(first) = first else { continue };
            let next_first = firsts.get(i + 1).and_then(|(f, _)| f.as_deref());
            let before = next_first.is_some_and(|n| n <= prefix && !n.starts_with(prefix));
            let after = first.as_str() > prefix && !first.starts_with(prefix);
            if !before && !after {
                files.push(file.clone());
            }
        }
        files.reverse();
        Ok(ReportRows {
            access: self.clone(),
            format: manifest.format,
            bucket: manifest.destination_bucket.clone(),
            prefix: prefix.to_owned(),
            columns,
            files,
            current: None,
            previous: None,
            carry: Vec::new(),
            done: false,
        })
    }

    /// The bytes of `range` of an object (`bytes=0-99`, or the last ones: `bytes=-8`).
    async fn ranged(&self, bucket: &str, key: &str, range: String) -> Result<Vec<u8>, AwsError> {
        let out = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(range)
            .send()
            .await
            .map_err(|e| classify("GetObject", e))?;
        Ok(out.body.collect().await.map_err(|e| body_error(&e))?.into_bytes().to_vec())
    }

    /// A Parquet file's first key: the least of its row groups' `key` statistics, read from
    /// its footer (two ranged requests). `None` for a file of no rows.
    async fn parquet_first_key(&self, bucket: &str, file: &ManifestFile) -> Result<Option<String>, ReportError> {
        let bad = |message: String| ReportError::Format { file: file.key.clone(), line: 0, message };
        let tail = self.ranged(bucket, &file.key, "bytes=-8".to_owned()).await?;
        let (Some(length), Some(b"PAR1")) = (tail.first_chunk::<4>(), tail.last_chunk::<4>()) else {
            return Err(bad("not a Parquet file".to_owned()));
        };
        let length = u32::from_le_bytes(*length) as usize;
        let footer = self.ranged(bucket, &file.key, format!("bytes=-{}", length + 8)).await?;
        let metadata = footer
            .get(..length)
            .ok_or_else(|| bad("a footer cut short".to_owned()))
            .and_then(|f| ParquetMetaDataReader::decode_metadata(f).map_err(|e| bad(e.to_string())))?;
        let columns = metadata.file_metadata().schema_descr().columns().to_vec();
        let key = columns.iter().position(|c| c.name() == "key").ok_or_else(|| bad("no key column".to_owned()))?;
        let mut first: Option<Vec<u8>> = None;
        for group in metadata.row_groups().iter().filter(|g| g.num_rows() > 0) {
            let least = group.column(key).statistics().and_then(|s| s.min_bytes_opt()).map(<[u8]>::to_vec);
            let least = least.ok_or_else(|| bad("a row group without statistics of its keys".to_owned()))?;
            if first.as_ref().is_none_or(|f| least < *f) {
                first = Some(least);
            }
        }
        first.map(|k| String::from_utf8(k).map_err(|_| bad("a key that is not UTF-8".to_owned()))).transpose()
    }

    async fn first_key(
        &self,
        bucket: &str,
        file: &ManifestFile,
        columns: &Columns,
    ) -> Result<Option<String>, ReportError> {
        let body = self.ranged(bucket, &file.key, format!("bytes=0-{}", PEEK_BYTES - 1)).await?;
        let mut decoder = MultiGzDecoder::new(Vec::new());
        // A cut-off stream decodes as far as it goes.
        let _ = decoder.write_all(&body);
        let _ = decoder.flush();
        let text = decoder.get_ref();
        let Some(end) = text.iter().position(|b| *b == b'\n') else {
            if (body.len() as u64) < PEEK_BYTES && !text.is_empty() {
                return columns.parse(&file.key, 1, text).map(|row| Some(row.key));
            }
            return if text.is_empty() {
                Ok(None)
            } else {
                Err(ReportError::Format {
                    file: file.key.clone(),
                    line: 1,
                    message: "a row longer than 64 KiB".to_owned(),
                })
            };
        };
        columns.parse(&file.key, 1, &text[..end]).map(|row| Some(row.key))
    }
}

fn body_error(e: &dyn std::fmt::Display) -> AwsError {
    AwsError::new(AwsErrorKind::Unavailable, "GetObject", format!("reading the body: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `2016-11-06T21-32Z/` (a report's folder name, with or without its slash) as a date.
fn report_date(folder: &str) -> Option<OffsetDateTime> {
    let name = folder.trim_end_matches('/');
    let (date, time) = name.split_once('T')?;
    let time = time.strip_suffix('Z')?.replacen('-', ":", 1);
    OffsetDateTime::parse(&format!("{date}T{time}:00Z"), &Rfc3339).ok()
}

/// Where the columns a listing needs are in a row.
#[derive(Debug, Clone)]
struct Columns {
    count: usize,
    key: usize,
    version_id: Option<usize>,
    is_latest: Option<usize>,
    delete_marker: Option<usize>,
    size: usize,
    last_modified: usize,
    etag: usize,
    storage_class: usize,
}

impl Columns {
    fn new(file: &str, schema: &[String]) -> Result<Columns, ReportError> {
        let find = |name: &str| schema.iter().position(|c| c == name);
        let need = |name: &str| {
            find(name).ok_or_else(|| ReportError::Format {
                file: file.to_owned(),
                line: 0,
                message: format!("the report has no {name} column"),
            })
        };
        Ok(Columns {
            count: schema.len(),
            key: need("Key")?,
            version_id: find("VersionId"),
            is_latest: find("IsLatest"),
            delete_marker: find("IsDeleteMarker"),
            size: need("Size")?,
            last_modified: need("LastModifiedDate")?,
            etag: need("ETag")?,
            storage_class: need("StorageClass")?,
        })
    }

    /// One CSV row as a listing's entry.
    fn parse(&self, file: &str, line: u64, row: &[u8]) -> Result<ListedVersion, ReportError> {
        let mut reader = rows(row);
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => self.entry(file, line, &record),
            Ok(false) => self.entry(file, line, &csv::ByteRecord::new()),
            Err(e) => Err(ReportError::Format { file: file.to_owned(), line, message: e.to_string() }),
        }
    }

    /// One CSV record as a listing's entry.
    fn entry(&self, file: &str, line: u64, record: &csv::ByteRecord) -> Result<ListedVersion, ReportError> {
        let bad = |message: String| ReportError::Format { file: file.to_owned(), line, message };
        if record.len() != self.count {
            return Err(bad(format!("expected {} fields, found {}", self.count, record.len())));
        }
        let text = |i: usize| std::str::from_utf8(&record[i]).map_err(|_| bad(format!("field {} is not UTF-8", i + 1)));
        let key = crate::listing::decode_key(text(self.key)?).map_err(|e| bad(e.message))?;
        let flag = |i: Option<usize>| -> Result<bool, ReportError> {
            Ok(i.map(text).transpose()?.is_some_and(|v| v.eq_ignore_ascii_case("true")))
        };
        let delete_marker = flag(self.delete_marker)?;
        let version_id = match self.version_id {
            // A version-less report (current versions only): as ListObjectsV2 gives it.
            None => None,
            Some(i) => Some(Some(text(i)?).filter(|v| !v.is_empty()).unwrap_or("null").to_owned()),
        };
        let size = match text(self.size)? {
            "" if delete_marker => 0,
            s => s.parse().map_err(|_| bad(format!("Size {s:?} is not a number")))?,
        };
        let modified = text(self.last_modified)?;
        let last_modified_ms = OffsetDateTime::parse(modified, &Rfc3339)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
            .map_err(|_| bad(format!("LastModifiedDate {modified:?} is not a date")))?;
        Ok(ListedVersion {
            key,
            is_latest: self.is_latest.is_none() || flag(self.is_latest)?,
            version_id,
            delete_marker,
            size,
            etag: text(self.etag)?.trim_matches('"').to_owned(),
            last_modified_ms,
            storage_class: Some(text(self.storage_class)?)
                .filter(|s| !s.is_empty() && !delete_marker)
                .map(str::to_owned),
        })
    }
}

/// A CSV reader of whole rows: quoted fields, rows of any length (checked against the schema).
fn rows(text: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text)
}

/// A report's rows under a prefix, in key order, a page at a time.
pub struct ReportRows {
    access: BucketAccess,
    format: ReportFormat,
    bucket: String,
    prefix: String,
    columns: Columns,
    /// The files still to read, the next one last.
    files: Vec<ManifestFile>,
    current: Option<OpenFile>,
    /// The last key read.
    previous: Option<String>,
    /// The rows of the last key read, for the next page.
    carry: Vec<ListedVersion>,
    done: bool,
}

impl std::fmt::Debug for ReportRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportRows")
            .field("format", &self.format)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("files_left", &self.files.len())
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

/// The data file being read.
enum OpenFile {
    /// Streamed: decompressed and parsed as its chunks come.
    Csv(Box<CsvFile>),
    /// Downloaded whole (its footer says where its rows are), then read row by row.
    Parquet(ParquetFile),
}

struct CsvFile {
    file: ManifestFile,
    body: aws_sdk_s3::primitives::ByteStream,
    decoder: MultiGzDecoder<Vec<u8>>,
    md5: Md5,
    line: u64,
}

struct ParquetFile {
    file: ManifestFile,
    rows: RowIter<'static>,
    line: u64,
}

/// Rows of a Parquet file per [`ReportRows::read_chunk`].
const PARQUET_ROWS: usize = 1000;

/// What every row goes through: the order check, and whether it is under the prefix.
struct Order<'a> {
    previous: &'a mut Option<String>,
    prefix: &'a str,
}

impl Order<'_> {
    /// Adds `entry` to `page` if it is under the prefix; answers whether the rows went past it.
    fn take(&mut self, file: &str, entry: ListedVersion, page: &mut Vec<ListedVersion>) -> Result<bool, ReportError> {
        if let Some(previous) = self.previous.as_ref()
            && entry.key < *previous
        {
            return Err(ReportError::OutOfOrder { file: file.to_owned(), key: entry.key, previous: previous.clone() });
        }
        *self.previous = Some(entry.key.clone());
        if entry.key.starts_with(self.prefix) {
            page.push(entry);
            Ok(false)
        } else {
            Ok(entry.key.as_str() > self.prefix)
        }
    }
}

impl ReportRows {
    /// The next page of at least `min` rows (fewer at the end), newest version first within a
    /// key, with every row of its last key; `None` after the last.
    #[boxed]
    pub async fn next_page(&mut self, min: usize) -> Result<Option<Vec<ListedVersion>>, ReportError> {
        let mut page = std::mem::take(&mut self.carry);
        let mut want = min.max(1);
        loop {
            while page.len() < want && !self.done {
                self.read_chunk(&mut page).await?;
            }
            if self.done {
                break;
            }
            // The last key's versions may go on in the next chunk: they wait for the next page.
            let last = &page[page.len() - 1].key;
            let start = page.iter().rposition(|e| e.key != *last).map_or(0, |i| i + 1);
            if start > 0 {
                self.carry = page.split_off(start);
                break;
            }
            want = page.len() + 1;
        }
        if page.is_empty() {
            return Ok(None);
        }
        sort_versions(&mut page);
        Ok(Some(page))
    }

    /// Reads the next chunk of the file being read (opening the next file first if none is),
    /// adding its rows under the prefix to `page`.
    async fn read_chunk(&mut self, page: &mut Vec<ListedVersion>) -> Result<(), ReportError> {
        let Some(open) = &mut self.current else {
            let Some(file) = self.files.pop() else {
                self.done = true;
                return Ok(());
            };
            // What is borrowed across these awaits is Sync (a Parquet file's row reader is not).
            let (access, bucket) = (&self.access, self.bucket.as_str());
            self.current = Some(match self.format {
                ReportFormat::Parquet => OpenFile::Parquet(open_parquet(access, bucket, file).await?),
                _ => OpenFile::Csv(Box::new(open_csv(access, bucket, file).await?)),
            });
            return Ok(());
        };
        let mut order = Order { previous: &mut self.previous, prefix: &self.prefix };
        let (past, ended) = match open {
            OpenFile::Csv(csv) => csv.read(&self.columns, &mut order, page).await?,
            OpenFile::Parquet(parquet) => parquet.read(&self.columns, &mut order, page)?,
        };
        if ended {
            self.current = None;
        }
        if past {
            // Past the prefix: nothing more of it comes.
            (self.current, self.files, self.done) = (None, Vec::new(), true);
        }
        Ok(())
    }
}

async fn open_csv(access: &BucketAccess, bucket: &str, file: ManifestFile) -> Result<CsvFile, ReportError> {
    let out =
        access.s3().get_object().bucket(bucket).key(&file.key).send().await.map_err(|e| classify("GetObject", e))?;
    Ok(CsvFile { file, body: out.body, decoder: MultiGzDecoder::new(Vec::new()), md5: Md5::new(), line: 0 })
}

/// Downloads a Parquet file into an anonymous temporary file, checks its MD5, and opens it.
async fn open_parquet(access: &BucketAccess, bucket: &str, file: ManifestFile) -> Result<ParquetFile, ReportError> {
    let local = |e: std::io::Error| ReportError::Format {
        file: file.key.clone(),
        line: 0,
        message: format!("a temporary file: {e}"),
    };
    let mut out =
        access.s3().get_object().bucket(bucket).key(&file.key).send().await.map_err(|e| classify("GetObject", e))?;
    let mut copy = tempfile::tempfile().map_err(local)?;
    let mut md5 = Md5::new();
    while let Some(bytes) = out.body.next().await.transpose().map_err(|e| body_error(&e))? {
        md5.update(&bytes);
        copy.write_all(&bytes).map_err(local)?;
    }
    check_md5(&file, md5)?;
    let reader = SerializedFileReader::new(copy).map_err(|e| ReportError::Format {
        file: file.key.clone(),
        line: 0,
        message: e.to_string(),
    })?;
    Ok(ParquetFile { file, rows: RowIter::from_file_into(Box::new(reader)), line: 0 })
}

fn check_md5(file: &ManifestFile, md5: Md5) -> Result<(), ReportError> {
    let actual = hex(&md5.finalize());
    if !file.md5.is_empty() && !actual.eq_ignore_ascii_case(&file.md5) {
        return Err(ReportError::Checksum { file: file.key.clone(), expected: file.md5.clone(), actual });
    }
    Ok(())
}

impl CsvFile {
    /// The rows of the next chunk of the body; answers whether they went past the prefix, and
    /// whether the file ended.
    async fn read(
        &mut self,
        columns: &Columns,
        order: &mut Order<'_>,
        page: &mut Vec<ListedVersion>,
    ) -> Result<(bool, bool), ReportError> {
        let chunk = self.body.next().await.transpose().map_err(|e| body_error(&e))?;
        let corrupt = |e: std::io::Error| ReportError::Format {
            file: self.file.key.clone(),
            line: self.line,
            message: format!("gzip: {e}"),
        };
        match &chunk {
            Some(bytes) => {
                self.md5.update(bytes);
                self.decoder.write_all(bytes).map_err(corrupt)?;
            }
            None => self.decoder.try_finish().map_err(corrupt)?,
        }
        // The whole lines decoded so far (all of it at the file's end).
        let text = self.decoder.get_mut();
        let whole = match chunk {
            None => text.len(),
            Some(_) => text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1),
        };
        let lines: Vec<u8> = text.drain(..whole).collect();
        let mut reader = rows(&lines);
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    let (file, line) = (self.file.key.clone(), self.line + 1);
                    return Err(ReportError::Format { file, line, message: e.to_string() });
                }
            }
            self.line += 1;
            let entry = columns.entry(&self.file.key, self.line, &record)?;
            if order.take(&self.file.key, entry, page)? {
                return Ok((true, false));
            }
        }
        if chunk.is_none() {
            check_md5(&self.file, std::mem::take(&mut self.md5))?;
            return Ok((false, true));
        }
        Ok((false, false))
    }
}

impl ParquetFile {
    /// Up to [`PARQUET_ROWS`] rows; answers whether they went past the prefix, and whether the
    /// file ended.
    fn read(
        &mut self,
        columns: &Columns,
        order: &mut Order<'_>,
        page: &mut Vec<ListedVersion>,
    ) -> Result<(bool, bool), ReportError> {
        for _ in 0..PARQUET_ROWS {
            let Some(row) = self.rows.next() else { return Ok((false, true)) };
            self.line += 1;
            let bad = |message: String| ReportError::Format { file: self.file.key.clone(), line: self.line, message };
            let row = row.map_err(|e| bad(e.to_string()))?;
            let entry = parquet_entry(columns, &row).map_err(bad)?;
            if order.take(&self.file.key, entry, page)? {
                return Ok((true, false));
            }
        }
        Ok((false, false))
    }
}

/// One Parquet row as a listing's entry (its keys are not encoded, unlike a CSV report's).
fn parquet_entry(columns: &Columns, row: &Row) -> Result<ListedVersion, String> {
    let mut entry = ListedVersion { is_latest: true, ..ListedVersion::default() };
    let (mut key, mut version_id) = (None, None);
    for (name, field) in row.get_column_iter() {
        match (csv_name(name), field) {
            (_, Field::Null) => {}
            ("Key", Field::Str(k)) => key = Some(k.clone()),
            ("VersionId", Field::Str(v)) => version_id = Some(v.clone()).filter(|v| !v.is_empty()),
            ("IsLatest", Field::Bool(b)) => entry.is_latest = *b,
            ("IsDeleteMarker", Field::Bool(b)) => entry.delete_marker = *b,
            ("Size", Field::Long(n)) => entry.size = u64::try_from(*n).map_err(|_| format!("size {n}"))?,
            ("LastModifiedDate", Field::TimestampMillis(ms) | Field::Long(ms)) => entry.last_modified_ms = *ms,
            ("LastModifiedDate", Field::TimestampMicros(us)) => entry.last_modified_ms = us / 1000,
            ("ETag", Field::Str(etag)) => entry.etag = etag.trim_matches('"').to_owned(),
            ("StorageClass", Field::Str(class)) => entry.storage_class = Some(class.clone()),
            (
                "Key" | "VersionId" | "IsLatest" | "IsDeleteMarker" | "Size" | "LastModifiedDate" | "ETag"
                | "StorageClass",
                other,
            ) => {
                return Err(format!("column {name} holds {other}"));
            }
            _ => {}
        }
    }
    entry.key = key.ok_or("a row without a key")?;
    if columns.version_id.is_some() {
        entry.version_id = Some(version_id.unwrap_or_else(|| "null".to_owned()));
    }
    if entry.delete_marker {
        entry.storage_class = None;
    }
    Ok(entry)
}

/// Within each key, the newest version first (the latest, then by time), as listings give them.
fn sort_versions(page: &mut [ListedVersion]) {
    page.sort_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| b.is_latest.cmp(&a.is_latest))
            .then_with(|| b.last_modified_ms.cmp(&a.last_modified_ms))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass";

    fn columns() -> Columns {
        let schema: Vec<String> = SCHEMA.split(',').map(|c| c.trim().to_owned()).collect();
        Columns::new("f", &schema).unwrap()
    }

    #[test]
    fn a_row_reads_as_a_listed_version() {
        let row = br#""b","runs/a+b%2Bc%C3%A9.txt","v1","true","false","12","2026-11-30T10:00:00.000Z","0cc175b9c0f1b6a831c399e269772661","STANDARD""#;
        let entry = columns().parse("f", 1, row).unwrap();
        assert_eq!(entry.key, "runs/a b+cé.txt");
        assert_eq!(entry.version_id.as_deref(), Some("v1"));
        assert!(entry.is_latest && !entry.delete_marker);
        assert_eq!(entry.size, 12);
        assert_eq!(entry.last_modified_ms, 1_796_032_800_000);
        assert_eq!(entry.storage_class.as_deref(), Some("STANDARD"));
    }

    #[test]
    fn delete_markers_and_null_versions_read_as_listings_give_them() {
        let row = br#""b","k","","false","true","","2026-11-30T10:00:00.000Z","","""#;
        let entry = columns().parse("f", 1, row).unwrap();
        assert_eq!(entry.version_id.as_deref(), Some("null"));
        assert!(entry.delete_marker && !entry.is_latest);
        assert_eq!((entry.size, entry.storage_class), (0, None));
    }

    #[test]
    fn bad_rows_name_their_file_line_and_fault() {
        let short = columns().parse("data/1.csv.gz", 7, br#""b","k""#).unwrap_err();
        assert_eq!(short.to_string(), "data/1.csv.gz, line 7: expected 9 fields, found 2");
        let size =
            columns().parse("f", 2, br#""b","k","","true","false","x","2026-11-30T10:00:00.000Z","e","STANDARD""#);
        assert_eq!(size.unwrap_err().to_string(), "f, line 2: Size \"x\" is not a number");
    }

    #[test]
    fn manifests_are_read_and_checked() {
        let body = br#"{"sourceBucket":"src","destinationBucket":"arn:aws:s3:::dst","version":"2016-11-30",
            "creationTimestamp":"1796032800000","fileFormat":"CSV","fileSchema":"Bucket, Key, Size",
            "files":[{"key":"inv/src/all/data/a.csv.gz","size":10,"MD5checksum":"abc"}]}"#;
        let m = Manifest::parse("inv/src/all/2026-11-30T10-00Z/manifest.json", body).unwrap();
        assert_eq!((m.source_bucket.as_str(), m.destination_bucket.as_str()), ("src", "dst"));
        assert_eq!((m.created_ms, m.format), (1_796_032_800_000, ReportFormat::Csv));
        assert_eq!(m.schema, ["Bucket", "Key", "Size"]);
        assert_eq!(m.files[0].md5, "abc");
        assert!(Manifest::parse("m", b"{}").unwrap_err().to_string().starts_with("m, line 0: not a manifest"));
        let err = Columns::new("m", &m.schema).unwrap_err();
        assert_eq!(err.to_string(), "m, line 0: the report has no LastModifiedDate column");
    }

    #[test]
    fn parquet_schemas_name_their_columns_as_csv_reports_do() {
        let message = "message s3.inventory { required binary bucket (STRING); required binary key (STRING); \
            optional binary version_id (STRING); optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); \
            optional binary e_tag (UTF8); optional binary checksum_algorithm (STRING); }";
        assert_eq!(
            parquet_columns(message),
            ["Bucket", "Key", "VersionId", "LastModifiedDate", "ETag", "checksum_algorithm"]
        );
        assert!(parquet_columns("not a schema").is_empty());
    }

    #[test]
    fn report_folders_are_dated() {
        assert_eq!(report_date("2016-11-06T21-32Z/").map(|d| d.unix_timestamp()), Some(1_478_467_920));
        assert_eq!(report_date("data/"), None);
        assert_eq!(report_date("hive/"), None);
    }

    #[test]
    fn a_configuration_fits_a_prefix_only_as_a_listing_would() {
        let fit = Inventory {
            id: "byos".to_owned(),
            enabled: true,
            prefix: Some("data/".to_owned()),
            all_versions: true,
            format: ReportFormat::Csv,
            destination_bucket: "b".to_owned(),
            destination_prefix: Some("inventory".to_owned()),
            fields: REQUIRED_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            daily: true,
        };
        assert_eq!(fit.unfit_for("data/project/", true), None);
        assert_eq!(fit.reports_prefix("src"), "inventory/src/byos/");
        assert_eq!(fit.unfit_for("other/", false).unwrap(), "it covers only keys under \"data/\"");
        let current = Inventory { all_versions: false, ..fit.clone() };
        assert_eq!(current.unfit_for("data/p/", false), None);
        assert!(current.unfit_for("data/p/", true).is_some());
        let thin = Inventory { fields: vec!["Size".to_owned()], ..fit.clone() };
        assert_eq!(
            thin.unfit_for("data/p/", false).unwrap(),
            "its reports lack the fields LastModifiedDate, ETag, StorageClass"
        );
        let parquet = Inventory { format: ReportFormat::Parquet, ..fit.clone() };
        assert_eq!(parquet.unfit_for("data/p/", false), None);
        let orc = Inventory { format: ReportFormat::Orc, ..fit };
        assert!(orc.unfit_for("data/p/", false).unwrap().contains("ORC"));
    }

    #[test]
    fn versions_of_a_key_come_newest_first() {
        let v = |id: &str, latest: bool, ms: i64| ListedVersion {
            key: "k".to_owned(),
            version_id: Some(id.to_owned()),
            is_latest: latest,
            last_modified_ms: ms,
            ..ListedVersion::default()
        };
        let mut page = vec![v("old", false, 1), v("new", true, 3), v("mid", false, 2)];
        sort_versions(&mut page);
        let ids: Vec<_> = page.iter().map(|e| e.version_id.as_deref().unwrap()).collect();
        assert_eq!(ids, ["new", "mid", "old"]);
    }
}
