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
    }
}
