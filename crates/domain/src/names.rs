//! Validated names: each type's `parse` is the only way to make one, so holding a value proves it
//! follows AWS's rules (bucket names, ARNs, key ids) or ours (key prefixes, configuration names).

use std::fmt;

/// Why a name was refused. The message names the rule that was broken, in words a user can act
/// on; the API prefixes it with the field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(String);

impl NameError {
    pub(crate) fn new(rule: impl Into<String>) -> NameError {
        NameError(rule.into())
    }

    /// The rule said of `what` ("a project folder") instead of the generic "a key prefix" or
    /// "a name" it was checked as.
    fn naming(self, what: &str) -> NameError {
        let rule = ["a key prefix", "a name"]
            .into_iter()
            .find_map(|generic| self.0.strip_prefix(generic))
            .map_or(self.0.clone(), |rest| format!("{what}{rest}"));
        NameError(rule)
    }
}

/// Whether `s` can be put into an IAM policy (a resource ARN, an `s3:prefix` condition) and a
/// user's view as written: it holds none of `*`, `?` (wildcards in a policy's strings), `$` (a
/// policy variable's start), control characters, nor invisible formatting characters
/// (zero-width spaces and joiners, direction marks and overrides, the byte order mark), which
/// make two different names look the same. A folder `team*` would otherwise grant every
/// sibling's data.
pub fn policy_safe(s: &str) -> Result<(), NameError> {
    let Some(c) = s.chars().find(|&c| matches!(c, '*' | '?' | '$') || c.is_control() || is_invisible(c)) else {
        return Ok(());
    };
    let found = if c.is_ascii_graphic() { format!("'{c}'") } else { format!("U+{:04X}", u32::from(c)) };
    Err(NameError::new(format!(
        "a name holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no \
         invisible formatting characters, found {found}"
    )))
}

/// Characters that change how text is shown but show nothing themselves.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<$name, NameError> {
                $name::parse(s)
            }
        }
    };
}

string_newtype! {
    /// An S3 general-purpose bucket name.
    BucketName
}

