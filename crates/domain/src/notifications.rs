//! S3 event notification configurations: S3's overlap rules, the platform's own rules, and the
//! read-merge-write plan that adds ours without dropping anything of the customer's.
//!
//! S3 refuses two rules that share an event type when their key filters overlap: prefixes
//! overlap when one starts with the other, suffixes when one ends with the other, and a missing
//! prefix or suffix overlaps everything. moto does not enforce this, so it is decided here,
//! before anything is written.

use std::fmt;

use crate::catalogue::{ErrorCode, Problem};
use crate::names::KeyPrefix;

/// Where a rule sends its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Queue(String),
    Topic(String),
    Lambda(String),
}

impl Destination {
    pub fn arn(&self) -> &str {
        match self {
            Destination::Queue(arn) | Destination::Topic(arn) | Destination::Lambda(arn) => arn,
        }
    }
}

/// One rule of a bucket's notification configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationRule {
    pub id: Option<String>,
    pub destination: Destination,
    /// Event types as S3 names them, such as `s3:ObjectCreated:*`.
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// A bucket's whole notification configuration, as S3 stores it and replaces it on every write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationConfig {
    pub rules: Vec<NotificationRule>,
    /// Whether events also go to EventBridge: it has no filters and never conflicts, but a write
    /// that left it out would switch it off.
    pub eventbridge: bool,
}

/// The three rules the platform keeps on every configuration's prefix, by id and event family.
pub const OUR_RULES: [(&str, &str); 3] = [
    ("gds:objectcreated", "s3:ObjectCreated:*"),
    ("gds:objectremoved", "s3:ObjectRemoved:*"),
    ("gds:objectrestore", "s3:ObjectRestore:*"),
];

/// Whether a rule is the platform's: its id starts with `gds:`.
pub fn is_ours(rule: &NotificationRule) -> bool {
    rule.id.as_deref().is_some_and(|id| id.starts_with("gds:"))
}

/// The platform's rules for a configuration: its prefix, to `queue_arn`. `id_suffix` tells the
/// rules of several configurations on one bucket apart (rule ids are unique per bucket); the
/// first configuration of a bucket has none, so its ids are exactly `gds:objectcreated` etc.
pub fn our_rules(queue_arn: &str, prefix: Option<&KeyPrefix>, id_suffix: Option<&str>) -> Vec<NotificationRule> {
    OUR_RULES
        .iter()
        .map(|(id, event)| NotificationRule {
            id: Some(match id_suffix {
                Some(suffix) => format!("{id}:{suffix}"),
                None => (*id).to_owned(),
            }),
            destination: Destination::Queue(queue_arn.to_owned()),
            events: vec![(*event).to_owned()],
            prefix: prefix.map(|p| p.as_str().to_owned()),
            suffix: None,
        })
        .collect()
}

/// Whether two event types share an event: equal, or one is the other's family wildcard
/// (`s3:ObjectCreated:*` and `s3:ObjectCreated:Put`).
pub fn event_types_overlap(a: &str, b: &str) -> bool {
    fn covers(wildcard: &str, other: &str) -> bool {
        wildcard.strip_suffix('*').is_some_and(|family| other.starts_with(family))
    }
    a == b || covers(a, b) || covers(b, a)
}

/// S3's prefix overlap: one starts with the other; none is the empty prefix, which overlaps all.
pub fn prefixes_overlap(a: Option<&str>, b: Option<&str>) -> bool {
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    a.starts_with(b) || b.starts_with(a)
}

/// S3's suffix overlap: one ends with the other; none overlaps all.
pub fn suffixes_overlap(a: Option<&str>, b: Option<&str>) -> bool {
    let (a, b) = (a.unwrap_or_default(), b.unwrap_or_default());
    a.ends_with(b) || b.ends_with(a)
}

/// The event types `a` and `b` share when their filters overlap (an empty list when S3 would
/// accept them side by side).
pub fn shared_events(a: &NotificationRule, b: &NotificationRule) -> Vec<String> {
    if !prefixes_overlap(a.prefix.as_deref(), b.prefix.as_deref())
        || !suffixes_overlap(a.suffix.as_deref(), b.suffix.as_deref())
    {
        return Vec::new();
    }
    let mut shared: Vec<String> = Vec::new();
    for x in &a.events {
        for y in &b.events {
            if event_types_overlap(x, y) {
                // Name the customer's side, which is what the user will look for.
                let name = y.clone();
                if !shared.contains(&name) {
                    shared.push(name);
                }
            }
        }
    }
    shared
}

