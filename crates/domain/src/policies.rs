//! The AWS documents a bucket owner needs, as pure functions of typed input: the IAM policy of
//! the platform's user (ICA's published documents, action for action), the bucket's CORS rules,
//! the cross-account bucket policy, the deny-all bucket policy with the platform's exceptions,
//! and the KMS key policy statement for the copy role. Each output is what
//! `aws iam create-policy --policy-document file://...` (or `put-bucket-cors`,
//! `put-bucket-policy`) accepts.

use serde_json::{Value, json};

use crate::cors::CorsRule;
use crate::names::{BucketName, ExternalId, KeyPrefix, KmsKeyArn, RoleArn};
use crate::storage::VersioningState;

/// ICA's CORS origin, the default console.
pub const ICA_CONSOLE_ORIGIN: &str = "https://ica.illumina.com";

/// One action of a policy and why the platform needs it (`--explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Explained {
    pub action: &'static str,
    pub why: &'static str,
}

const BUCKET_ACTIONS: [Explained; 4] = [
    Explained {
        action: "s3:PutBucketNotification",
        why: "provision the gds:* event notifications that keep the catalog in sync",
    },
    Explained { action: "s3:ListBucket", why: "list objects under the prefix (initial import, reconcile, browse)" },
    Explained {
        action: "s3:GetBucketNotification",
        why: "read the notification rules to merge ours without dropping yours",
    },
    Explained { action: "s3:GetBucketLocation", why: "check that the bucket is in the configuration's region" },
];
const VERSIONED_BUCKET_ACTIONS: [Explained; 2] = [
    Explained {
        action: "s3:ListBucketVersions",
        why: "list object versions (version history, reconcile of versioned buckets)",
    },
    Explained { action: "s3:GetBucketVersioning", why: "tell unversioned, versioned and suspended buckets apart" },
];
const KMS_ACTIONS: [Explained; 3] = [
    Explained { action: "kms:Decrypt", why: "read objects encrypted with the key" },
    Explained { action: "kms:Encrypt", why: "write objects encrypted with the key" },
    Explained { action: "kms:GenerateDataKey", why: "write objects encrypted with the key (S3 asks for a data key)" },
];
const OBJECT_ACTIONS: [Explained; 4] = [
    Explained { action: "s3:PutObject", why: "upload data and create folders" },
    Explained { action: "s3:GetObject", why: "download data" },
    Explained { action: "s3:RestoreObject", why: "restore archived objects" },
    Explained { action: "s3:DeleteObject", why: "delete and move data" },
];
const VERSIONED_OBJECT_ACTIONS: [Explained; 2] = [
    Explained { action: "s3:DeleteObjectVersion", why: "delete one version of an object (and the validation probe)" },
    Explained { action: "s3:GetObjectVersion", why: "download an earlier version of an object" },
];
const FEDERATION: Explained =
    Explained { action: "sts:GetFederationToken", why: "vend temporary credentials limited to a project's prefix" };

fn versioned(state: VersioningState) -> bool {
    state != VersioningState::Unversioned
}

/// Every action of the IAM policy, with its reason, in the policy's order.
pub fn iam_policy_actions(versioning: VersioningState, kms: bool) -> Vec<Explained> {
    let mut actions = BUCKET_ACTIONS.to_vec();
    if versioned(versioning) {
        actions.extend(VERSIONED_BUCKET_ACTIONS);
    }
    if kms {
        actions.extend(KMS_ACTIONS);
    }
    actions.extend(OBJECT_ACTIONS);
    if versioned(versioning) {
        actions.extend(VERSIONED_OBJECT_ACTIONS);
    }
    actions.push(FEDERATION);
    actions
}

/// `text` as a policy's string matches it literally: `*`, `?` and `$` written as the policy
/// variables `${*}`, `${?}` and `${$}` (policy version 2012-10-17), so a key holding them never
/// widens what a resource or an `s3:prefix` condition covers. Prefixes given by users cannot
/// hold them ([`crate::policy_safe`]); keys inside a project can.
pub fn policy_literal(text: &str) -> String {
    let mut literal = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '$' => {
                literal.push_str("${");
                literal.push(c);
                literal.push('}');
            }
            c => literal.push(c),
        }
    }
    literal
}

