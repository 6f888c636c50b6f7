//! Scoped temporary credentials: the session policy that limits a vended STS session to one
//! project's prefix (or a folder below it), and the session's name as CloudTrail shows it.
//!
//! The session's rights are the intersection of the credential's own policy and this one, so
//! the document only ever narrows: listing under the prefix, the object actions of the access
//! level on keys under it, and the configuration's KMS key when the bucket encrypts with one.

use serde_json::{Value, json};

use crate::names::{BucketName, KeyPrefix, KmsKeyArn};
use crate::policies::policy_literal;
use crate::token::ProjectAccess;

/// STS refuses a session policy whose plaintext is longer than this.
pub const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// What reading needs on the objects.
const READ_ACTIONS: [&str; 2] = ["s3:GetObject", "s3:GetObjectVersion"];
/// What writing adds.
const WRITE_ACTIONS: [&str; 4] =
    ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"];

/// The session policy of credentials for `prefix` (a project's, or a folder below it) of
/// `bucket` with `access`:
/// - `s3:ListBucket` on the bucket, only for `s3:prefix` values `{prefix}` and `{prefix}*`, so
///   that `aws s3 ls s3://bucket/prefix/` works and nothing beside it can be listed;
/// - `s3:GetBucketLocation` in a statement of its own (tools ask for the region first, with no
///   prefix to match);
/// - the object actions of `access` on `arn:aws:s3:::{bucket}/{prefix}*` only;
/// - with SSE-KMS, `kms:Decrypt` (and for writing `kms:GenerateDataKey`, `kms:Encrypt`) on the
///   configuration's key only.
///
/// `*`, `?` and `$` in the prefix are written as policy literals (`${*}`...), so a prefix can
/// only ever match itself.
pub fn session_policy(
    bucket: &BucketName,
    prefix: &KeyPrefix,
    access: ProjectAccess,
    kms_key: Option<&KmsKeyArn>,
) -> Value {
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let literal = policy_literal(prefix.as_str());
    let mut object_actions: Vec<&str> = READ_ACTIONS.to_vec();
    if access == ProjectAccess::ReadWrite {
        object_actions.extend(WRITE_ACTIONS);
    }
    let mut statements = vec![
        json!({"Sid": "List", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": bucket_arn,
               "Condition": {"StringLike": {"s3:prefix": [literal, format!("{literal}*")]}}}),
        json!({"Sid": "Locate", "Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": bucket_arn}),
        json!({"Sid": "Objects", "Effect": "Allow", "Action": object_actions,
               "Resource": format!("{bucket_arn}/{literal}*")}),
    ];
    if let Some(key) = kms_key {
        let actions: &[&str] = match access {
            ProjectAccess::Read => &["kms:Decrypt"],
            ProjectAccess::ReadWrite => &["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"],
        };
        statements.push(json!({"Sid": "Key", "Effect": "Allow", "Action": actions, "Resource": key.as_str()}));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// One side of a copy job, as its session policy scopes it.
#[derive(Debug, Clone)]
pub struct CopyScope<'a> {
    pub bucket: &'a BucketName,
    /// The keys the job reads or writes: a folder's prefix (`lab/run/`) or a file's key, each
    /// covering what starts with it (probe objects beside a file included).
    pub prefixes: Vec<String>,
    /// The configuration's SSE-KMS key.
    pub kms_key: Option<&'a KmsKeyArn>,
}

/// Why a copy job's session cannot be scoped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the session policy of this copy is {chars} characters even with each side's paths folded into one prefix; STS takes {MAX_SESSION_POLICY_CHARS}"
)]
pub struct CopyPolicyTooLong {
    pub chars: usize,
}