/// How an existing rule collides with the platform's rules for a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    /// The existing rule's id (S3 gives every rule one; a hand-written document may not).
    pub rule_id: Option<String>,
    pub rule_prefix: Option<String>,
    pub rule_suffix: Option<String>,
    /// The existing rule's event types that the platform's rules also need.
    pub events: Vec<String>,
    /// Whether the existing rule is the platform's own, kept for another configuration.
    pub ours: bool,
}

impl Collision {
    /// The existing rule receives every event the platform needs on `prefix`: its prefix covers
    /// ours and it has no suffix.
    fn covers(&self, prefix: Option<&str>) -> bool {
        let theirs = self.rule_prefix.as_deref().unwrap_or_default();
        prefix.unwrap_or_default().starts_with(theirs) && self.rule_suffix.is_none()
    }

    fn same_prefix(&self, prefix: Option<&str>) -> bool {
        self.rule_prefix.as_deref().unwrap_or_default() == prefix.unwrap_or_default()
    }

    fn describe(&self) -> String {
        let id = self.rule_id.as_deref().map_or_else(|| "a rule without an id".to_owned(), |id| format!("rule '{id}'"));
        let mut filter = match self.rule_prefix.as_deref() {
            None | Some("") => "the whole bucket".to_owned(),
            Some(p) => format!("prefix '{p}'"),
        };
        if let Some(suffix) = &self.rule_suffix {
            filter.push_str(&format!(" and suffix '{suffix}'"));
        }
        format!("{id} on {filter}")
    }
}

/// Why the platform's rules cannot be added to a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationConflict {
    /// The prefix the platform's rules were for.
    pub prefix: Option<String>,
    pub collisions: Vec<Collision>,
}

impl NotificationConflict {
    /// The catalogue entry that says what collides: the customer's own notification already
    /// covering the prefix; a rule on the prefix itself; or rules on overlapping prefixes.
    pub fn problem(&self) -> Problem {
        let prefix = self.prefix.as_deref();
        let events = {
            let mut all: Vec<&str> = Vec::new();
            for c in &self.collisions {
                for e in &c.events {
                    if !all.contains(&e.as_str()) {
                        all.push(e);
                    }
                }
            }
            all.join(", ")
        };
        let rules = self.collisions.iter().map(Collision::describe).collect::<Vec<_>>().join("; ");
        let event_type_msg = format!(" on event types {events} ({rules})");
        if self.collisions.iter().any(|c| !c.ours && c.covers(prefix)) {
            return ErrorCode::CustomerNotificationExists.into();
        }
        let shown_prefix = match prefix {
            None | Some("") => "the whole bucket".to_owned(),
            Some(p) => format!("'{p}'"),
        };
        if self.collisions.iter().all(|c| c.same_prefix(prefix)) {
            return Problem::new(
                ErrorCode::NotificationConflictForPrefix,
                &[("prefix", &shown_prefix), ("eventTypeMsg", &event_type_msg)],
            );
        }
        let others: Vec<String> = self
            .collisions
            .iter()
            .map(|c| match c.rule_prefix.as_deref() {
                None | Some("") => "the whole bucket".to_owned(),
                Some(p) => format!("'{p}'"),
            })
            .collect();
        Problem::new(
            ErrorCode::NotificationOverlapDetail,
            &[
                ("prefixMsg", &format!(": {} and key prefix {shown_prefix}", others.join(", "))),
                ("eventTypeMsg", &event_type_msg),
            ],
        )
    }
}

impl fmt::Display for NotificationConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.problem().message())
    }
}

/// The configuration to write so that `desired` (the platform's rules for one prefix) is in
/// place, and what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationPlan {
    pub merged: NotificationConfig,
    /// The platform's rules that were already there and are replaced: leftovers of a deleted
    /// configuration, or this configuration's own from an earlier run.
    pub adopted: Vec<NotificationRule>,
    /// Whether `merged` differs from what the bucket has (no write is needed otherwise).
    pub changed: bool,
}

