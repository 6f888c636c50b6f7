//! Hand-made S3 Inventory reports: S3 writes reports only on its own schedule (and moto never
//! does), so tests and benchmarks write a report's gzip CSV files, its `manifest.json` and its
//! `manifest.checksum` where S3 would.

use std::io::Write;

use byos_aws::{BucketAccess, Inventory, REQUIRED_FIELDS};
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;

/// One row of a report: a key, or one version of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub key: String,
    /// `None` for the null version (or in a report of current versions).
    pub version_id: Option<String>,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

impl ReportRow {
    /// The current (null) version of `key`.
    pub fn object(key: &str, size: u64, etag: &str, last_modified_ms: i64) -> ReportRow {
        ReportRow {
            key: key.to_owned(),
            version_id: None,
            is_latest: true,
            delete_marker: false,
            size,
            etag: etag.to_owned(),
            last_modified_ms,
        }
    }
}

/// The columns of the reports written here: S3's order, with the version columns when the
/// inventory lists every version.
fn schema(inventory: &Inventory) -> Vec<&'static str> {
    let mut columns = vec!["Bucket", "Key"];
    if inventory.all_versions {
        columns.extend(["VersionId", "IsLatest", "IsDeleteMarker"]);
    }
    columns.extend(REQUIRED_FIELDS);
    columns
}

fn csv_row(out: &mut Vec<u8>, bucket: &str, inventory: &Inventory, row: &ReportRow) {
    let modified = OffsetDateTime::from_unix_timestamp_nanos(i128::from(row.last_modified_ms) * 1_000_000)
        .expect("a time in range")
        .format(&format("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"))
        .expect("a time formats");
    let key: String = form_urlencoded::byte_serialize(row.key.as_bytes()).collect();
    let mut fields = vec![bucket.to_owned(), key];
    if inventory.all_versions {
        fields.push(row.version_id.clone().unwrap_or_default());
        fields.push(row.is_latest.to_string());
        fields.push(row.delete_marker.to_string());
    }
    if row.delete_marker {
        fields.extend([String::new(), modified, String::new(), String::new()]);
    } else {
        fields.extend([row.size.to_string(), modified, row.etag.clone(), "STANDARD".to_owned()]);
    }
    let quoted: Vec<String> = fields.iter().map(|f| format!("\"{}\"", f.replace('"', "\"\""))).collect();
    out.extend_from_slice(quoted.join(",").as_bytes());
    out.push(b'\n');
}

fn format(description: &str) -> Vec<BorrowedFormatItem<'_>> {
    time::format_description::parse_borrowed::<2>(description).expect("a valid format description")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a CSV report of `source_bucket` for `inventory` as of `created_ms`, one data file per
/// item of `files` (in the order given, which the manifest keeps), and answers the manifest's
/// key. The rows are written as given: in key order for a report as S3 writes them.
pub async fn put_csv_report(
    access: &BucketAccess,
    source_bucket: &str,
    inventory: &Inventory,
    created_ms: i64,
    files: &[Vec<ReportRow>],
) -> String {
    let base = inventory.reports_prefix(source_bucket);
    let created =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000).expect("a time in range");
    let folder = created.format(&format("[year]-[month]-[day]T[hour]-[minute]Z")).expect("a time formats");
    let mut listed = Vec::new();
    for (i, rows) in files.iter().enumerate() {
        let mut text = Vec::new();
        for row in rows {
            csv_row(&mut text, source_bucket, inventory, row);
        }
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&text).expect("gzip into memory");
        let body = gz.finish().expect("gzip into memory");
        let key = format!("{base}data/{folder}-{i}.csv.gz");
        let md5 = hex(&Md5::digest(&body));
        listed.push(serde_json::json!({"key": key, "size": body.len(), "MD5checksum": md5}));
        access.put_object(&inventory.destination_bucket, &key, body, None).await.expect("putting a report file");
    }
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{}", inventory.destination_bucket),
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": "CSV",
        "fileSchema": schema(inventory).join(", "),
        "files": listed,
    })
    .to_string();
    let checksum = hex(&Md5::digest(manifest.as_bytes()));
    let key = format!("{base}{folder}/manifest.json");
    access
        .put_object(&inventory.destination_bucket, &key, manifest.into_bytes(), None)
        .await
        .expect("putting a manifest");
    let checksum_key = format!("{base}{folder}/manifest.checksum");
    access
        .put_object(&inventory.destination_bucket, &checksum_key, checksum.into_bytes(), None)
        .await
        .expect("putting a checksum");
    key
}

/// The inventory `byos aws bootstrap --inventory` sets up on `bucket`.
pub fn csv_inventory(bucket: &str, prefix: Option<&str>, all_versions: bool) -> Inventory {
    Inventory::byos(bucket, prefix, all_versions)
}