/// The IAM policy of the platform's user: ICA's document for the bucket's versioning state,
/// with the KMS actions on the key when there is one, objects scoped to `prefix` (or the whole
/// bucket).
pub fn iam_policy(
    bucket: &BucketName,
    prefix: Option<&KeyPrefix>,
    versioning: VersioningState,
    kms_key: Option<&KmsKeyArn>,
) -> Value {
    let bucket_arn = format!("arn:aws:s3:::{bucket}");
    let objects_arn = format!("{bucket_arn}/{}*", prefix.map_or(String::new(), |p| policy_literal(p.as_str())));
    let mut bucket_actions: Vec<&str> = BUCKET_ACTIONS.iter().map(|e| e.action).collect();
    if versioned(versioning) {
        bucket_actions.extend(VERSIONED_BUCKET_ACTIONS.iter().map(|e| e.action));
    }
    let mut bucket_resources = vec![bucket_arn.clone()];
    if let Some(key) = kms_key {
        bucket_actions.extend(KMS_ACTIONS.iter().map(|e| e.action));
        bucket_resources.push(key.to_string());
    }
    let mut object_actions: Vec<&str> = OBJECT_ACTIONS.iter().map(|e| e.action).collect();
    if versioned(versioning) {
        object_actions.extend(VERSIONED_OBJECT_ACTIONS.iter().map(|e| e.action));
    }
    let bucket_resource = if bucket_resources.len() == 1 { json!(bucket_arn) } else { json!(bucket_resources) };
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Stmt1", "Effect": "Allow", "Action": bucket_actions, "Resource": bucket_resource},
            {"Sid": "Stmt2", "Effect": "Allow", "Action": object_actions, "Resource": objects_arn},
            {"Sid": "Stmt3", "Effect": "Allow", "Action": FEDERATION.action, "Resource": "*"},
        ]
    })
}

/// The bucket's CORS configuration for browser uploads from `origins` (ICA's rule).
pub fn cors_configuration(origins: &[&str]) -> Value {
    let rule = CorsRule::console(origins);
    json!({
        "CORSRules": [{
            "AllowedHeaders": rule.allowed_headers,
            "AllowedMethods": rule.allowed_methods,
            "AllowedOrigins": rule.allowed_origins,
            "ExposeHeaders": rule.expose_headers,
        }]
    })
}

/// The bucket policy statements that let a region's copy role copy and move data across
/// accounts.
pub fn cross_account_bucket_policy(bucket: &BucketName, role: &RoleArn, versioning: VersioningState) -> Value {
    let mut actions = vec![
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListMultipartUploadParts",
        "s3:AbortMultipartUpload",
        "s3:GetObject",
        "s3:GetObjectTagging",
        "s3:PutObjectTagging",
    ];
    if versioned(versioning) {
        actions.extend(["s3:GetObjectVersion", "s3:GetObjectVersionTagging"]);
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowCrossAccountObjects",
                "Effect": "Allow",
                "Principal": {"AWS": role.as_str()},
                "Action": actions,
                "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            },
            {
                "Sid": "AllowCrossAccountListing",
                "Effect": "Allow",
                "Principal": {"AWS": role.as_str()},
                "Action": "s3:ListBucket",
                "Resource": format!("arn:aws:s3:::{bucket}"),
            },
        ]
    })
}

/// A bucket policy that denies everyone but the platform's IAM user and the federated users it
/// vends credentials to (the seed's example).
pub fn deny_all_bucket_policy(bucket: &BucketName, account: &str, user: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyAllButThePlatform",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {
                "ArnNotLike": {
                    "aws:PrincipalArn": [
                        format!("arn:aws:iam::{account}:user/{user}"),
                        format!("arn:aws:sts::{account}:federated-user/*"),
                    ]
                }
            }
        }]
    })
}

