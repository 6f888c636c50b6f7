//! Every parser and rule of the domain against hostile input (proptest): arbitrary text and
//! bytes, structured mutations of real inputs, and brute-force references for the rules. No
//! input may panic; what parses must mean what it says. A panicking input found here becomes a
//! regression test beside the parser it broke.

// Helpers of a test binary may unwrap too: a test fails by panicking (clippy.toml covers
// only `#[test]` functions and `#[cfg(test)]` modules).
#![allow(clippy::unwrap_used)]

use byos_domain::events::{Message, Sequencer, parse_message};
use byos_domain::iam::{Outcome, PolicyDocument, PolicyKind, Request};
use byos_domain::{
    AccessKeyId, AwsRegion, BucketName, ExternalId, KeyPrefix, KmsKeyArn, ProjectFolder, ResourceName, RoleArn,
    SecretAccessKey, TokenName,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Text as an attacker writes it: any characters, control and invisible ones included, with a
/// fair share of the characters that mean something to the parsers.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9/:.*?$%{}\\[\\]\"'\\\\ _+=,@-]{0,80}",
        "(arn:aws:[a-z0-9]{0,4}:[a-z0-9-]{0,12}:[0-9]{0,12}:[a-z/*?]{0,20}){1,2}",
        proptest::collection::vec(prop_oneof![Just('\0'), Just('\u{202e}'), Just('\u{feff}'), any::<char>()], 0..20)
            .prop_map(|chars| chars.into_iter().collect()),
    ]
}

/// A parse that must not panic, and whose value, written back, parses to itself.
macro_rules! round_trips {
    ($text:expr, $($name:ty),+ $(,)?) => {
        $(
            if let Ok(value) = <$name>::parse($text) {
                let again = <$name>::parse(value.as_str());
                prop_assert!(again.as_ref().ok() == Some(&value), "{} {:?} -> {:?}", stringify!($name), $text, again);
            }
        )+
    };
}