impl BucketName {
    /// Forbidden beginnings and endings of bucket names, reserved by AWS for its own features.
    const RESERVED_PREFIXES: [&'static str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
    const RESERVED_SUFFIXES: [&'static str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

    pub fn parse(s: &str) -> Result<BucketName, NameError> {
        let len = s.len();
        if !(3..=63).contains(&len) {
            return Err(NameError::new(format!("a bucket name is 3 to 63 characters long, this one has {len}")));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-')) {
            return Err(NameError::new(format!(
                "a bucket name holds only lowercase letters, digits, dots and hyphens, not {c:?}"
            )));
        }
        let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        if !alnum(s.chars().next()) || !alnum(s.chars().last()) {
            return Err(NameError::new("a bucket name starts and ends with a letter or digit"));
        }
        if s.contains("..") {
            return Err(NameError::new("a bucket name has no two adjacent dots"));
        }
        if looks_like_ipv4(s) {
            return Err(NameError::new("a bucket name is not formatted as an IP address"));
        }
        if let Some(p) = Self::RESERVED_PREFIXES.iter().find(|p| s.starts_with(*p)) {
            return Err(NameError::new(format!("a bucket name does not start with {p:?}")));
        }
        if let Some(p) = Self::RESERVED_SUFFIXES.iter().find(|p| s.ends_with(*p)) {
            return Err(NameError::new(format!("a bucket name does not end with {p:?}")));
        }
        Ok(BucketName(s.to_owned()))
    }
}

fn looks_like_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

string_newtype! {
    /// A key prefix inside a bucket: `a/b/`. It always ends with `/`, has no empty, `.` or `..`
    /// segments, and is at most 1,024 bytes of UTF-8 (S3's limit for a whole key).
    KeyPrefix
}

impl KeyPrefix {
    pub const MAX_BYTES: usize = 1024;

    /// A prefix given by a user: the rules of a key path, and none of the characters a policy
    /// reads as a wildcard or variable, nor invisible ones ([`policy_safe`]).
    pub fn parse(s: &str) -> Result<KeyPrefix, NameError> {
        let prefix = KeyPrefix::parse_relaxed(s)?;
        policy_safe(s).map_err(|e| e.naming("a key prefix"))?;
        Ok(prefix)
    }

    /// The rules of a key path only: for a path inside a project (whose keys may hold any
    /// character) and for rows stored before [`policy_safe`] was a rule. Check
    /// [`KeyPrefix::policy_safe`] before a policy is scoped to it.
    pub fn parse_relaxed(s: &str) -> Result<KeyPrefix, NameError> {
        if s.is_empty() {
            return Err(NameError::new("a key prefix is not empty; leave it out for the bucket root"));
        }
        if s.len() > Self::MAX_BYTES {
            return Err(NameError::new(format!(
                "a key prefix is at most {} bytes of UTF-8, this one has {}",
                Self::MAX_BYTES,
                s.len()
            )));
        }
        if !s.ends_with('/') {
            return Err(NameError::new("a key prefix ends with '/'"));
        }
        if s.starts_with("./") || s.starts_with("../") {
            return Err(NameError::new("a key prefix does not start with './' or '../'"));
        }
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            return Err(NameError::new(format!(
                "a key prefix holds no control characters, found U+{:04X}",
                u32::from(c)
            )));
        }
        for segment in s[..s.len() - 1].split('/') {
            match segment {
                "" => {
                    return Err(NameError::new("a key prefix has no empty segments ('//' or a leading '/')"));
                }
                "." | ".." => {
                    return Err(NameError::new("a key prefix has no '.' or '..' segments"));
                }
                _ => {}
            }
        }
        Ok(KeyPrefix(s.to_owned()))
    }

    /// Whether a policy can be scoped to this prefix: see [`policy_safe`].
    pub fn policy_safe(&self) -> Result<(), NameError> {
        policy_safe(&self.0).map_err(|e| e.naming("a key prefix"))
    }

    /// Whether a key lies under this prefix.
    pub fn contains_key(&self, key: &str) -> bool {
        key.starts_with(&self.0)
    }

    /// Whether two prefixes share any key: one is a prefix of the other.
    pub fn overlaps(&self, other: &KeyPrefix) -> bool {
        self.0.starts_with(&other.0) || other.0.starts_with(&self.0)
    }
}

string_newtype! {
    /// A project's folder inside its storage configuration's prefix, such as `studies/2026`: a
    /// valid relative key, without a leading or trailing `/`, with no empty, `.` or `..`
    /// segments. The project's data lives under `{configuration prefix}{folder}/`.
    ProjectFolder
}

impl ProjectFolder {
    /// A folder given by a user: a relative key path, policy safe ([`policy_safe`]).
    pub fn parse(s: &str) -> Result<ProjectFolder, NameError> {
        let folder = ProjectFolder::parse_relaxed(s)?;
        policy_safe(s).map_err(|e| e.naming("a project folder"))?;
        Ok(folder)
    }

    /// The rules of a relative key path only: for rows stored before [`policy_safe`] was a
    /// rule.
    pub fn parse_relaxed(s: &str) -> Result<ProjectFolder, NameError> {
        if s.is_empty() {
            return Err(NameError::new("a project folder is not empty"));
        }
        if s.starts_with('/') {
            return Err(NameError::new("a project folder is a relative key: it does not start with '/'"));
        }
        if s.ends_with('/') {
            return Err(NameError::new("a project folder does not end with '/'"));
        }
        KeyPrefix::parse_relaxed(&format!("{s}/")).map_err(|e| e.naming("a project folder"))?;
        Ok(ProjectFolder(s.to_owned()))
    }

