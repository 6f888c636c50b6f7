//! Hand-made S3 Inventory reports: S3 writes reports only on its own schedule (and moto never
//! does), so tests and benchmarks write a report's data files (gzip CSV, or Parquet with Snappy
//! pages), its `manifest.json` and its `manifest.checksum` where S3 would.

use std::io::Write;

use std::sync::Arc;

use byos_aws::{BucketAccess, Inventory, REQUIRED_FIELDS, ReportFormat};
use flate2::Compression;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
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

/// The Parquet schema of S3's reports, with the version columns when the inventory lists every
/// version.
fn parquet_schema(inventory: &Inventory) -> String {
    let versions = if inventory.all_versions {
        "optional binary version_id (STRING); optional boolean is_latest; optional boolean is_delete_marker; "
    } else {
        ""
    };
    format!(
        "message s3.inventory {{ required binary bucket (STRING); required binary key (STRING); {versions}\
         optional int64 size; optional int64 last_modified_date (TIMESTAMP(MILLIS,true)); \
         optional binary e_tag (STRING); optional binary storage_class (STRING); }}"
    )
}

/// One column's values and definition levels (0 for a null).
enum Column {
    Bytes(Vec<ByteArray>, Vec<i16>),
    Bools(Vec<bool>, Vec<i16>),
    Longs(Vec<i64>, Vec<i16>),
}

fn bytes(values: impl Iterator<Item = Option<String>>) -> Column {
    let (mut data, mut levels) = (Vec::new(), Vec::new());
    for value in values {
        levels.push(i16::from(value.is_some()));
        data.extend(value.map(|v| ByteArray::from(v.into_bytes())));
    }
    Column::Bytes(data, levels)
}

fn parquet_file(bucket: &str, inventory: &Inventory, rows: &[ReportRow]) -> Vec<u8> {
    let schema = Arc::new(parse_message_type(&parquet_schema(inventory)).expect("a valid schema"));
    let properties = Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build());
    let mut columns =
        vec![bytes(rows.iter().map(|_| Some(bucket.to_owned()))), bytes(rows.iter().map(|r| Some(r.key.clone())))];
    if inventory.all_versions {
        columns.push(bytes(rows.iter().map(|r| r.version_id.clone())));
        columns.push(Column::Bools(rows.iter().map(|r| r.is_latest).collect(), vec![1; rows.len()]));
        columns.push(Column::Bools(rows.iter().map(|r| r.delete_marker).collect(), vec![1; rows.len()]));
    }
    let objects = || rows.iter().filter(|r| !r.delete_marker);
    let present = |r: &ReportRow| i16::from(!r.delete_marker);
    columns.push(Column::Longs(objects().map(|r| r.size as i64).collect(), rows.iter().map(present).collect()));
    columns.push(Column::Longs(rows.iter().map(|r| r.last_modified_ms).collect(), vec![1; rows.len()]));
    columns.push(bytes(rows.iter().map(|r| (!r.delete_marker).then(|| r.etag.clone()))));
    columns.push(bytes(rows.iter().map(|r| (!r.delete_marker).then(|| "STANDARD".to_owned()))));
    let mut out = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut out, schema, properties).expect("a Parquet writer");
    let mut group = writer.next_row_group().expect("a row group");
    for column in &columns {
        let mut writer = group.next_column().expect("the next column").expect("a column of the schema");
        let written = match (writer.untyped(), column) {
            (ColumnWriter::ByteArrayColumnWriter(w), Column::Bytes(values, levels)) => {
                w.write_batch(values, Some(levels), None)
            }
            (ColumnWriter::BoolColumnWriter(w), Column::Bools(values, levels)) => {
                w.write_batch(values, Some(levels), None)
            }
            (ColumnWriter::Int64ColumnWriter(w), Column::Longs(values, levels)) => {
                w.write_batch(values, Some(levels), None)
            }
            _ => panic!("a column of another type than the schema's"),
        };
        written.expect("writing a column");
        writer.close().expect("closing a column");
    }
    group.close().expect("closing the row group");
    writer.close().expect("closing the file");
    out
}

/// Writes a report of `source_bucket` for `inventory` (in its format, CSV or Parquet) as of
/// `created_ms`, one data file per item of `files` (in the order given, which the manifest
/// keeps), and answers the manifest's key. The rows are written as given: in key order for a
/// report as S3 writes them.
pub async fn put_report(
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
    let parquet = inventory.format == ReportFormat::Parquet;
    for (i, rows) in files.iter().enumerate() {
        let (body, key) = if parquet {
            (parquet_file(source_bucket, inventory, rows), format!("{base}data/{folder}-{i}.parquet"))
        } else {
            let mut text = Vec::new();
            for row in rows {
                csv_row(&mut text, source_bucket, inventory, row);
            }
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(&text).expect("gzip into memory");
            (gz.finish().expect("gzip into memory"), format!("{base}data/{folder}-{i}.csv.gz"))
        };
        let md5 = hex(&Md5::digest(&body));
        listed.push(serde_json::json!({"key": key, "size": body.len(), "MD5checksum": md5}));
        access.put_object(&inventory.destination_bucket, &key, body, None).await.expect("putting a report file");
    }
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{}", inventory.destination_bucket),
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": if parquet { "Parquet" } else { "CSV" },
        "fileSchema": if parquet { parquet_schema(inventory) } else { schema(inventory).join(", ") },
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