/// 2,000 cases a property in the test run; `PROPTEST_CASES=200000` for a longer run on demand.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn names_parse_any_text_or_refuse_it(text in hostile_text()) {
        round_trips!(&text, BucketName, KmsKeyArn, AccessKeyId, RoleArn, ResourceName, AwsRegion, TokenName);
        if let Ok(external) = ExternalId::parse(&text) {
            prop_assert_eq!(external.expose(), text.as_str());
            // Longer than any word of the redacted form.
            prop_assert!(text.len() <= 16 || !format!("{external:?}").contains(&text), "an external id is not shown");
        }
        if let Ok(prefix) = KeyPrefix::parse(&text) {
            prop_assert!(prefix.as_str().is_empty() || prefix.as_str().ends_with('/'), "{prefix:?}");
            prop_assert!(!prefix.as_str().contains('\0'));
        }
        let _ = KeyPrefix::parse_relaxed(&text);
        if let Ok(folder) = ProjectFolder::parse(&text) {
            prop_assert!(!folder.as_str().starts_with('/') && !folder.as_str().contains("//"), "{folder:?}");
        }
        let _ = ProjectFolder::parse_relaxed(&text);
        let _ = ResourceName::parse_relaxed(&text);
        // A secret is never shown: whatever it holds, its Debug does not.
        if let Ok(secret) = SecretAccessKey::parse(&text) {
            let shown = format!("{secret:?}");
            prop_assert!(text.len() <= 16 || !shown.contains(&text), "{shown}");
        }
    }

    #[test]
    fn sequencers_parse_any_text_and_order_consistently(a in hostile_text(), b in "[0-9a-fA-F]{1,24}") {
        if let Ok(first) = Sequencer::parse(&a) {
            prop_assert_eq!(first.cmp(&first), std::cmp::Ordering::Equal);
            let second = Sequencer::parse(&b).unwrap();
            prop_assert_eq!(first.cmp(&second), second.cmp(&first).reverse());
        }
    }

    #[test]
    fn event_messages_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_message(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_real_events_parse_or_are_refused(mutations in proptest::collection::vec(mutation(), 1..4), sns in any::<bool>()) {
        let mut message = json!({"Records": [aws_record(), aws_record()]});
        for (path, value) in &mutations {
            mutate(&mut message, path, value.clone());
        }
        let body = if sns {
            json!({"Type": "Notification", "Message": message.to_string()}).to_string()
        } else {
            message.to_string()
        };
        if let Ok(Message::Records(records)) = parse_message(&body) {
            prop_assert!(!records.is_empty());
            for record in &records {
                let _ = (record.kind(), record.event_time_millis());
                // Only version 2 of the record format is read.
                prop_assert!(record.event_version.starts_with("2."), "{record:?}");
            }
        }
    }

    #[test]
    fn policy_documents_parse_any_json_and_evaluate_without_panicking(document in json_value(), request in request()) {
        if let Ok(policy) = PolicyDocument::parse(&document.to_string()) {
            let _ = policy.evaluate(&request, PolicyKind::Identity);
            let _ = policy.evaluate(&request.with_principal("arn:aws:iam::123456789012:user/u"), PolicyKind::Resource);
        }
    }

    /// Small identity policies of Allow and Deny statements against a brute-force reference:
    /// an explicit deny wins, then an allow, else nothing applies. Actions match without regard
    /// to case, resources with it; `*` is any run of characters, `?` any one.
    #[test]
    fn the_evaluator_agrees_with_brute_force(
        statements in proptest::collection::vec((any::<bool>(), action_pattern(), resource_pattern()), 1..5),
        action in prop::sample::select(vec!["s3:GetObject", "s3:getobject", "s3:PutObject", "s3:DeleteObject", "kms:Decrypt"]),
        resource in prop::sample::select(vec!["arn:aws:s3:::b/abc", "arn:aws:s3:::b/ABC", "arn:aws:s3:::b/x", "arn:aws:s3:::c/abc", "arn:aws:s3:::b/a/c"]),
    ) {
        let document = json!({
            "Version": "2012-10-17",
            "Statement": statements.iter().map(|(allow, action, resource)| json!({
                "Effect": if *allow { "Allow" } else { "Deny" },
                "Action": action,
                "Resource": resource,
            })).collect::<Vec<_>>(),
        });
        let policy = PolicyDocument::parse(&document.to_string()).unwrap();
        let outcome = policy.evaluate(&Request::new(action, resource), PolicyKind::Identity);
        let applies = |(_, a, r): &&(bool, &str, &str)| {
            glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()) && glob(r, resource)
        };
        let expected = if statements.iter().filter(applies).any(|(allow, _, _)| !allow) {
            "deny"
        } else if statements.iter().any(|s| applies(&s)) {
            "allow"
        } else {
            "none"
        };
        let got = match outcome {
            Outcome::ExplicitDeny { .. } => "deny",
            Outcome::Allow { .. } => "allow",
            Outcome::NotApplicable => "none",
            Outcome::Unknown { .. } => "unknown",
        };
        prop_assert_eq!(got, expected, "{} {} {}", document, action, resource);
    }
}

/// The reference matcher: `*` any run, `?` any one character, by trying every split.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn at(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|skip| at(&p[1..], &t[skip..])),
            Some('?') => !t.is_empty() && at(&p[1..], &t[1..]),
            Some(c) => t.first() == Some(c) && at(&p[1..], &t[1..]),
        }
    }
    at(&p, &t)
}

fn action_pattern() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "s3:GetObject",
        "s3:Get*",
        "s3:*",
        "*",
        "s3:?etObject",
        "S3:PUTOBJECT",
        "s3:*Object",
        "kms:*",
    ])
}

fn resource_pattern() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "arn:aws:s3:::b/*",
        "arn:aws:s3:::b/a*",
        "*",
        "arn:aws:s3:::b/a?c",
        "arn:aws:s3:::b/ABC",
        "arn:aws:s3:::*/abc",
        "arn:aws:s3:::b/a*c",
    ])
}

fn request() -> impl Strategy<Value = Request> {
    (
        hostile_text(),
        hostile_text(),
        proptest::collection::btree_map(hostile_text(), proptest::collection::vec(hostile_text(), 0..3), 0..3),
    )
        .prop_map(|(action, resource, context)| {
            let mut request = Request::new(action, resource);
            request.context = context;
            request
        })
}