    /// The project's key prefix: the folder under the configuration's prefix (or the bucket
    /// root), with its `/`.
    pub fn key_prefix(&self, within: Option<&KeyPrefix>) -> KeyPrefix {
        KeyPrefix(format!("{}{}/", within.map_or("", KeyPrefix::as_str), self.0))
    }
}

string_newtype! {
    /// The ARN of a KMS key: `arn:aws:kms:REGION:ACCOUNT:key/KEY-ID`.
    KmsKeyArn
}

impl KmsKeyArn {
    pub fn parse(s: &str) -> Result<KmsKeyArn, NameError> {
        let shape = "a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID";
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(NameError::new(shape));
        };
        if arn != "arn" || !is_partition(partition) || service != "kms" {
            return Err(NameError::new(shape));
        }
        if !is_aws_region_id(region) {
            return Err(NameError::new(format!("{shape}; {region:?} is not an AWS region id")));
        }
        if !is_account_id(account) {
            return Err(NameError::new(format!("{shape}; the account is 12 digits")));
        }
        let Some(key_id) = resource.strip_prefix("key/") else {
            return Err(NameError::new(format!("{shape}; aliases are not accepted, name the key")));
        };
        if key_id.is_empty() || key_id.len() > 128 || !key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(NameError::new(format!("{shape}; the key id is letters, digits and hyphens")));
        }
        Ok(KmsKeyArn(s.to_owned()))
    }

    /// The AWS region the key lives in, read from the ARN.
    pub fn region(&self) -> &str {
        self.0.split(':').nth(3).unwrap_or_default()
    }

    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

string_newtype! {
    /// An AWS access key id, such as `AKIAIOSFODNN7EXAMPLE`.
    AccessKeyId
}