/// Plans the read-merge-write of the platform's rules onto a bucket's configuration.
///
/// Every rule that is not the platform's is kept as it is. Of the platform's existing rules,
/// those for which `keep` says true (they serve another live configuration on this bucket) are
/// kept; the rest are leftovers and are replaced by `desired`. An existing rule kept that
/// shares an event type with `desired` on an overlapping filter is a conflict: S3 would refuse
/// the write.
pub fn plan(
    existing: &NotificationConfig,
    desired: &[NotificationRule],
    keep: impl Fn(&NotificationRule) -> bool,
) -> Result<NotificationPlan, NotificationConflict> {
    let mut kept = Vec::new();
    let mut adopted = Vec::new();
    let mut collisions = Vec::new();
    for rule in &existing.rules {
        let ours = is_ours(rule);
        if ours && !keep(rule) {
            adopted.push(rule.clone());
            continue;
        }
        let mut events = Vec::new();
        for wanted in desired {
            for e in shared_events(wanted, rule) {
                if !events.contains(&e) {
                    events.push(e);
                }
            }
        }
        if !events.is_empty() {
            collisions.push(Collision {
                rule_id: rule.id.clone(),
                rule_prefix: rule.prefix.clone(),
                rule_suffix: rule.suffix.clone(),
                events,
                ours,
            });
        }
        kept.push(rule.clone());
    }
    if !collisions.is_empty() {
        let prefix = desired.first().and_then(|r| r.prefix.clone());
        return Err(NotificationConflict { prefix, collisions });
    }
    kept.extend(desired.iter().cloned());
    let merged = NotificationConfig { rules: kept, eventbridge: existing.eventbridge };
    let changed = !same_rules(&merged, existing);
    Ok(NotificationPlan { merged, adopted, changed })
}

/// Removes the rules for which `remove` says true, keeping everything else as it is.
pub fn without(existing: &NotificationConfig, remove: impl Fn(&NotificationRule) -> bool) -> NotificationConfig {
    NotificationConfig {
        rules: existing.rules.iter().filter(|r| !remove(r)).cloned().collect(),
        eventbridge: existing.eventbridge,
    }
}

/// Whether two configurations hold the same rules, in any order.
fn same_rules(a: &NotificationConfig, b: &NotificationConfig) -> bool {
    a.eventbridge == b.eventbridge
        && a.rules.len() == b.rules.len()
        && a.rules.iter().all(|r| b.rules.contains(r))
        && b.rules.iter().all(|r| a.rules.contains(r))
}

#[cfg(test)]
mod tests {
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;

    const QUEUE: &str = "arn:aws:sqs:eu-central-1:111111111111:byos-events-eu-central-1";
    const THEIRS: &str = "arn:aws:sqs:eu-central-1:222222222222:customer-queue";

    fn rule(id: &str, events: &[&str], prefix: Option<&str>, suffix: Option<&str>) -> NotificationRule {
        NotificationRule {
            id: Some(id.to_owned()),
            destination: Destination::Queue(THEIRS.to_owned()),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            prefix: prefix.map(str::to_owned),
            suffix: suffix.map(str::to_owned),
        }
    }