/// Any JSON value, nested a few levels, with the policy grammar's words among its keys and
/// strings so that parses get past the first check.
fn json_value() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(vec![
        "Version",
        "Statement",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
        "Sid",
        "Allow",
        "Deny",
        "2012-10-17",
        "*",
        "s3:*",
        "AWS",
        "StringLike",
        "ForAnyValue:StringEquals",
        "IpAddress",
        "DateGreaterThan",
        "Bool",
        "Null",
        "aws:SourceIp",
        "s3:prefix",
        "${aws:username}",
        "arn:aws:s3:::b/*",
    ])
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        words.clone().prop_map(Value::String),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(prop_oneof![words.clone(), hostile_text()], inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// The example of the S3 user guide's "Event message structure".
fn aws_record() -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-west-2",
        "eventTime": "1970-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": { "principalId": "AIDAJDPLRKLG7UEXAMPLE" },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "testConfigRule",
            "bucket": { "name": "mybucket", "arn": "arn:aws:s3:::mybucket" },
            "object": {
                "key": "Happy%20Face+%C3%A9.jpg",
                "size": 1024,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
                "sequencer": "0055AED6DCD90281E5"
            },
            "glacierEventData": { "restoreEventData": { "lifecycleRestorationExpiryTime": "2026-12-01T00:00:00.000Z" } }
        }
    })
}

/// A place in a record (`Records/N/...`) and what to put there (`None`: remove it).
fn mutation() -> impl Strategy<Value = (Vec<String>, Option<Value>)> {
    let path = prop::sample::select(vec![
        vec!["Records"],
        vec!["Records", "0"],
        vec!["Records", "1", "eventVersion"],
        vec!["Records", "0", "eventName"],
        vec!["Records", "0", "eventTime"],
        vec!["Records", "1", "awsRegion"],
        vec!["Records", "0", "s3"],
        vec!["Records", "0", "s3", "bucket", "name"],
        vec!["Records", "1", "s3", "object"],
        vec!["Records", "0", "s3", "object", "key"],
        vec!["Records", "0", "s3", "object", "size"],
        vec!["Records", "1", "s3", "object", "eTag"],
        vec!["Records", "0", "s3", "object", "versionId"],
        vec!["Records", "0", "s3", "object", "sequencer"],
        vec!["Records", "1", "s3", "glacierEventData", "restoreEventData"],
        vec!["Event"],
    ])
    .prop_map(|path| path.into_iter().map(str::to_owned).collect());
    let value = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(json!([]))),
        Just(Some(json!({}))),
        Just(Some(json!("s3:TestEvent"))),
        Just(Some(json!("%ZZ%"))),
        Just(Some(json!(-1))),
        Just(Some(json!(1e300))),
        Just(Some(json!("3.0"))),
        Just(Some(json!("ObjectRemoved:DeleteMarkerCreated"))),
        any::<i64>().prop_map(|n| Some(json!(n))),
        hostile_text().prop_map(|s| Some(Value::String(s))),
    ];
    (path, value)
}

/// Puts `value` at `path` in `message` (or removes what is there), making the containers on the
/// way as needed.
fn mutate(message: &mut Value, path: &[String], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut at = message;
    for name in parents {
        at = match (at, name.parse::<usize>()) {
            (Value::Array(items), Ok(index)) if index < items.len() => &mut items[index],
            (Value::Object(fields), _) => fields.entry(name.clone()).or_insert_with(|| json!({})),
            _ => return,
        };
    }
    match (at, last.parse::<usize>(), value) {
        (Value::Array(items), Ok(index), Some(value)) if index < items.len() => items[index] = value,
        (Value::Array(items), Ok(index), None) if index < items.len() => {
            items.remove(index);
        }
        (Value::Object(fields), _, Some(value)) => {
            fields.insert(last.clone(), value);
        }
        (Value::Object(fields), _, None) => {
            fields.remove(last);
        }
        _ => {}
    }
}