/// The session policy of a copy or move job's cross-account session: the region's copy role,
/// narrowed to this job's source paths and destination folder.
/// - `s3:GetBucketLocation` on both buckets;
/// - on the source: `s3:ListBucket` (and `s3:ListBucketVersions`) only for `s3:prefix` values
///   of its paths, and the object reads (versions and tags too) under them; for a move
///   (`remove_sources`), also writing and deleting there (the sources go, a probe shows it may);
/// - on the destination: the object writes, reads (verification) and deletes (the probe)
///   under its folder, and `s3:ListBucket` on the bucket without a prefix condition: S3 answers
///   a HEAD of a missing key 404 only to a caller that may list the bucket (otherwise 403), and
///   it checks that with no prefix in the request, so a copy could not tell "not there yet"
///   from "forbidden";
/// - `kms:Decrypt` on the source's key; `kms:Decrypt`, `kms:GenerateDataKey` and `kms:Encrypt`
///   on the destination's.
///
/// When the paths make the policy longer than STS takes, each side's paths are folded into
/// their longest common folder (at worst the project's prefix): wider, still inside the
/// projects.
pub fn copy_session_policy(
    source: &CopyScope<'_>,
    destination: &CopyScope<'_>,
    remove_sources: bool,
) -> Result<Value, CopyPolicyTooLong> {
    let policy = copy_policy(source, destination, remove_sources);
    if session_policy_text(&policy).len() <= MAX_SESSION_POLICY_CHARS {
        return Ok(policy);
    }
    let (source, destination) = (folded(source), folded(destination));
    let policy = copy_policy(&source, &destination, remove_sources);
    let chars = session_policy_text(&policy).len();
    if chars > MAX_SESSION_POLICY_CHARS {
        return Err(CopyPolicyTooLong { chars });
    }
    Ok(policy)
}