impl AccessKeyId {
    pub fn parse(s: &str) -> Result<AccessKeyId, NameError> {
        if !(16..=128).contains(&s.len()) {
            return Err(NameError::new("an access key id is 16 to 128 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return Err(NameError::new("an access key id holds only uppercase letters and digits"));
        }
        Ok(AccessKeyId(s.to_owned()))
    }

    /// The form shown to people: the first and last four characters, `AKIA…WXYZ`.
    pub fn masked(&self) -> String {
        let s = &self.0;
        format!("{}…{}", &s[..4], &s[s.len() - 4..])
    }
}

string_newtype! {
    /// The ARN of an IAM role: `arn:aws:iam::ACCOUNT:role/PATH/NAME`.
    RoleArn
}

impl RoleArn {
    pub fn parse(s: &str) -> Result<RoleArn, NameError> {
        let shape = "a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME";
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(NameError::new(shape));
        };
        if arn != "arn" || !is_partition(partition) || service != "iam" || !region.is_empty() {
            return Err(NameError::new(shape));
        }
        if !is_account_id(account) {
            return Err(NameError::new(format!("{shape}; the account is 12 digits")));
        }
        let Some(path_and_name) = resource.strip_prefix("role/") else {
            return Err(NameError::new(shape));
        };
        let name = path_and_name.rsplit('/').next().unwrap_or_default();
        let name_ok = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        let path_ok = path_and_name.len() <= 512 + 64
            && path_and_name.bytes().all(|b| b.is_ascii_graphic())
            && !path_and_name.contains("//");
        if !name_ok || !path_ok {
            return Err(NameError::new(format!("{shape}; the name is 1 to 64 letters, digits or +=,.@_-")));
        }
        Ok(RoleArn(s.to_owned()))
    }

    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

/// The external id a role's trust policy requires: what stops the confused deputy, where one
/// customer names another customer's role. The platform generates it (a customer who chose it
/// could choose another's), shows it to the admin who writes the trust policy, and keeps it
/// sealed at rest; its `Debug` stays redacted so that it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalId(String);

impl ExternalId {
    pub fn parse(s: &str) -> Result<ExternalId, NameError> {
        if !(2..=1224).contains(&s.len()) {
            return Err(NameError::new("an external id is 2 to 1,224 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/_-".contains(&b)) {
            return Err(NameError::new("an external id holds only letters, digits and +=,.@:/_-"));
        }
        Ok(ExternalId(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ExternalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExternalId([redacted])")
    }
}

/// An AWS secret access key. It has no `Display` and no `Serialize`, and its `Debug` is
/// redacted, so it cannot reach a response or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretAccessKey(String);

impl SecretAccessKey {
    pub fn parse(s: &str) -> Result<SecretAccessKey, NameError> {
        if !(16..=128).contains(&s.len()) {
            return Err(NameError::new("a secret access key is 16 to 128 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(NameError::new("a secret access key holds no spaces or control characters"));
        }
        Ok(SecretAccessKey(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey([redacted])")
    }
}

string_newtype! {
    /// The display name of a storage configuration or credential: 3 to 63 characters, no
    /// control characters, no surrounding white space.
    ResourceName
}

impl ResourceName {
    /// A name given by a user, policy safe ([`policy_safe`]): names end up in session names
    /// and in what users read side by side.
    pub fn parse(s: &str) -> Result<ResourceName, NameError> {
        let name = ResourceName::parse_relaxed(s)?;
        policy_safe(s)?;
        Ok(name)
    }

    /// The length and white-space rules only: for rows stored before [`policy_safe`] was a rule.
    pub fn parse_relaxed(s: &str) -> Result<ResourceName, NameError> {
        let chars = s.chars().count();
        if !(3..=63).contains(&chars) {
            return Err(NameError::new(format!("a name is 3 to 63 characters long, this one has {chars}")));
        }
        if s.trim() != s {
            return Err(NameError::new("a name does not start or end with white space"));
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::new("a name holds no control characters"));
        }
        Ok(ResourceName(s.to_owned()))
    }
}

string_newtype! {
    /// An AWS region id, such as `eu-central-1`: the key of the platform's region table, and
    /// the region of every configuration, project, queue and client.
    AwsRegion
}

impl AwsRegion {
    pub fn parse(s: &str) -> Result<AwsRegion, NameError> {
        if !is_aws_region_id(s) {
            return Err(NameError::new(format!("{s:?} is not an AWS region id, such as eu-central-1")));
        }
        Ok(AwsRegion(s.to_owned()))
    }
}

impl<'de> serde::Deserialize<'de> for AwsRegion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AwsRegion, D::Error> {
        let text = String::deserialize(deserializer)?;
        AwsRegion::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl PartialEq<str> for AwsRegion {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AwsRegion {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Whether `s` has the shape of an AWS region id: `eu-central-1`, `us-gov-west-1`.
pub fn is_aws_region_id(s: &str) -> bool {
    let mut parts = s.split('-').peekable();
    let mut count = 0;
    while let Some(part) = parts.next() {
        count += 1;
        let last = parts.peek().is_none();
        let ok = if last {
            !part.is_empty() && part.len() <= 2 && part.bytes().all(|b| b.is_ascii_digit())
        } else {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase())
        };
        if !ok {
            return false;
        }
    }
    count >= 3
}

fn is_partition(s: &str) -> bool {
    matches!(s, "aws" | "aws-cn" | "aws-us-gov")
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};

    use super::*;

    fn check<T: fmt::Debug>(parse: fn(&str) -> Result<T, NameError>, inputs: &[&str], expect: Expect) {
        let actual: String = inputs
            .iter()
            .map(|input| match parse(input) {
                Ok(v) => format!("{input:?} -> ok {v:?}\n"),
                Err(e) => format!("{input:?} -> {e}\n"),
            })
            .collect();
        expect.assert_eq(&actual);
    }

    #[test]
    fn bucket_names() {
        check(
            BucketName::parse,
            &[
                "my-bucket",
                "a.b.c",
                "ab",
                &"a".repeat(64),
                "My-Bucket",
                "my_bucket",
                "-bucket",
                "bucket-",
                "a..b",
                "192.168.5.4",
                "192.168.5",
                "xn--bucket",
                "sthree-x",
                "amzn-s3-demo-bucket",
                "bucket-s3alias",
                "bucket--ol-s3",
                "bucket.mrap",
                "bucket--x-s3",
                "bucket--table-s3",
            ],
            expect![[r#"
                "my-bucket" -> ok "my-bucket"
                "a.b.c" -> ok "a.b.c"
                "ab" -> a bucket name is 3 to 63 characters long, this one has 2
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" -> a bucket name is 3 to 63 characters long, this one has 64
                "My-Bucket" -> a bucket name holds only lowercase letters, digits, dots and hyphens, not 'M'
                "my_bucket" -> a bucket name holds only lowercase letters, digits, dots and hyphens, not '_'
                "-bucket" -> a bucket name starts and ends with a letter or digit
                "bucket-" -> a bucket name starts and ends with a letter or digit
                "a..b" -> a bucket name has no two adjacent dots
                "192.168.5.4" -> a bucket name is not formatted as an IP address
                "192.168.5" -> ok "192.168.5"
                "xn--bucket" -> a bucket name does not start with "xn--"
                "sthree-x" -> a bucket name does not start with "sthree-"
                "amzn-s3-demo-bucket" -> a bucket name does not start with "amzn-s3-demo-"
                "bucket-s3alias" -> a bucket name does not end with "-s3alias"
                "bucket--ol-s3" -> a bucket name does not end with "--ol-s3"
                "bucket.mrap" -> a bucket name does not end with ".mrap"
                "bucket--x-s3" -> a bucket name does not end with "--x-s3"
                "bucket--table-s3" -> a bucket name does not end with "--table-s3"
            "#]],
        );
    }

    #[test]
    fn key_prefixes() {
        check(
            KeyPrefix::parse,
            &[
                "data/",
                "a/b c/ü/",
                "",
                "data",
                "./data/",
                "../data/",
                "/data/",
                "a//b/",
                "a/../b/",
                "a/./",
                "a\u{7}/",
                "team*/",
                "a?/",
                "${aws:username}/",
                "zero\u{200B}width/",
                "rtl\u{202E}/",
                &format!("{}/", "é".repeat(512)),
            ],
            expect![[r#"
                "data/" -> ok "data/"
                "a/b c/ü/" -> ok "a/b c/ü/"
                "" -> a key prefix is not empty; leave it out for the bucket root
                "data" -> a key prefix ends with '/'
                "./data/" -> a key prefix does not start with './' or '../'
                "../data/" -> a key prefix does not start with './' or '../'
                "/data/" -> a key prefix has no empty segments ('//' or a leading '/')
                "a//b/" -> a key prefix has no empty segments ('//' or a leading '/')
                "a/../b/" -> a key prefix has no '.' or '..' segments
                "a/./" -> a key prefix has no '.' or '..' segments
                "a\u{7}/" -> a key prefix holds no control characters, found U+0007
                "team*/" -> a key prefix holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible formatting characters, found '*'
                "a?/" -> a key prefix holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible formatting characters, found '?'
                "${aws:username}/" -> a key prefix holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible formatting characters, found '$'
                "zero\u{200b}width/" -> a key prefix holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible formatting characters, found U+200B
                "rtl\u{202e}/" -> a key prefix holds no '*', '?' or '$' (a policy reads them as wildcards and variables), no control and no invisible formatting characters, found U+202E
                "éééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé/" -> a key prefix is at most 1024 bytes of UTF-8, this one has 1025
            "#]],
        );
    }

    #[test]
    fn prefix_overlap() {
        let p = |s| KeyPrefix::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert!(p("a/").overlaps(&p("a/b/")));
        assert!(p("a/b/").overlaps(&p("a/")));
        assert!(!p("a/").overlaps(&p("ab/")));
        assert!(p("a/").contains_key("a/x.txt"));
        assert!(!p("a/").contains_key("ab/x.txt"));
    }

    #[test]
    fn kms_key_arns() {
        check(
            KmsKeyArn::parse,
            &[
                "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "arn:aws:kms:eu-central-1:123456789012:alias/my-key",
                "arn:aws:kms:europe:123456789012:key/abc",
                "arn:aws:kms:eu-central-1:1234:key/abc",
                "arn:aws:s3:eu-central-1:123456789012:key/abc",
                "arn:aws:kms:eu-central-1:123456789012:key/",
                "not-an-arn",
            ],
            expect![[r#"
                "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab" -> ok "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                "arn:aws:kms:eu-central-1:123456789012:alias/my-key" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; aliases are not accepted, name the key
                "arn:aws:kms:europe:123456789012:key/abc" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; "europe" is not an AWS region id
                "arn:aws:kms:eu-central-1:1234:key/abc" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; the account is 12 digits
                "arn:aws:s3:eu-central-1:123456789012:key/abc" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID
                "arn:aws:kms:eu-central-1:123456789012:key/" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID; the key id is letters, digits and hyphens
                "not-an-arn" -> a KMS key ARN looks like arn:aws:kms:REGION:ACCOUNT:key/KEY-ID
            "#]],
        );
        let arn = KmsKeyArn::parse("arn:aws:kms:us-east-1:123456789012:key/abc").unwrap();
        assert_eq!(arn.region(), "us-east-1");
        assert_eq!(arn.account(), "123456789012");
    }

    #[test]
    fn access_key_ids() {
        check(
            AccessKeyId::parse,
            &["AKIAIOSFODNN7EXAMPLE", "AKIA", "akiaiosfodnn7example", "AKIAIOSFODNN7EXAMPL!"],
            expect![[r#"
                "AKIAIOSFODNN7EXAMPLE" -> ok "AKIAIOSFODNN7EXAMPLE"
                "AKIA" -> an access key id is 16 to 128 characters long
                "akiaiosfodnn7example" -> an access key id holds only uppercase letters and digits
                "AKIAIOSFODNN7EXAMPL!" -> an access key id holds only uppercase letters and digits
            "#]],
        );
        let id = AccessKeyId::parse("AKIAIOSFODNN7EXAMPLE").unwrap();
        assert_eq!(id.masked(), "AKIA…MPLE");
    }

    #[test]
    fn role_arns() {
        check(
            RoleArn::parse,
            &[
                "arn:aws:iam::079623148045:role/ica_euc1_crossacct",
                "arn:aws:iam::123456789012:role/service/byos-access",
                "arn:aws:iam::123456789012:user/someone",
                "arn:aws:iam:eu-central-1:123456789012:role/x",
                "arn:aws:iam::12345:role/x",
                "arn:aws:iam::123456789012:role/",
                "arn:aws:iam::123456789012:role/bad name",
            ],
            expect![[r#"
                "arn:aws:iam::079623148045:role/ica_euc1_crossacct" -> ok "arn:aws:iam::079623148045:role/ica_euc1_crossacct"
                "arn:aws:iam::123456789012:role/service/byos-access" -> ok "arn:aws:iam::123456789012:role/service/byos-access"
                "arn:aws:iam::123456789012:user/someone" -> a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME
                "arn:aws:iam:eu-central-1:123456789012:role/x" -> a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME
                "arn:aws:iam::12345:role/x" -> a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME; the account is 12 digits
                "arn:aws:iam::123456789012:role/" -> a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME; the name is 1 to 64 letters, digits or +=,.@_-
                "arn:aws:iam::123456789012:role/bad name" -> a role ARN looks like arn:aws:iam::ACCOUNT:role/NAME; the name is 1 to 64 letters, digits or +=,.@_-
            "#]],
        );
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = SecretAccessKey::parse("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").unwrap();
        let external = ExternalId::parse("ext-1234-secret").unwrap();
        let shown = format!("{secret:?} {external:?}");
        assert!(!shown.contains("EXAMPLEKEY") && !shown.contains("1234"), "{shown}");
        check(
            ExternalId::parse,
            &["x", "tenant:42/abc", "has space"],
            expect![[r#"
                "x" -> an external id is 2 to 1,224 characters long
                "tenant:42/abc" -> ok ExternalId([redacted])
                "has space" -> an external id holds only letters, digits and +=,.@:/_-
            "#]],
        );
    }

    #[test]
    fn configuration_names() {
        check(
            ResourceName::parse,
            &["prod data", "ab", " padded", "tab\tin"],
            expect![[r#"
                "prod data" -> ok "prod data"
                "ab" -> a name is 3 to 63 characters long, this one has 2
                " padded" -> a name does not start or end with white space
                "tab\tin" -> a name holds no control characters
            "#]],
        );
    }

    #[test]
    fn region_ids() {
        for ok in ["eu-central-1", "us-gov-west-1", "ap-southeast-3", "il-central-1"] {
            assert!(is_aws_region_id(ok), "{ok}");
        }
        for bad in ["", "eu", "eu-central", "EU-central-1", "eu-central-123", "eu--1"] {
            assert!(!is_aws_region_id(bad), "{bad}");
        }
        check(
            AwsRegion::parse,
            &["eu-central-1", "eu-central"],
            expect![[r#"
                "eu-central-1" -> ok "eu-central-1"
                "eu-central" -> "eu-central" is not an AWS region id, such as eu-central-1
            "#]],
        );
        let parsed: Result<AwsRegion, _> = serde_json::from_str(r#""us-gov-west-1""#);
        assert_eq!(parsed.ok().map(|r| r.to_string()), Some("us-gov-west-1".to_owned()));
        assert!(serde_json::from_str::<AwsRegion>(r#""Frankfurt""#).is_err());
    }

    proptest::proptest! {
        /// Whatever the input, a name that parses satisfies the rules checked independently.
        #[test]
        fn parsed_bucket_names_follow_the_rules(s in "[a-z0-9.-]{0,70}") {
            if let Ok(b) = BucketName::parse(&s) {
                let b = b.as_str();
                proptest::prop_assert!((3..=63).contains(&b.len()));
                proptest::prop_assert!(!b.contains(".."));
                proptest::prop_assert!(!b.starts_with(['.', '-']) && !b.ends_with(['.', '-']));
            }
        }

        #[test]
        fn parsed_prefixes_join_into_valid_keys(s in "([a-z.]{0,3}/){0,4}") {
            if let Ok(p) = KeyPrefix::parse(&s) {
                proptest::prop_assert!(p.as_str().ends_with('/'));
                proptest::prop_assert!(!p.as_str().split('/').rev().skip(1).any(|seg| seg.is_empty() || seg == "." || seg == ".."));
            }
        }
    }

    #[test]
    fn project_folders_are_relative_keys() {
        let prefix = KeyPrefix::parse("ica/").unwrap();
        let folder = ProjectFolder::parse("studies/2026").unwrap();
        assert_eq!(folder.key_prefix(Some(&prefix)).as_str(), "ica/studies/2026/");
        assert_eq!(folder.key_prefix(None).as_str(), "studies/2026/");
        for (bad, rule) in [
            ("", "not empty"),
            ("/abs", "does not start with '/'"),
            ("trailing/", "does not end with '/'"),
            ("./here", "does not start with './' or '../'"),
            ("../up", "does not start with './' or '../'"),
            ("a//b", "no empty segments"),
            ("a/../b", "no '.' or '..' segments"),
            ("a\u{7}b", "no control characters"),
            ("team*", "found '*'"),
            ("data\u{2066}x", "found U+2066"),
        ] {
            let error = ProjectFolder::parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(rule) && error.starts_with("a project folder"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn rows_stored_before_the_policy_rule_still_load_and_say_what_is_wrong() {
        let folder = ProjectFolder::parse_relaxed("team*").unwrap();
        let prefix = folder.key_prefix(None);
        assert_eq!(prefix.as_str(), "team*/");
        let refused = prefix.policy_safe().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.starts_with("a key prefix holds no '*'") && refused.ends_with("found '*'"), "{refused}");
        assert!(KeyPrefix::parse("data/").unwrap().policy_safe().is_ok());
        assert!(ResourceName::parse_relaxed("study $1").is_ok());
        let name = ResourceName::parse("study $1").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(name.starts_with("a name holds no '*', '?' or '$'"), "{name}");
        assert!(ResourceName::parse("study \u{FEFF}1").is_err());
    }
}
