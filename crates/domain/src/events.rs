//! S3 event notifications as the sync engine reads them: the SQS message body, its records,
//! form-url-decoded keys and the per-key `sequencer` order.
//!
//! [`parse_message`] takes one SQS message body as S3 sends it, either straight or wrapped in an
//! SNS notification (S3 -> SNS -> SQS fan-out), and gives a [`Message`]: the `s3:TestEvent` S3
//! sends on every configuration write, or typed [`S3Record`]s. The wire JSON is read through
//! private serde structs, so fields AWS adds later are tolerated, while a missing required field,
//! a wrong type or an event version of another major is an [`EventError`]. One bad record fails
//! the whole message: the caller dead-letters it rather than half-applying it.
//!
//! moto, the local peer, sends no `versionId` and no `sequencer`, writes its `eventTime` without a
//! zone, and encodes `/` in keys as `%2F`; all of that parses here.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::dates::days_from_civil;
use serde::Deserialize;
use serde_json::Value;

/// Why a message or one of its records was refused. Errors about a record come wrapped in
/// [`EventError::InRecord`], which names the record's index in `Records`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    #[error("the message is not json: {0}")]
    NotJson(String),
    #[error("the sns notification's message is not json: {0}")]
    SnsMessageNotJson(String),
    /// Valid JSON of some other shape: neither records, nor a test event, nor SNS carrying one.
    #[error("the message is not an s3 event: {0}")]
    NotAnEvent(&'static str),
    /// AWS never sends an empty `Records` array, so one means the message was not made by S3.
    #[error("the message has an empty records array")]
    EmptyMessage,
    #[error("record {index}: {error}")]
    InRecord { index: usize, error: Box<EventError> },
    /// A field has the wrong JSON type; the text is serde's.
    #[error("the record does not have the s3 event shape: {0}")]
    BadRecord(String),
    #[error("the record has no {0}")]
    MissingField(&'static str),
    /// S3 raises the major version only for changes that are not backward compatible.
    #[error("event version {0:?} is not supported: only major version 2 is")]
    UnsupportedVersion(String),
    #[error("event source {0:?} is not aws:s3")]
    NotFromS3(String),
    #[error("key {key:?} does not decode: {reason}")]
    BadKey { key: String, reason: &'static str },
    #[error("sequencer {sequencer:?} is not valid: {reason}")]
    BadSequencer { sequencer: String, reason: &'static str },
}

/// The `sequencer` of an S3 event: a hex string that orders events for the same key (a greater
/// one is later). Sequencers of different keys are not comparable in meaning, only in type.
///
/// AWS's rule is to right-pad the shorter with zeros and compare the strings, so values that
/// differ only in trailing zeros are equal here: equality, hashing and order all look at the
/// upper-cased text without its trailing zeros. [`Sequencer::as_str`] keeps the zeros.
#[derive(Clone)]
pub struct Sequencer(String);

impl Sequencer {
    /// Accepts hex digits in either case; keeps them in upper case, as S3 writes them.
    pub fn parse(s: &str) -> Result<Sequencer, EventError> {
        let bad = |reason| EventError::BadSequencer { sequencer: s.to_owned(), reason };
        if s.is_empty() {
            return Err(bad("it is empty"));
        }
        if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("it has characters other than hex digits"));
        }
        Ok(Sequencer(s.to_ascii_uppercase()))
    }

    /// The sequencer in upper case, trailing zeros included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What comparisons look at: comparing these without padding gives the same answer as
    /// padding both with zeros, because '0' is the smallest hex digit.
    fn significant(&self) -> &str {
        self.0.trim_end_matches('0')
    }
}

impl PartialEq for Sequencer {
    fn eq(&self, other: &Sequencer) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for Sequencer {}

impl Hash for Sequencer {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl Ord for Sequencer {
    fn cmp(&self, other: &Sequencer) -> Ordering {
        self.significant().cmp(other.significant())
    }
}

impl PartialOrd for Sequencer {
    fn partial_cmp(&self, other: &Sequencer) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Sequencer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The `eventName` of a record, as S3 writes it there: without the `s3:` prefix that
/// notification configurations use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventName {
    ObjectCreatedPut,
    ObjectCreatedPost,
    ObjectCreatedCopy,
    ObjectCreatedCompleteMultipartUpload,
    ObjectRemovedDelete,
    ObjectRemovedDeleteMarkerCreated,
    ObjectRestorePost,
    ObjectRestoreCompleted,
    ObjectRestoreDelete,
    LifecycleExpirationDelete,
    LifecycleExpirationDeleteMarkerCreated,
    LifecycleTransition,
    IntelligentTiering,
    ObjectTaggingPut,
    ObjectTaggingDelete,
    ObjectAclPut,
    /// Any other name (`Replication:*`, `ReducedRedundancyLostObject`, names AWS adds later),
    /// kept without the `s3:` prefix.
    Other(String),
}

/// What an event means for the catalog, whatever its exact name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A new object, or a new version of one, exists at the key.
    Created,
    /// An object or one version of it is gone, by a request or by lifecycle expiration.
    Removed,
    /// A delete marker became the current version, by a request or by lifecycle expiration.
    DeleteMarkerCreated,
    /// A restore from an archive storage class was requested (`ObjectRestore:Post`).
    RestoreStarted,
    /// The restored copy is readable (`ObjectRestore:Completed`).
    RestoreCompleted,
    /// The restored copy has expired and is archived again (`ObjectRestore:Delete`).
    RestoreExpired,
    /// The storage class or Intelligent-Tiering access tier changed.
    Transition,
    /// Nothing the catalog keeps changed: tags, ACLs, replication status, unknown names.
    Ignored,
}

impl EventName {
    const KNOWN: [EventName; 16] = [
        EventName::ObjectCreatedPut,
        EventName::ObjectCreatedPost,
        EventName::ObjectCreatedCopy,
        EventName::ObjectCreatedCompleteMultipartUpload,
        EventName::ObjectRemovedDelete,
        EventName::ObjectRemovedDeleteMarkerCreated,
        EventName::ObjectRestorePost,
        EventName::ObjectRestoreCompleted,
        EventName::ObjectRestoreDelete,
        EventName::LifecycleExpirationDelete,
        EventName::LifecycleExpirationDeleteMarkerCreated,
        EventName::LifecycleTransition,
        EventName::IntelligentTiering,
        EventName::ObjectTaggingPut,
        EventName::ObjectTaggingDelete,
        EventName::ObjectAclPut,
    ];

    /// Never fails: a name this code does not know becomes [`EventName::Other`], so a new event
    /// type from AWS is skipped rather than dead-lettered. The `s3:` prefix is optional.
    pub fn parse(s: &str) -> EventName {
        let name = s.strip_prefix("s3:").unwrap_or(s);
        EventName::KNOWN
            .into_iter()
            .find(|known| known.as_str() == name)
            .unwrap_or_else(|| EventName::Other(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            EventName::ObjectCreatedPut => "ObjectCreated:Put",
            EventName::ObjectCreatedPost => "ObjectCreated:Post",
            EventName::ObjectCreatedCopy => "ObjectCreated:Copy",
            EventName::ObjectCreatedCompleteMultipartUpload => "ObjectCreated:CompleteMultipartUpload",
            EventName::ObjectRemovedDelete => "ObjectRemoved:Delete",
            EventName::ObjectRemovedDeleteMarkerCreated => "ObjectRemoved:DeleteMarkerCreated",
            EventName::ObjectRestorePost => "ObjectRestore:Post",
            EventName::ObjectRestoreCompleted => "ObjectRestore:Completed",
            EventName::ObjectRestoreDelete => "ObjectRestore:Delete",
            EventName::LifecycleExpirationDelete => "LifecycleExpiration:Delete",
            EventName::LifecycleExpirationDeleteMarkerCreated => "LifecycleExpiration:DeleteMarkerCreated",
            EventName::LifecycleTransition => "LifecycleTransition",
            EventName::IntelligentTiering => "IntelligentTiering",
            EventName::ObjectTaggingPut => "ObjectTagging:Put",
            EventName::ObjectTaggingDelete => "ObjectTagging:Delete",
            EventName::ObjectAclPut => "ObjectAcl:Put",
            EventName::Other(name) => name,
        }
    }

    /// An unknown `ObjectCreated:*` name still counts as [`EventKind::Created`]: every event of
    /// that family means the key now has a new object, and the platform subscribes to the whole
    /// family. Other unknown names are [`EventKind::Ignored`].
    pub fn kind(&self) -> EventKind {
        match self {
            EventName::ObjectCreatedPut
            | EventName::ObjectCreatedPost
            | EventName::ObjectCreatedCopy
            | EventName::ObjectCreatedCompleteMultipartUpload => EventKind::Created,
            EventName::ObjectRemovedDelete | EventName::LifecycleExpirationDelete => EventKind::Removed,
            EventName::ObjectRemovedDeleteMarkerCreated | EventName::LifecycleExpirationDeleteMarkerCreated => {
                EventKind::DeleteMarkerCreated
            }
            EventName::ObjectRestorePost => EventKind::RestoreStarted,
            EventName::ObjectRestoreCompleted => EventKind::RestoreCompleted,
            EventName::ObjectRestoreDelete => EventKind::RestoreExpired,
            EventName::LifecycleTransition | EventName::IntelligentTiering => EventKind::Transition,
            EventName::Other(name) if name.starts_with("ObjectCreated:") => EventKind::Created,
            EventName::ObjectTaggingPut | EventName::ObjectTaggingDelete | EventName::ObjectAclPut => {
                EventKind::Ignored
            }
            EventName::Other(_) => EventKind::Ignored,
        }
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `glacierEventData.restoreEventData`, sent with `ObjectRestore:Completed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreData {
    /// When the restored copy expires, as S3 writes it (RFC 3339).
    pub lifecycle_restoration_expiry_time: Option<String>,
    /// The archive storage class the object was restored from, such as `GLACIER`.
    pub lifecycle_restore_storage_class: Option<String>,
}

/// One record of an S3 event message, checked and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Record {
    /// `2.x`; the major version is checked, any minor version is accepted.
    pub event_version: String,
    /// As sent; see [`S3Record::event_time_millis`].
    pub event_time: String,
    pub aws_region: String,
    pub event_name: EventName,
    pub bucket: String,
    /// The key decoded from its form-url encoding.
    pub key: String,
    /// Absent for deletions.
    pub size: Option<u64>,
    /// Without surrounding quotes, if any were sent.
    pub etag: Option<String>,
    /// Kept as sent, `"null"` included: that is S3's id of the version written while
    /// versioning was off or suspended, and it names a real, deletable version.
    pub version_id: Option<String>,
    /// Always sent by AWS, never by moto.
    pub sequencer: Option<Sequencer>,
    pub configuration_id: Option<String>,
    pub restore: Option<RestoreData>,
}

impl S3Record {
    pub fn kind(&self) -> EventKind {
        self.event_name.kind()
    }

    /// The event time in milliseconds since the Unix epoch, or `None` when it is not an RFC 3339
    /// date-time. A time without a zone (moto's) is read as UTC. Precision beyond milliseconds is
    /// dropped. The time orders nothing: that is the sequencer's job.
    pub fn event_time_millis(&self) -> Option<i64> {
        rfc3339_millis(&self.event_time)
    }
}

/// One SQS message body, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// S3 sends this when a notification configuration is written; it carries no object.
    TestEvent { bucket: Option<String> },
    /// Never empty.
    Records(Vec<S3Record>),
}

/// Parses one SQS message body: an S3 event message or test event, bare or inside an SNS
/// notification's `Message`.
pub fn parse_message(body: &str) -> Result<Message, EventError> {
    if let Some(records) = parse_bare_records(body) {
        return records.map(Message::Records);
    }
    let value: Value = serde_json::from_str(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let mut value = unwrap_sns(value)?;
    let Some(object) = value.as_object_mut() else {
        return Err(EventError::NotAnEvent("it is not a json object"));
    };
    if let Some(records) = object.remove("Records") {
        let Value::Array(records) = records else {
            return Err(EventError::NotAnEvent("its records are not an array"));
        };
        if records.is_empty() {
            return Err(EventError::EmptyMessage);
        }
        let records = records
            .into_iter()
            .enumerate()
            .map(|(index, record)| {
                S3Record::from_json(record).map_err(|error| EventError::InRecord { index, error: Box::new(error) })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Message::Records(records));
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        let bucket = object.get("Bucket").and_then(Value::as_str).map(str::to_owned);
        return Ok(Message::TestEvent { bucket });
    }
    Err(EventError::NotAnEvent("it has neither records nor an s3:TestEvent"))
}

/// The common case, read straight into the wire shape without building a `Value` first: a bare
/// S3 event message (no SNS `Type`) whose records all fit [`WireRecord`]. `None` sends the
/// message the long way, which names what is wrong with it.
fn parse_bare_records(body: &str) -> Option<Result<Vec<S3Record>, EventError>> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(rename = "Type")]
        kind: Option<serde::de::IgnoredAny>,
        #[serde(rename = "Records", borrow)]
        records: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(body).ok()?;
    let records = envelope.records.filter(|_| envelope.kind.is_none())?;
    if records.is_empty() {
        return Some(Err(EventError::EmptyMessage));
    }
    let mut parsed = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        let wire: WireRecord = serde_json::from_str(record.get()).ok()?;
        match S3Record::from_wire(wire) {
            Ok(record) => parsed.push(record),
            Err(error) => return Some(Err(EventError::InRecord { index, error: Box::new(error) })),
        }
    }
    Some(Ok(parsed))
}

/// S3 -> SNS -> SQS delivers the S3 message as a JSON string in the notification's `Message`
/// (unless the subscription uses raw delivery, which gives the bare message).
fn unwrap_sns(value: Value) -> Result<Value, EventError> {
    if value.get("Type").and_then(Value::as_str) != Some("Notification") {
        return Ok(value);
    }
    let Some(inner) = value.get("Message").and_then(Value::as_str) else {
        return Err(EventError::NotAnEvent("the sns notification has no message string"));
    };
    serde_json::from_str(inner).map_err(|e| EventError::SnsMessageNotJson(e.to_string()))
}

// The wire shape. Fields the code requires are `Option`s anyway, so that a missing one is
// reported by name as `MissingField` rather than in serde's words.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    event_version: Option<String>,
    event_source: Option<String>,
    aws_region: Option<String>,
    event_time: Option<String>,
    event_name: Option<String>,
    s3: Option<WireS3>,
    glacier_event_data: Option<WireGlacier>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireS3 {
    configuration_id: Option<String>,
    bucket: Option<WireBucket>,
    object: Option<WireObject>,
}

#[derive(Deserialize)]
struct WireBucket {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireObject {
    key: Option<String>,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireGlacier {
    restore_event_data: Option<WireRestore>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRestore {
    lifecycle_restoration_expiry_time: Option<String>,
    lifecycle_restore_storage_class: Option<String>,
}

impl S3Record {
    fn from_json(value: Value) -> Result<S3Record, EventError> {
        let wire: WireRecord = serde_json::from_value(value).map_err(|e| EventError::BadRecord(e.to_string()))?;
        S3Record::from_wire(wire)
    }

    fn from_wire(wire: WireRecord) -> Result<S3Record, EventError> {
        let required =
            |field: Option<String>, name| field.filter(|s| !s.is_empty()).ok_or(EventError::MissingField(name));

        let event_version = required(wire.event_version, "eventVersion")?;
        if !is_version_2(&event_version) {
            return Err(EventError::UnsupportedVersion(event_version));
        }
        if let Some(source) = wire.event_source.filter(|s| s != "aws:s3") {
            return Err(EventError::NotFromS3(source));
        }
        let s3 = wire.s3.ok_or(EventError::MissingField("s3"))?;
        let bucket = required(s3.bucket.and_then(|b| b.name), "s3.bucket.name")?;
        let object = s3.object.ok_or(EventError::MissingField("s3.object"))?;
        let encoded_key = object.key.ok_or(EventError::MissingField("s3.object.key"))?;
        let key = decode_key(&encoded_key).map_err(|reason| EventError::BadKey { key: encoded_key, reason })?;
        let restore = wire.glacier_event_data.and_then(|g| g.restore_event_data).map(|r| RestoreData {
            lifecycle_restoration_expiry_time: r.lifecycle_restoration_expiry_time,
            lifecycle_restore_storage_class: r.lifecycle_restore_storage_class,
        });
        Ok(S3Record {
            event_version,
            event_time: required(wire.event_time, "eventTime")?,
            aws_region: required(wire.aws_region, "awsRegion")?,
            event_name: EventName::parse(&required(wire.event_name, "eventName")?),
            bucket,
            key,
            size: object.size,
            etag: object.e_tag.map(|t| t.trim_matches('"').to_owned()).filter(|t| !t.is_empty()),
            version_id: object.version_id.filter(|v| !v.is_empty()),
            sequencer: object.sequencer.as_deref().map(Sequencer::parse).transpose()?,
            configuration_id: s3.configuration_id,
            restore,
        })
    }
}

/// `2.<minor>`, both parts decimal digits.
fn is_version_2(version: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    version.split_once('.').is_some_and(|(major, minor)| digits(major) && digits(minor) && major.parse() == Ok(2u32))
}

/// Form-url decoding: `+` is a space and `%XX` a byte. Written here rather than taken from
/// `form_urlencoded::parse`, which splits on `&` and `=` and replaces invalid UTF-8 silently;
/// a key that does not decode cleanly is refused instead.
fn decode_key(encoded: &str) -> Result<String, &'static str> {
    if encoded.is_empty() {
        return Err("it is empty");
    }
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => match (input.next().and_then(hex_value), input.next().and_then(hex_value)) {
                (Some(high), Some(low)) => bytes.push((high << 4) | low),
                _ => return Err("a '%' is not followed by two hex digits"),
            },
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| "the decoded bytes are not utf-8")
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction][Z|±HH:MM]`, strict about digits and ranges (no leap
/// seconds); a missing zone means UTC.
fn rfc3339_millis(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0i64, |n, d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    };
    let separator = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    if !(separator(4, b"-") && separator(7, b"-") && separator(10, b"Tt") && separator(13, b":") && separator(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = b.get(19..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let len = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if len == 0 {
            return None;
        }
        millis = fraction[..len].iter().chain(b"00").take(3).fold(0, |m, d| m * 10 + i64::from(d - b'0'));
        rest = &fraction[len..];
    }
    let offset_minutes = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let at = b.len() - rest.len();
            let (hours, minutes) = (number(at + 1, 2)?, number(at + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 60 + minutes;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use expect_test::{Expect, expect};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    /// The example of the S3 user guide's "Event message structure", one record.
    fn aws_record() -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-west-2",
            "eventTime": "1970-01-01T00:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": { "principalId": "AIDAJDPLRKLG7UEXAMPLE" },
            "requestParameters": { "sourceIPAddress": "127.0.0.1" },
            "responseElements": {
                "x-amz-request-id": "C3D13FE58DE4C810",
                "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "testConfigRule",
                "bucket": {
                    "name": "mybucket",
                    "ownerIdentity": { "principalId": "A3NL1KOZZKExample" },
                    "arn": "arn:aws:s3:::mybucket"
                },
                "object": {
                    "key": "HappyFace.jpg",
                    "size": 1024,
                    "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                    "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                    "sequencer": "0055AED6DCD90281E5"
                }
            }
        })
    }

    /// What moto 5 sends: no versionId, no sequencer, a zoneless time, keys through `quote_plus`.
    fn moto_record(event_name: &str, key: &str) -> Value {
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2025-03-04T10:11:12.345678",
            "eventName": event_name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "gds:objectcreated",
                "bucket": { "name": "byos-test", "arn": "arn:aws:s3:::byos-test" },
                "object": { "key": key, "size": 5, "eTag": "\"5d41402abc4b2a76b9719d911017c592\"" }
            }
        })
    }

    fn with(mut record: Value, path: &[&str], value: Value) -> Value {
        let mut at = &mut record;
        for field in path {
            at = &mut at[*field];
        }
        *at = value;
        record
    }

    fn without(mut record: Value, path: &[&str]) -> Value {
        let (last, parents) = path.split_last().unwrap_or_else(|| panic!("empty path"));
        let mut at = &mut record;
        for field in parents {
            at = &mut at[*field];
        }
        at.as_object_mut().unwrap_or_else(|| panic!("{parents:?} is not an object")).remove(*last);
        record
    }

    fn records(records: &[Value]) -> String {
        json!({ "Records": records }).to_string()
    }

    fn sns(message: &str) -> String {
        json!({
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:byos-events",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2025-03-04T10:11:12.345Z",
            "SignatureVersion": "1"
        })
        .to_string()
    }

    /// One line per message: the error, or the records in short.
    fn check(cases: &[(&str, String)], expect: Expect) {
        let mut actual = String::new();
        for (label, body) in cases {
            let line = match parse_message(body) {
                Err(e) => format!("error: {e}"),
                Ok(Message::TestEvent { bucket }) => format!("test event for {bucket:?}"),
                Ok(Message::Records(records)) => records.iter().map(summary).collect::<Vec<_>>().join(" | "),
            };
            actual.push_str(&format!("{label}: {line}\n"));
        }
        expect.assert_eq(&actual);
    }

    fn summary(r: &S3Record) -> String {
        let mut line = format!("{} {:?} {}/{:?}", r.event_name, r.kind(), r.bucket, r.key);
        let fields = [
            ("size", r.size.map(|s| s.to_string())),
            ("etag", r.etag.clone()),
            ("version", r.version_id.clone()),
            ("sequencer", r.sequencer.as_ref().map(Sequencer::to_string)),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                line.push_str(&format!(" {name}={value}"));
            }
        }
        if let Some(restore) = &r.restore {
            line.push_str(&format!(" {restore:?}"));
        }
        line
    }

    #[test]
    fn aws_documented_example() {
        let message = parse_message(&records(&[aws_record()]));
        expect![[r#"
            Ok(
                Records(
                    [
                        S3Record {
                            event_version: "2.1",
                            event_time: "1970-01-01T00:00:00.000Z",
                            aws_region: "us-west-2",
                            event_name: ObjectCreatedPut,
                            bucket: "mybucket",
                            key: "HappyFace.jpg",
                            size: Some(
                                1024,
                            ),
                            etag: Some(
                                "d41d8cd98f00b204e9800998ecf8427e",
                            ),
                            version_id: Some(
                                "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                            ),
                            sequencer: Some(
                                "0055AED6DCD90281E5",
                            ),
                            configuration_id: Some(
                                "testConfigRule",
                            ),
                            restore: None,
                        },
                    ],
                ),
            )"#]]
        .assert_eq(&format!("{message:#?}"));
    }

    #[test]
    fn messages() {
        let restore_completed = with(
            with(aws_record(), &["eventName"], json!("ObjectRestore:Completed")),
            &["glacierEventData"],
            json!({ "restoreEventData": {
                "lifecycleRestorationExpiryTime": "1970-01-08T00:00:00.000Z",
                "lifecycleRestoreStorageClass": "GLACIER"
            }}),
        );
        // S3 sends neither size nor eTag for a delete marker, and the version id "null" when
        // versioning is suspended.
        let delete_marker = without(
            without(
                with(aws_record(), &["eventName"], json!("ObjectRemoved:DeleteMarkerCreated")),
                &["s3", "object", "size"],
            ),
            &["s3", "object", "eTag"],
        );
        let suspended_delete_marker = with(delete_marker.clone(), &["s3", "object", "versionId"], json!("null"));
        let test_event = json!({
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2025-03-04T10:11:12.345Z",
            "Bucket": "mybucket",
            "RequestId": "5582815E1AEA5ADF",
            "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"
        })
        .to_string();
        check(
            &[
                ("aws", records(&[aws_record()])),
                ("moto", records(&[moto_record("ObjectCreated:Put", "projects%2Fa+b%2Fc%C3%A9.txt")])),
                ("aws key", records(&[with(aws_record(), &["s3", "object", "key"], json!("red+flower%2B1.jpg"))])),
                ("test event", test_event.clone()),
                ("sns", sns(&records(&[moto_record("ObjectCreated:Copy", "x"), aws_record()]))),
                ("sns test event", sns(&test_event)),
                ("restore", records(&[restore_completed])),
                ("delete marker", records(&[delete_marker])),
                ("suspended delete marker", records(&[suspended_delete_marker])),
                ("prefixed name", records(&[with(aws_record(), &["eventName"], json!("s3:ObjectTagging:Put"))])),
                ("version 2.3", records(&[with(aws_record(), &["eventVersion"], json!("2.3"))])),
                ("version 3.0", records(&[with(aws_record(), &["eventVersion"], json!("3.0"))])),
                ("version 2", records(&[with(aws_record(), &["eventVersion"], json!("2"))])),
                ("version number", records(&[with(aws_record(), &["eventVersion"], json!(2.1))])),
                ("malformed", "{\"Records\": [".to_owned()),
                ("not an object", "[1, 2]".to_owned()),
                ("other json", "{\"Service\": \"Amazon S3\"}".to_owned()),
                ("records not an array", "{\"Records\": {}}".to_owned()),
                ("empty", records(&[])),
                ("no key", records(&[aws_record(), without(aws_record(), &["s3", "object", "key"])])),
                ("no bucket", records(&[without(aws_record(), &["s3", "bucket"])])),
                ("no s3", records(&[without(aws_record(), &["s3"])])),
                ("empty name", records(&[with(aws_record(), &["eventName"], json!(""))])),
                ("bad sequencer", records(&[with(aws_record(), &["s3", "object", "sequencer"], json!("0055-AED6"))])),
                ("lower sequencer", records(&[with(aws_record(), &["s3", "object", "sequencer"], json!("617f0829"))])),
                ("not utf-8", records(&[with(aws_record(), &["s3", "object", "key"], json!("a%FF"))])),
                ("bad escape", records(&[with(aws_record(), &["s3", "object", "key"], json!("a%2"))])),
                ("empty key", records(&[with(aws_record(), &["s3", "object", "key"], json!(""))])),
                ("wrong type", records(&[with(aws_record(), &["s3", "object", "size"], json!("1024"))])),
                ("other source", records(&[with(aws_record(), &["eventSource"], json!("aws:sqs"))])),
                ("sns not json", sns("Records")),
                ("sns without message", json!({ "Type": "Notification", "Subject": "x" }).to_string()),
                ("sns confirmation", json!({ "Type": "SubscriptionConfirmation", "Message": "y" }).to_string()),
            ],
            expect![[r#"
                aws: ObjectCreated:Put Created mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                moto: ObjectCreated:Put Created byos-test/"projects/a b/cé.txt" size=5 etag=5d41402abc4b2a76b9719d911017c592
                aws key: ObjectCreated:Put Created mybucket/"red flower+1.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                test event: test event for Some("mybucket")
                sns: ObjectCreated:Copy Created byos-test/"x" size=5 etag=5d41402abc4b2a76b9719d911017c592 | ObjectCreated:Put Created mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                sns test event: test event for Some("mybucket")
                restore: ObjectRestore:Completed RestoreCompleted mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5 RestoreData { lifecycle_restoration_expiry_time: Some("1970-01-08T00:00:00.000Z"), lifecycle_restore_storage_class: Some("GLACIER") }
                delete marker: ObjectRemoved:DeleteMarkerCreated DeleteMarkerCreated mybucket/"HappyFace.jpg" version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                suspended delete marker: ObjectRemoved:DeleteMarkerCreated DeleteMarkerCreated mybucket/"HappyFace.jpg" version=null sequencer=0055AED6DCD90281E5
                prefixed name: ObjectTagging:Put Ignored mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                version 2.3: ObjectCreated:Put Created mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=0055AED6DCD90281E5
                version 3.0: error: record 0: event version "3.0" is not supported: only major version 2 is
                version 2: error: record 0: event version "2" is not supported: only major version 2 is
                version number: error: record 0: the record does not have the s3 event shape: invalid type: floating point `2.1`, expected a string
                malformed: error: the message is not json: EOF while parsing a list at line 1 column 13
                not an object: error: the message is not an s3 event: it is not a json object
                other json: error: the message is not an s3 event: it has neither records nor an s3:TestEvent
                records not an array: error: the message is not an s3 event: its records are not an array
                empty: error: the message has an empty records array
                no key: error: record 1: the record has no s3.object.key
                no bucket: error: record 0: the record has no s3.bucket.name
                no s3: error: record 0: the record has no s3
                empty name: error: record 0: the record has no eventName
                bad sequencer: error: record 0: sequencer "0055-AED6" is not valid: it has characters other than hex digits
                lower sequencer: ObjectCreated:Put Created mybucket/"HappyFace.jpg" size=1024 etag=d41d8cd98f00b204e9800998ecf8427e version=096fKKXTRTtl3on89fVO.nfljtsv6qko sequencer=617F0829
                not utf-8: error: record 0: key "a%FF" does not decode: the decoded bytes are not utf-8
                bad escape: error: record 0: key "a%2" does not decode: a '%' is not followed by two hex digits
                empty key: error: record 0: key "" does not decode: it is empty
                wrong type: error: record 0: the record does not have the s3 event shape: invalid type: string "1024", expected u64
                other source: error: record 0: event source "aws:sqs" is not aws:s3
                sns not json: error: the sns notification's message is not json: expected value at line 1 column 1
                sns without message: error: the message is not an s3 event: the sns notification has no message string
                sns confirmation: error: the message is not an s3 event: it has neither records nor an s3:TestEvent
            "#]],
        );
    }

    #[test]
    fn event_names() {
        let names = [
            "ObjectCreated:Put",
            "s3:ObjectCreated:CompleteMultipartUpload",
            "ObjectCreated:SomethingNew",
            "ObjectRemoved:Delete",
            "ObjectRemoved:DeleteMarkerCreated",
            "LifecycleExpiration:Delete",
            "LifecycleExpiration:DeleteMarkerCreated",
            "ObjectRestore:Post",
            "ObjectRestore:Completed",
            "ObjectRestore:Delete",
            "LifecycleTransition",
            "s3:IntelligentTiering",
            "ObjectTagging:Delete",
            "ObjectAcl:Put",
            "s3:Replication:OperationFailedReplication",
            "ObjectRemoved:SomethingNew",
        ];
        let actual: String = names
            .iter()
            .map(|name| {
                let parsed = EventName::parse(name);
                format!("{name} -> {parsed:?} {:?}\n", parsed.kind())
            })
            .collect();
        expect![[r#"
            ObjectCreated:Put -> ObjectCreatedPut Created
            s3:ObjectCreated:CompleteMultipartUpload -> ObjectCreatedCompleteMultipartUpload Created
            ObjectCreated:SomethingNew -> Other("ObjectCreated:SomethingNew") Created
            ObjectRemoved:Delete -> ObjectRemovedDelete Removed
            ObjectRemoved:DeleteMarkerCreated -> ObjectRemovedDeleteMarkerCreated DeleteMarkerCreated
            LifecycleExpiration:Delete -> LifecycleExpirationDelete Removed
            LifecycleExpiration:DeleteMarkerCreated -> LifecycleExpirationDeleteMarkerCreated DeleteMarkerCreated
            ObjectRestore:Post -> ObjectRestorePost RestoreStarted
            ObjectRestore:Completed -> ObjectRestoreCompleted RestoreCompleted
            ObjectRestore:Delete -> ObjectRestoreDelete RestoreExpired
            LifecycleTransition -> LifecycleTransition Transition
            s3:IntelligentTiering -> IntelligentTiering Transition
            ObjectTagging:Delete -> ObjectTaggingDelete Ignored
            ObjectAcl:Put -> ObjectAclPut Ignored
            s3:Replication:OperationFailedReplication -> Other("Replication:OperationFailedReplication") Ignored
            ObjectRemoved:SomethingNew -> Other("ObjectRemoved:SomethingNew") Ignored
        "#]]
        .assert_eq(&actual);
        for known in EventName::KNOWN {
            assert_eq!(EventName::parse(known.as_str()), known);
            assert_eq!(EventName::parse(&format!("s3:{known}")), known);
        }
    }

    #[test]
    fn sequencers() {
        let pairs = [
            ("0055AED6DCD90281E5", "0055AED6DCD90281E5"),
            ("0055AED6DCD90281E5", "0055AED6DCD90281E6"),
            ("0055AED6DCD90281E5", "0055AED6DCD90281E50001"),
            ("0055AED6DCD90281E5", "0055AED6DCD90281E50000"),
            ("0055AED6DCD90281E5", "0055AED6DCD90281E"),
            ("0055AED6DCD90281F", "0055AED6DCD90281E5"),
            ("0055aed6dcd90281e5", "0055AED6DCD90281E5"),
            ("1", "01"),
            ("0", "000"),
            ("A", "9FFFFFFF"),
        ];
        let mut actual = String::new();
        for (a, b) in pairs {
            let parse = |s| Sequencer::parse(s).unwrap();
            let (a, b) = (parse(a), parse(b));
            actual.push_str(&format!("{a} {:?} {b}\n", a.cmp(&b)));
        }
        for bad in ["", "0x1F", "12 34", "G"] {
            actual.push_str(&format!(
                "{bad:?}: {}\n",
                Sequencer::parse(bad).err().map(|e| e.to_string()).unwrap_or_default()
            ));
        }
        expect![[r#"
            0055AED6DCD90281E5 Equal 0055AED6DCD90281E5
            0055AED6DCD90281E5 Less 0055AED6DCD90281E6
            0055AED6DCD90281E5 Less 0055AED6DCD90281E50001
            0055AED6DCD90281E5 Equal 0055AED6DCD90281E50000
            0055AED6DCD90281E5 Greater 0055AED6DCD90281E
            0055AED6DCD90281F Greater 0055AED6DCD90281E5
            0055AED6DCD90281E5 Equal 0055AED6DCD90281E5
            1 Greater 01
            0 Equal 000
            A Greater 9FFFFFFF
            "": sequencer "" is not valid: it is empty
            "0x1F": sequencer "0x1F" is not valid: it has characters other than hex digits
            "12 34": sequencer "12 34" is not valid: it has characters other than hex digits
            "G": sequencer "G" is not valid: it has characters other than hex digits
        "#]]
        .assert_eq(&actual);
    }

    #[test]
    fn event_times() {
        let times = [
            "1970-01-01T00:00:00.000Z",
            "1970-01-01T00:00:01Z",
            "2025-03-04T10:11:12.345678",
            "2025-03-04T10:11:12.3Z",
            "2025-03-04T12:11:12.345+02:00",
            "2025-03-04T05:11:12.345-05:00",
            "1969-12-31T23:59:59.999Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2025-03-04 10:11:12Z",
            "2025-03-04T24:00:00Z",
            "2025-03-04T10:11:60Z",
            "2025-03-04T10:11:12.Z",
            "2025-03-04T10:11:12+0200",
            "2025-03-04T10:11:12+02:0x",
            "2025-3-04T10:11:12Z",
            "2025-03-04T10:11:1",
            "",
        ];
        let actual: String = times
            .iter()
            .map(|time| {
                let record = S3Record { event_time: (*time).to_owned(), ..sample() };
                format!("{time:?} -> {:?}\n", record.event_time_millis())
            })
            .collect();
        expect![[r#"
            "1970-01-01T00:00:00.000Z" -> Some(0)
            "1970-01-01T00:00:01Z" -> Some(1000)
            "2025-03-04T10:11:12.345678" -> Some(1741083072345)
            "2025-03-04T10:11:12.3Z" -> Some(1741083072300)
            "2025-03-04T12:11:12.345+02:00" -> Some(1741083072345)
            "2025-03-04T05:11:12.345-05:00" -> Some(1741083072345)
            "1969-12-31T23:59:59.999Z" -> Some(-1)
            "2024-02-29T00:00:00Z" -> Some(1709164800000)
            "2023-02-29T00:00:00Z" -> None
            "2025-03-04 10:11:12Z" -> None
            "2025-03-04T24:00:00Z" -> None
            "2025-03-04T10:11:60Z" -> None
            "2025-03-04T10:11:12.Z" -> None
            "2025-03-04T10:11:12+0200" -> None
            "2025-03-04T10:11:12+02:0x" -> None
            "2025-3-04T10:11:12Z" -> None
            "2025-03-04T10:11:1" -> None
            "" -> None
        "#]]
        .assert_eq(&actual);
    }

    fn sample() -> S3Record {
        match parse_message(&records(&[aws_record()])) {
            Ok(Message::Records(mut records)) => records.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn padded_cmp(a: &str, b: &str) -> Ordering {
        let width = a.len().max(b.len());
        format!("{:0<width$}", a.to_ascii_uppercase()).cmp(&format!("{:0<width$}", b.to_ascii_uppercase()))
    }

    fn sequencer(s: &str) -> Sequencer {
        Sequencer::parse(s).unwrap()
    }

    proptest! {
        // A small alphabet makes shared prefixes and trailing zeros common.
        #[test]
        fn order_is_padded_comparison(a in "[01aF]{1,8}|[0-9a-fA-F]{1,24}", b in "[01aF]{1,8}|[0-9a-fA-F]{1,24}") {
            let (sa, sb) = (sequencer(&a), sequencer(&b));
            prop_assert_eq!(sa.cmp(&sb), padded_cmp(&a, &b));
            prop_assert_eq!(sa == sb, padded_cmp(&a, &b) == Ordering::Equal);
            prop_assert_eq!(sa.cmp(&sb), sb.cmp(&sa).reverse());
        }

        #[test]
        fn order_is_transitive(a in "[01aF]{1,6}", b in "[01aF]{1,6}", c in "[01aF]{1,6}") {
            let (a, b, c) = (sequencer(&a), sequencer(&b), sequencer(&c));
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            if a == b && b == c {
                prop_assert_eq!(a, c);
            }
        }

        #[test]
        fn trailing_zeros_do_not_matter(base in "[0-9a-fA-F]{1,20}", zeros in 1usize..6) {
            let (short, long) = (sequencer(&base), sequencer(&format!("{base}{}", "0".repeat(zeros))));
            prop_assert_eq!(&short, &long);
            prop_assert_eq!(short.cmp(&long), Ordering::Equal);
            prop_assert_eq!(HashSet::from([short, long]).len(), 1);
        }

        // `form_urlencoded` encodes the way S3 and moto's `quote_plus` do.
        #[test]
        fn keys_decode_what_form_encoding_makes(key in "\\PC{1,40}") {
            let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
            prop_assert_eq!(decode_key(&encoded), Ok(key));
        }
    }
}