fn copy_policy(source: &CopyScope<'_>, destination: &CopyScope<'_>, remove_sources: bool) -> Value {
    let arn = |scope: &CopyScope<'_>| format!("arn:aws:s3:::{}", scope.bucket);
    let objects = |scope: &CopyScope<'_>| -> Vec<String> {
        scope.prefixes.iter().map(|p| format!("{}/{}*", arn(scope), policy_literal(p))).collect()
    };
    let listed: Vec<String> =
        source.prefixes.iter().flat_map(|p| [policy_literal(p), format!("{}*", policy_literal(p))]).collect();
    let mut reads = vec!["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging"];
    if remove_sources {
        reads.extend(["s3:PutObject", "s3:DeleteObject"]);
    }
    let writes = [
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:GetObject",
        "s3:DeleteObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ];
    let mut statements = vec![
        json!({"Sid": "Locate", "Effect": "Allow", "Action": "s3:GetBucketLocation",
               "Resource": [arn(source), arn(destination)]}),
        json!({"Sid": "ListSource", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
               "Resource": arn(source), "Condition": {"StringLike": {"s3:prefix": listed}}}),
        json!({"Sid": "ReadSource", "Effect": "Allow", "Action": reads, "Resource": objects(source)}),
        json!({"Sid": "ListDestination", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arn(destination)}),
        json!({"Sid": "WriteDestination", "Effect": "Allow", "Action": writes, "Resource": objects(destination)}),
    ];
    match (source.kms_key, destination.kms_key) {
        (Some(from), Some(to)) if from == to => statements.push(
            json!({"Sid": "Keys", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"], "Resource": to.as_str()}),
        ),
        (from, to) => {
            if let Some(from) = from {
                statements.push(json!({"Sid": "SourceKey", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": from.as_str()}));
            }
            if let Some(to) = to {
                statements.push(json!({"Sid": "DestinationKey", "Effect": "Allow",
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"], "Resource": to.as_str()}));
            }
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// `scope` with its prefixes folded into their common folder.
fn folded<'a>(scope: &CopyScope<'a>) -> CopyScope<'a> {
    CopyScope { prefixes: vec![common_folder(&scope.prefixes)], ..scope.clone() }
}

/// The longest folder (`a/b/`, or the empty root) every prefix is in.
fn common_folder(prefixes: &[String]) -> String {
    let Some(first) = prefixes.first() else { return String::new() };
    let mut same = first.len();
    for prefix in &prefixes[1..] {
        same = same.min(first.bytes().zip(prefix.bytes()).take_while(|(a, b)| a == b).count());
    }
    // Back to a folder boundary, which is a character boundary too.
    match first.as_bytes()[..same].iter().rposition(|&b| b == b'/') {
        Some(end) => first[..=end].to_owned(),
        None => String::new(),
    }
}

/// The policy as sent to STS: compact JSON, whose length STS limits
/// ([`MAX_SESSION_POLICY_CHARS`]).
pub fn session_policy_text(policy: &Value) -> String {
    policy.to_string()
}

/// A session or federated user name from `parts` (the token's name, the project's short id),
/// in STS's character set (`\w+=,.@-`, others become `-`) and within `max` characters (32 for
/// a federated user, 64 for a role session); at least 2.
pub fn session_name(parts: &[&str], max: usize) -> String {
    let joined = parts.join("@");
    let mut name: String =
        joined.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).collect();
    if name.len() > max {
        // Keep the end: the project's id is what tells sessions apart.
        name = name[name.len() - max..].to_owned();
    }
    while name.len() < 2 {
        name.push('-');
    }
    name
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::iam::{PolicyDocument, Request, evaluate};

    fn bucket(name: &str) -> BucketName {
        BucketName::parse(name).unwrap()
    }

    /// What the session may do: the session policy alone (the credential's own policy allows
    /// everything in these tests, so the session policy is the limit).
    fn allowed(policy: &Value, action: &str, resource: &str, prefix_condition: Option<&str>) -> bool {
        let document = PolicyDocument::parse(&session_policy_text(policy)).unwrap();
        let mut request =
            Request::new(action, resource).with_principal("arn:aws:sts::111122223333:federated-user/someone");
        if let Some(prefix) = prefix_condition {
            request = request.with_context("s3:prefix", prefix);
        }
        evaluate(&request, &[&document], None).is_allowed()
    }

    #[test]
    fn read_and_read_write_sessions_with_a_kms_key() {
        let key =
            KmsKeyArn::parse("arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab").unwrap();
        let prefix = KeyPrefix::parse("ica/study/").unwrap();
        let read = session_policy(&bucket("customer-bucket"), &prefix, ProjectAccess::Read, Some(&key));
        expect_test::expect![[r#"{"Statement":[{"Action":"s3:ListBucket","Condition":{"StringLike":{"s3:prefix":["ica/study/","ica/study/*"]}},"Effect":"Allow","Resource":"arn:aws:s3:::customer-bucket","Sid":"List"},{"Action":"s3:GetBucketLocation","Effect":"Allow","Resource":"arn:aws:s3:::customer-bucket","Sid":"Locate"},{"Action":["s3:GetObject","s3:GetObjectVersion"],"Effect":"Allow","Resource":"arn:aws:s3:::customer-bucket/ica/study/*","Sid":"Objects"},{"Action":["kms:Decrypt"],"Effect":"Allow","Resource":"arn:aws:kms:eu-central-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab","Sid":"Key"}],"Version":"2012-10-17"}"#]]
            .assert_eq(&session_policy_text(&read));
        let write = session_policy(&bucket("customer-bucket"), &prefix, ProjectAccess::ReadWrite, Some(&key));
        let text = session_policy_text(&write);
        assert!(
            text.contains(
                r#""s3:PutObject","s3:DeleteObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts""#
            )
        );
        assert!(text.contains(r#"["kms:Decrypt","kms:GenerateDataKey","kms:Encrypt"]"#));
        assert!(text.len() < MAX_SESSION_POLICY_CHARS);
    }

    #[test]
    fn session_names_fit_sts() {
        assert_eq!(session_name(&["ci pipeline", "1c7d4d2f"], 32), "ci-pipeline@1c7d4d2f");
        assert_eq!(session_name(&["müller/ü", "1c7d4d2f"], 32), "m-ller--@1c7d4d2f");
        let long = session_name(&[&"x".repeat(100), "1c7d4d2f"], 32);
        assert_eq!((long.len(), long.ends_with("@1c7d4d2f")), (32, true));
        assert_eq!(session_name(&[""], 32), "--");
    }

    fn scope<'a>(bucket: &'a BucketName, prefixes: &[&str], kms_key: Option<&'a KmsKeyArn>) -> CopyScope<'a> {
        CopyScope { bucket, prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(), kms_key }
    }

    #[test]
    fn a_copy_session_reads_its_sources_and_writes_its_destination() {
        let (from, to) = (bucket("source-bucket"), bucket("destination-bucket"));
        let key =
            KmsKeyArn::parse("arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab").unwrap();
        let source = scope(&from, &["ica/a/run/", "ica/a/x.txt"], None);
        let destination = scope(&to, &["lab/b/in/"], Some(&key));
        let policy = copy_session_policy(&source, &destination, false).unwrap();
        expect_test::expect![[r#"{"Statement":[{"Action":"s3:GetBucketLocation","Effect":"Allow","Resource":["arn:aws:s3:::source-bucket","arn:aws:s3:::destination-bucket"],"Sid":"Locate"},{"Action":["s3:ListBucket","s3:ListBucketVersions"],"Condition":{"StringLike":{"s3:prefix":["ica/a/run/","ica/a/run/*","ica/a/x.txt","ica/a/x.txt*"]}},"Effect":"Allow","Resource":"arn:aws:s3:::source-bucket","Sid":"ListSource"},{"Action":["s3:GetObject","s3:GetObjectVersion","s3:GetObjectTagging","s3:GetObjectVersionTagging"],"Effect":"Allow","Resource":["arn:aws:s3:::source-bucket/ica/a/run/*","arn:aws:s3:::source-bucket/ica/a/x.txt*"],"Sid":"ReadSource"},{"Action":"s3:ListBucket","Effect":"Allow","Resource":"arn:aws:s3:::destination-bucket","Sid":"ListDestination"},{"Action":["s3:PutObject","s3:PutObjectTagging","s3:GetObject","s3:DeleteObject","s3:AbortMultipartUpload","s3:ListMultipartUploadParts"],"Effect":"Allow","Resource":["arn:aws:s3:::destination-bucket/lab/b/in/*"],"Sid":"WriteDestination"},{"Action":["kms:Decrypt","kms:GenerateDataKey","kms:Encrypt"],"Effect":"Allow","Resource":"arn:aws:kms:eu-central-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab","Sid":"DestinationKey"}],"Version":"2012-10-17"}"#]]
            .assert_eq(&session_policy_text(&policy));
    }

    #[test]
    fn many_paths_fold_into_their_common_folder() {
        let (from, to) = (bucket("source-bucket"), bucket("destination-bucket"));
        let paths: Vec<String> = (0..1000).map(|i| format!("ica/study/run-{i:04}/")).collect();
        let source = CopyScope { bucket: &from, prefixes: paths.clone(), kms_key: None };
        let policy = copy_session_policy(&source, &scope(&to, &["lab/in/"], None), true).unwrap();
        let text = session_policy_text(&policy);
        assert!(text.len() <= MAX_SESSION_POLICY_CHARS, "{}", text.len());
        assert!(text.contains(r#""arn:aws:s3:::source-bucket/ica/study/*""#), "{text}");
        for path in [&paths[0], &paths[999]] {
            let object = format!("arn:aws:s3:::source-bucket/{path}a.bam");
            assert!(
                allowed(&policy, "s3:GetObject", &object, None) && allowed(&policy, "s3:DeleteObject", &object, None)
            );
        }
        assert!(!allowed(&policy, "s3:GetObject", "arn:aws:s3:::source-bucket/ica/other/a.bam", None));

        assert_eq!(common_folder(&["a/bé/x".to_owned(), "a/bè/y".to_owned()]), "a/", "never inside a character");
        assert_eq!(common_folder(&["x.txt".to_owned(), "y/".to_owned()]), "");
        let huge = "k".repeat(1000);
        let refused = copy_session_policy(
            &scope(&from, &[&format!("{huge}/")], None),
            &scope(&to, &[&format!("{huge}/in/")], None),
            false,
        );
        assert!(matches!(refused, Err(CopyPolicyTooLong { chars }) if chars > MAX_SESSION_POLICY_CHARS));
    }

    /// A key segment: letters, the characters a policy reads specially, and some unicode.
    fn segment() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-c*?$é€]{1,4}").unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// For any prefix (including one that is a prefix of its sibling's, `alpha` and
        /// `alpha2`), the session reads (and for read-write writes) every key inside it, and
        /// nothing of the sibling, the bucket's root or another bucket.
        #[test]
        fn a_session_reaches_its_prefix_and_nothing_beside_it(
            base in segment(),
            suffix in segment(),
            key in segment(),
            write in any::<bool>(),
        ) {
            let access = if write { ProjectAccess::ReadWrite } else { ProjectAccess::Read };
            // The project's prefix as a user could not write it, but keys inside may hold
            // anything: policies escape what they put in.
            let prefix = KeyPrefix::parse_relaxed(&format!("data/{base}/")).unwrap();
            let sibling = format!("data/{base}{suffix}/");
            let policy = session_policy(&bucket("customer-bucket"), &prefix, access, None);
            let object = |bucket: &str, key: &str| format!("arn:aws:s3:::{bucket}/{key}");
            let inside = format!("{}{key}", prefix.as_str());
            let actions: &[&str] = if write { &["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] } else { &["s3:GetObject"] };
            for action in actions {
                prop_assert!(allowed(&policy, action, &object("customer-bucket", &inside), None), "{action} {inside}");
                for outside in [format!("{sibling}{key}"), key.clone(), format!("data/{key}")] {
                    prop_assert!(!allowed(&policy, action, &object("customer-bucket", &outside), None), "{action} {outside}");
                }
                prop_assert!(!allowed(&policy, action, &object("other-bucket", &inside), None), "other bucket");
            }
            if !write {
                prop_assert!(!allowed(&policy, "s3:PutObject", &object("customer-bucket", &inside), None));
                prop_assert!(!allowed(&policy, "s3:DeleteObject", &object("customer-bucket", &inside), None));
            }
            let bucket_arn = "arn:aws:s3:::customer-bucket";
            prop_assert!(allowed(&policy, "s3:ListBucket", bucket_arn, Some(prefix.as_str())));
            prop_assert!(allowed(&policy, "s3:ListBucket", bucket_arn, Some(&inside)));
            prop_assert!(!allowed(&policy, "s3:ListBucket", bucket_arn, Some(&sibling)));
            prop_assert!(!allowed(&policy, "s3:ListBucket", bucket_arn, Some("")));
            prop_assert!(!allowed(&policy, "s3:ListBucket", bucket_arn, None), "no prefix: the whole bucket");
            prop_assert!(!allowed(&policy, "s3:ListBucket", "arn:aws:s3:::other-bucket", Some(prefix.as_str())));
        }

        /// A copy session reads under each source path and writes under the destination
        /// folder, deletes sources only for a move, and reaches nothing beside them: not a
        /// sibling whose name extends a path's, not the other bucket's same keys.
        #[test]
        fn a_copy_session_reaches_the_jobs_paths_only(
            a in segment(),
            b in segment(),
            suffix in segment(),
            key in segment(),
            remove_sources in any::<bool>(),
        ) {
            let (from, to) = (bucket("source-bucket"), bucket("destination-bucket"));
            let sources = [format!("src/{a}/"), format!("src/{b}.txt")];
            let destination = format!("dst/{a}/");
            let source = CopyScope { bucket: &from, prefixes: sources.to_vec(), kms_key: None };
            let policy = copy_session_policy(&source, &scope(&to, &[&destination], None), remove_sources).unwrap();
            let object = |bucket: &str, key: &str| format!("arn:aws:s3:::{bucket}/{key}");
            let inside = format!("{}{key}", sources[0]);
            prop_assert!(allowed(&policy, "s3:GetObject", &object("source-bucket", &inside), None));
            prop_assert!(allowed(&policy, "s3:GetObject", &object("source-bucket", &sources[1]), None));
            prop_assert_eq!(allowed(&policy, "s3:DeleteObject", &object("source-bucket", &inside), None), remove_sources);
            let sibling = format!("src/{a}{suffix}/{key}");
            for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
                prop_assert!(!allowed(&policy, action, &object("source-bucket", &sibling), None), "{action} {sibling}");
                let elsewhere = object("source-bucket", &format!("{destination}{key}"));
                prop_assert!(!allowed(&policy, action, &elsewhere, None), "{action} {elsewhere}");
            }
            let written = format!("{destination}{key}");
            for action in ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:PutObjectTagging"] {
                prop_assert!(allowed(&policy, action, &object("destination-bucket", &written), None), "{action}");
                prop_assert!(!allowed(&policy, action, &object("destination-bucket", &inside), None), "{action} outside");
                let beside = object("destination-bucket", &format!("dst/{a}{suffix}/{key}"));
                prop_assert!(!allowed(&policy, action, &beside, None), "{action} {beside}");
            }
            let listing = "arn:aws:s3:::source-bucket";
            prop_assert!(allowed(&policy, "s3:ListBucket", listing, Some(&inside)));
            prop_assert!(!allowed(&policy, "s3:ListBucket", listing, Some(&sibling)));
            prop_assert!(!allowed(&policy, "s3:ListBucket", listing, None), "the whole source bucket");
            prop_assert!(allowed(&policy, "s3:ListBucket", "arn:aws:s3:::destination-bucket", None));
            prop_assert!(!allowed(&policy, "s3:ListBucket", "arn:aws:s3:::third-bucket", None));
        }
    }
}