/// The bucket policy statement that lets S3 Inventory write the bucket's reports into the
/// bucket under `reports_prefix`, for the bucket's own account only.
pub fn inventory_reports_bucket_policy(bucket: &BucketName, account: &str, reports_prefix: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AllowInventoryReports",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "s3:PutObject",
            "Resource": format!("arn:aws:s3:::{bucket}/{reports_prefix}/*"),
            "Condition": {
                "ArnLike": {"aws:SourceArn": format!("arn:aws:s3:::{bucket}")},
                "StringEquals": {"aws:SourceAccount": account, "s3:x-amz-acl": "bucket-owner-full-control"},
            },
        }]
    })
}

/// The KMS key policy statement that lets a region's copy role use the key.
pub fn kms_key_policy_statement(role: &RoleArn) -> Value {
    json!({
        "Sid": "AllowCrossAccountCopy",
        "Effect": "Allow",
        "Principal": {"AWS": role.as_str()},
        // A cross-account SSE-KMS copy decrypts with the source key and asks the destination
        // key for a data key.
        "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
        "Resource": "*",
    })
}

/// The principal customers' role trust policies name: the platform's identity as STS reports
/// it, with an assumed role's session turned into the role itself (a trust policy names a
/// role, never one of its sessions). The role's path is not in a session ARN; AWS accepts the
/// role ARN without it only for roles at `/`, so a platform role with a path shows here as
/// it should be written, `arn:aws:iam::ACCOUNT:role/NAME`, to be corrected by hand.
pub fn trust_principal(caller_arn: &str) -> String {
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    if let [_, partition, "sts", _, account, resource] = parts[..]
        && let Some(session) = resource.strip_prefix("assumed-role/")
    {
        let role = session.split('/').next().unwrap_or_default();
        return format!("arn:{partition}:iam::{account}:role/{role}");
    }
    caller_arn.to_owned()
}

/// The trust policy of a customer's role for an `aws-role` credential: the platform's principal
/// may assume it only with the credential's external id.
pub fn role_trust_policy(principal: &str, external_id: &ExternalId) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TrustThePlatformWithItsExternalId",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id.expose()}},
        }]
    })
}

/// A policy document with `ours` merged in, and whether that changed it.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    pub document: Value,
    pub changed: bool,
}