    fn ours(prefix: Option<&str>) -> Vec<NotificationRule> {
        let prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap());
        our_rules(QUEUE, prefix.as_ref(), None)
    }

    #[test]
    fn event_type_overlap() {
        let cases = [
            ("s3:ObjectCreated:*", "s3:ObjectCreated:Put", true),
            ("s3:ObjectCreated:Put", "s3:ObjectCreated:*", true),
            ("s3:ObjectCreated:Put", "s3:ObjectCreated:Put", true),
            ("s3:ObjectCreated:Put", "s3:ObjectCreated:Post", false),
            ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", false),
            ("s3:ObjectRemoved:*", "s3:ObjectRemoved:DeleteMarkerCreated", true),
            ("s3:ObjectRestore:*", "s3:ObjectRestore:Completed", true),
            ("s3:LifecycleExpiration:*", "s3:ObjectRemoved:Delete", false),
            ("s3:ObjectTagging:*", "s3:ObjectCreated:*", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(event_types_overlap(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn filter_overlap() {
        assert!(prefixes_overlap(None, Some("a/")));
        assert!(prefixes_overlap(Some("a/"), Some("a/b/")));
        assert!(!prefixes_overlap(Some("a/"), Some("b/")));
        assert!(!prefixes_overlap(Some("a/"), Some("ab/")));
        assert!(suffixes_overlap(Some("jpg"), Some("pg")), "AWS's own example");
        assert!(suffixes_overlap(None, Some(".bam")));
        assert!(!suffixes_overlap(Some(".bam"), Some(".bai")));
    }

    fn check(existing: Vec<NotificationRule>, prefix: Option<&str>, expect: Expect) {
        let config = NotificationConfig { rules: existing, eventbridge: false };
        let actual = match plan(&config, &ours(prefix), |_| false) {
            Ok(plan) => format!(
                "ok: {} rules, adopted {:?}, changed {}",
                plan.merged.rules.len(),
                plan.adopted.iter().filter_map(|r| r.id.as_deref()).collect::<Vec<_>>(),
                plan.changed
            ),
            Err(conflict) => {
                let p = conflict.problem();
                format!("{}: {}", p.entry().code, p.message())
            }
        };
        expect.assert_eq(&actual);
    }

    #[test]
    fn plans_and_conflicts() {
        check(Vec::new(), Some("data/"), expect!["ok: 3 rules, adopted [], changed true"]);
        check(
            vec![rule("thumbnails", &["s3:ObjectCreated:*"], Some("images/"), None)],
            Some("data/"),
            expect!["ok: 4 rules, adopted [], changed true"],
        );
        check(
            vec![rule("bams", &["s3:ObjectCreated:*"], Some("data/"), Some(".bam"))],
            Some("data/"),
            expect![
                "notification-conflict-for-prefix: Found conflicting storage container notifications for 'data/' on event types s3:ObjectCreated:* (rule 'bams' on prefix 'data/' and suffix '.bam')"
            ],
        );
        check(
            vec![rule("everything", &["s3:ObjectCreated:Put", "s3:ObjectRemoved:*"], None, None)],
            Some("data/"),
            expect![
                "customer-notification-exists: Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification"
            ],
        );
        check(
            vec![rule("mine", &["s3:ObjectCreated:*"], Some("data/"), None)],
            Some("data/"),
            expect![
                "customer-notification-exists: Volume Configuration cannot be provisioned: storage container is already set up for customer's own notification"
            ],
        );
        check(
            vec![rule("raw", &["s3:ObjectRemoved:Delete"], Some("data/raw/"), None)],
            Some("data/"),
            expect![
                "notification-overlap: Found conflicting storage container notifications with overlapping prefixes: 'data/raw/' and key prefix 'data/' on event types s3:ObjectRemoved:Delete (rule 'raw' on prefix 'data/raw/')"
            ],
        );
        check(
            vec![rule("jpgs", &["s3:ObjectCreated:*"], None, Some(".jpg"))],
            Some("data/"),
            expect![
                "notification-overlap: Found conflicting storage container notifications with overlapping prefixes: the whole bucket and key prefix 'data/' on event types s3:ObjectCreated:* (rule 'jpgs' on the whole bucket and suffix '.jpg')"
            ],
        );
        check(
            vec![rule("tags", &["s3:ObjectTagging:*"], None, None)],
            None,
            expect!["ok: 4 rules, adopted [], changed true"],
        );
        // Leftovers of a deleted configuration are adopted, not reported.
        let mut leftovers = ours(Some("data/"));
        leftovers.push(rule("thumbnails", &["s3:ObjectCreated:*"], Some("images/"), None));
        check(
            leftovers,
            Some("data/"),
            expect![[
                r#"ok: 4 rules, adopted ["gds:objectcreated", "gds:objectremoved", "gds:objectrestore"], changed false"#
            ]],
        );
    }

    #[test]
    fn an_up_to_date_bucket_needs_no_write() {
        let existing = NotificationConfig { rules: ours(Some("data/")), eventbridge: true };
        let planned = plan(&existing, &ours(Some("data/")), |_| false).unwrap();
        assert!(!planned.changed);
        assert!(planned.merged.eventbridge, "EventBridge stays on");
        assert_eq!(planned.adopted.len(), 3);
    }

    #[test]
    fn rules_of_other_live_configurations_are_kept() {
        let existing = NotificationConfig { rules: ours(Some("a/")), eventbridge: false };
        let prefix = KeyPrefix::parse("b/").unwrap();
        let second = our_rules(QUEUE, Some(&prefix), Some("b0c1d2e3"));
        let planned = plan(&existing, &second, |r| r.prefix.as_deref() == Some("a/")).unwrap();
        assert_eq!(planned.merged.rules.len(), 6);
        assert!(planned.adopted.is_empty());
        assert_eq!(second[0].id.as_deref(), Some("gds:objectcreated:b0c1d2e3"));
        // A live configuration on an overlapping prefix is a conflict, never silently replaced.
        let nested = KeyPrefix::parse("a/x/").unwrap();
        let conflict = plan(&existing, &our_rules(QUEUE, Some(&nested), Some("ffff0000")), |_| true);
        assert!(conflict.is_err_and(|c| c.collisions.iter().all(|c| c.ours) && c.collisions.len() == 3));
    }

    #[test]
    fn removing_ours_keeps_the_rest() {
        let mut rules = ours(Some("data/"));
        rules.push(rule("thumbnails", &["s3:ObjectCreated:*"], Some("images/"), None));
        let config = NotificationConfig { rules, eventbridge: true };
        let left = without(&config, is_ours);
        assert_eq!(left.rules.len(), 1);
        assert_eq!(left.rules[0].id.as_deref(), Some("thumbnails"));
        assert!(left.eventbridge);
    }

    fn filter() -> impl Strategy<Value = Option<String>> {
        prop_oneof![Just(None), "[ab/]{0,3}".prop_map(Some)]
    }

    fn any_rule() -> impl Strategy<Value = NotificationRule> {
        let event = prop_oneof![
            Just("s3:ObjectCreated:*"),
            Just("s3:ObjectCreated:Put"),
            Just("s3:ObjectRemoved:*"),
            Just("s3:ObjectRemoved:Delete"),
            Just("s3:ObjectRestore:Completed"),
            Just("s3:ObjectTagging:*"),
        ];
        (proptest::collection::vec(event, 1..3), filter(), filter()).prop_map(|(events, prefix, suffix)| {
            NotificationRule {
                id: Some("customer".to_owned()),
                destination: Destination::Queue(THEIRS.to_owned()),
                events: events.into_iter().map(str::to_owned).collect(),
                prefix,
                suffix,
            }
        })
    }

    /// The keys a filter matches, among all keys of up to `len` characters over {a, b, /}.
    fn matches(rule: &NotificationRule, key: &str) -> bool {
        key.starts_with(rule.prefix.as_deref().unwrap_or_default())
            && key.ends_with(rule.suffix.as_deref().unwrap_or_default())
    }

    fn keys(len: usize) -> Vec<String> {
        let mut all = vec![String::new()];
        let mut frontier = vec![String::new()];
        for _ in 0..len {
            frontier = frontier.iter().flat_map(|k| ['a', 'b', '/'].map(|c| format!("{k}{c}"))).collect();
            all.extend(frontier.iter().cloned());
        }
        all
    }

    proptest! {
        /// S3's syntactic overlap equals "some key matches both filters" (keys long enough to
        /// hold both prefixes and both suffixes side by side).
        #[test]
        fn overlap_means_a_shared_key(a in any_rule(), b in any_rule()) {
            let syntactic = prefixes_overlap(a.prefix.as_deref(), b.prefix.as_deref())
                && suffixes_overlap(a.suffix.as_deref(), b.suffix.as_deref());
            let semantic = keys(6).iter().any(|k| matches(&a, k) && matches(&b, k));
            prop_assert_eq!(syntactic, semantic);
        }

        #[test]
        fn sharing_is_symmetric(a in any_rule(), b in any_rule()) {
            prop_assert_eq!(shared_events(&a, &b).is_empty(), shared_events(&b, &a).is_empty());
        }

        /// A successful plan keeps every customer rule and leaves no two rules that S3 would
        /// refuse; a failed one names only rules that really collide.
        #[test]
        fn plans_are_writable(existing in proptest::collection::vec(any_rule(), 0..4), prefix in "[ab]{0,2}/") {
            let prefix = KeyPrefix::parse(&prefix).ok();
            let desired = our_rules(QUEUE, prefix.as_ref(), None);
            let config = NotificationConfig { rules: existing.clone(), eventbridge: false };
            match plan(&config, &desired, |_| false) {
                Ok(plan) => {
                    for r in &existing {
                        prop_assert!(plan.merged.rules.contains(r));
                    }
                    for d in &desired {
                        for r in &existing {
                            prop_assert!(shared_events(d, r).is_empty());
                        }
                    }
                }
                Err(conflict) => {
                    prop_assert!(!conflict.collisions.is_empty());
                    let problem = conflict.problem();
                    prop_assert!(!problem.message().contains('{'), "unfilled placeholder");
                    for c in &conflict.collisions {
                        let colliding = existing
                            .iter()
                            .filter(|r| r.prefix == c.rule_prefix && r.suffix == c.rule_suffix)
                            .any(|r| desired.iter().any(|d| !shared_events(d, r).is_empty()));
                        prop_assert!(colliding);
                    }
                }
            }
        }
    }
}