/// Merges the statements of `ours` into the `existing` policy document (a bucket or key policy
/// the owner may have written): a statement with one of our `Sid`s is replaced, the others are
/// kept as they are, ours missing are added. This is how the tools add the copy role's grants
/// without dropping what the owner has.
pub fn merge_statements(existing: Option<&str>, ours: &Value) -> Result<Merged, String> {
    let ours: Vec<Value> = match ours.get("Statement") {
        Some(Value::Array(statements)) => statements.clone(),
        Some(statement) => vec![statement.clone()],
        None => vec![ours.clone()],
    };
    let Some(text) = existing else {
        return Ok(Merged { document: json!({"Version": "2012-10-17", "Statement": ours}), changed: true });
    };
    let mut document: Value =
        serde_json::from_str(text).map_err(|e| format!("the existing policy is not JSON: {e}"))?;
    let Some(object) = document.as_object_mut() else {
        return Err("the existing policy is not a JSON object".to_owned());
    };
    let mut statements = match object.remove("Statement") {
        Some(Value::Array(statements)) => statements,
        Some(statement) => vec![statement],
        None => Vec::new(),
    };
    let mut changed = false;
    for statement in ours {
        let sid = statement.get("Sid").cloned();
        match statements.iter_mut().find(|s| sid.is_some() && s.get("Sid") == sid.as_ref()) {
            Some(existing) if *existing == statement => {}
            Some(existing) => {
                *existing = statement;
                changed = true;
            }
            None => {
                statements.push(statement);
                changed = true;
            }
        }
    }
    object.insert("Statement".to_owned(), Value::Array(statements));
    object.entry("Version").or_insert_with(|| json!("2012-10-17"));
    Ok(Merged { document, changed })
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    fn bucket() -> BucketName {
        BucketName::parse("customer-bucket").unwrap()
    }

    fn role() -> RoleArn {
        RoleArn::parse("arn:aws:iam::079623148045:role/ica_euc1_crossacct").unwrap()
    }

    fn pretty(v: &Value) -> String {
        serde_json::to_string_pretty(v).unwrap_or_default()
    }

    #[test]
    fn trust_policies_require_the_external_id() {
        let external_id = ExternalId::parse("byos-0123456789abcdef0123456789abcdef").unwrap();
        let principal = trust_principal("arn:aws:sts::123456789012:assumed-role/byos-server/i-0abc");
        expect![[r#"
            {
              "Statement": [
                {
                  "Action": "sts:AssumeRole",
                  "Condition": {
                    "StringEquals": {
                      "sts:ExternalId": "byos-0123456789abcdef0123456789abcdef"
                    }
                  },
                  "Effect": "Allow",
                  "Principal": {
                    "AWS": "arn:aws:iam::123456789012:role/byos-server"
                  },
                  "Sid": "TrustThePlatformWithItsExternalId"
                }
              ],
              "Version": "2012-10-17"
            }"#]]
        .assert_eq(&pretty(&role_trust_policy(&principal, &external_id)));
        assert_eq!(trust_principal("arn:aws:iam::123456789012:user/byos"), "arn:aws:iam::123456789012:user/byos");
        assert_eq!(
            trust_principal("arn:aws-cn:sts::123456789012:assumed-role/r/s"),
            "arn:aws-cn:iam::123456789012:role/r"
        );
        assert_eq!(trust_principal("garbage"), "garbage");
    }

    #[test]
    fn unversioned_policy_is_icas() {
        expect![[r#"
            {
              "Statement": [
                {
                  "Action": [
                    "s3:PutBucketNotification",
                    "s3:ListBucket",
                    "s3:GetBucketNotification",
                    "s3:GetBucketLocation"
                  ],
                  "Effect": "Allow",
                  "Resource": "arn:aws:s3:::customer-bucket",
                  "Sid": "Stmt1"
                },
                {
                  "Action": [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:RestoreObject",
                    "s3:DeleteObject"
                  ],
                  "Effect": "Allow",
                  "Resource": "arn:aws:s3:::customer-bucket/*",
                  "Sid": "Stmt2"
                },
                {
                  "Action": "sts:GetFederationToken",
                  "Effect": "Allow",
                  "Resource": "*",
                  "Sid": "Stmt3"
                }
              ],
              "Version": "2012-10-17"
            }"#]]
        .assert_eq(&pretty(&iam_policy(&bucket(), None, VersioningState::Unversioned, None)));
    }

    #[test]
    fn literal_policy_strings_match_only_themselves() {
        use crate::iam::{PolicyDocument, Request, evaluate};

        assert_eq!(policy_literal("a*b?c$d/"), "a${*}b${?}c${$}d/");
        let prefix = "run*?$/";
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": format!("arn:aws:s3:::b/{}*", policy_literal(prefix))}],
        });
        let policy = PolicyDocument::parse(&policy.to_string()).unwrap();
        let get = |key: &str| {
            let request = Request::new("s3:GetObject", format!("arn:aws:s3:::b/{key}"))
                .with_principal("arn:aws:iam::111122223333:user/platform");
            evaluate(&request, &[&policy], None)
        };
        assert!(get("run*?$/x.txt").is_allowed());
        for sibling in ["run-a$/x.txt", "runXY$/x.txt", "run*?X/x.txt", "run*?$"] {
            assert!(!get(sibling).is_allowed(), "{sibling}");
        }
    }

    #[test]
    fn versioned_policy_with_kms_on_a_prefix() {
        let key =
            KmsKeyArn::parse("arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab").unwrap();
        let prefix = KeyPrefix::parse("ica/").unwrap();
        let policy = iam_policy(&bucket(), Some(&prefix), VersioningState::Suspended, Some(&key));
        expect![[r#"
            {
              "Statement": [
                {
                  "Action": [
                    "s3:PutBucketNotification",
                    "s3:ListBucket",
                    "s3:GetBucketNotification",
                    "s3:GetBucketLocation",
                    "s3:ListBucketVersions",
                    "s3:GetBucketVersioning",
                    "kms:Decrypt",
                    "kms:Encrypt",
                    "kms:GenerateDataKey"
                  ],
                  "Effect": "Allow",
                  "Resource": [
                    "arn:aws:s3:::customer-bucket",
                    "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                  ],
                  "Sid": "Stmt1"
                },
                {
                  "Action": [
                    "s3:PutObject",
                    "s3:GetObject",
                    "s3:RestoreObject",
                    "s3:DeleteObject",
                    "s3:DeleteObjectVersion",
                    "s3:GetObjectVersion"
                  ],
                  "Effect": "Allow",
                  "Resource": "arn:aws:s3:::customer-bucket/ica/*",
                  "Sid": "Stmt2"
                },
                {
                  "Action": "sts:GetFederationToken",
                  "Effect": "Allow",
                  "Resource": "*",
                  "Sid": "Stmt3"
                }
              ],
              "Version": "2012-10-17"
            }"#]]
        .assert_eq(&pretty(&policy));
        // Every action of the document is explained, and nothing else.
        let explained: Vec<&str> =
            iam_policy_actions(VersioningState::Suspended, true).iter().map(|e| e.action).collect();
        let mut in_policy: Vec<&str> = policy["Statement"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| match &s["Action"] {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            })
            .collect();
        in_policy.sort_unstable();
        let mut sorted = explained.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, in_policy);
    }

    #[test]
    fn cors_and_bucket_policies() {
        expect![[r#"{"CORSRules":[{"AllowedHeaders":["*"],"AllowedMethods":["HEAD","GET","PUT","POST","DELETE"],"AllowedOrigins":["https://ica.illumina.com"],"ExposeHeaders":["ETag","x-amz-meta-custom-header"]}]}"#]]
        .assert_eq(&cors_configuration(&[ICA_CONSOLE_ORIGIN]).to_string());
        let role = RoleArn::parse("arn:aws:iam::079623148045:role/ica_euc1_crossacct").unwrap();
        let policy = cross_account_bucket_policy(&bucket(), &role, VersioningState::Unversioned);
        assert_eq!(
            policy["Statement"][0]["Principal"]["AWS"],
            json!("arn:aws:iam::079623148045:role/ica_euc1_crossacct")
        );
        let versioned = cross_account_bucket_policy(&bucket(), &role, VersioningState::Enabled);
        assert!(
            versioned.to_string().contains("s3:GetObjectVersion")
                && !policy.to_string().contains("s3:GetObjectVersion")
        );
        let deny = deny_all_bucket_policy(&bucket(), "123456789012", "illumina_ica_admin");
        expect![[
            r#"["arn:aws:iam::123456789012:user/illumina_ica_admin","arn:aws:sts::123456789012:federated-user/*"]"#
        ]]
        .assert_eq(&deny["Statement"][0]["Condition"]["ArnNotLike"]["aws:PrincipalArn"].to_string());
        assert_eq!(kms_key_policy_statement(&role)["Principal"]["AWS"], json!(role.as_str()));
    }

    #[test]
    fn merging_keeps_the_owners_statements_and_is_idempotent() {
        let ours = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Ours", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:role/r"}, "Action": "s3:GetObject", "Resource": "*"}
        ]});
        let owners = r#"{"Version":"2012-10-17","Statement":{"Sid":"Theirs","Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}}"#;
        let first = merge_statements(Some(owners), &ours).unwrap();
        assert!(first.changed);
        let sids: Vec<_> =
            first.document["Statement"].as_array().into_iter().flatten().map(|s| s["Sid"].clone()).collect();
        assert_eq!(sids, [json!("Theirs"), json!("Ours")]);
        let text = first.document.to_string();
        let second = merge_statements(Some(&text), &ours).unwrap();
        assert!(!second.changed);
        assert_eq!(second.document, first.document);

        let stale = text.replace("s3:GetObject", "s3:PutObject");
        let third = merge_statements(Some(&stale), &ours).unwrap();
        assert!(third.changed);
        assert_eq!(third.document, first.document);

        let fresh = merge_statements(None, &kms_key_policy_statement(&role())).unwrap();
        assert!(fresh.changed);
        assert_eq!(fresh.document["Statement"][0]["Sid"], "AllowCrossAccountCopy");
        assert!(merge_statements(Some("not json"), &ours).is_err());
    }
}
