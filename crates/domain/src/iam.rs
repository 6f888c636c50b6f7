//! An IAM policy evaluator: identity and resource policies, Allow and Deny, wildcards,
//! NotAction and NotResource, conditions, and AWS's evaluation rules.
//!
//! `byos aws doctor` asks it whether the platform's IAM user may do each thing the platform
//! needs, given the user's policies and the bucket's (or the KMS key's) policy, so that a
//! missing permission is reported before anything fails. It follows AWS's documented evaluation
//! logic (the "Policy evaluation logic" page of the IAM User Guide and its policy element
//! reference pages). Nothing here does I/O: the caller fetches the documents.
//!
//! # The pieces
//!
//! - [`PolicyDocument::parse`] reads a policy's JSON into a typed document, rejecting what AWS
//!   rejects (a bad `Effect`, both `Action` and `NotAction`, ...) with a [`PolicyError`] that names
//!   the statement. [`PolicyDocument::validate`] adds the rules that depend on where the policy
//!   is attached ([`PolicyKind`]).
//! - [`Request`] is the request context: principal, action, resource and context keys.
//! - [`PolicyDocument::evaluate`] evaluates one document: [`Outcome`].
//! - [`Policies::decide`] (and the shorthands [`evaluate`] and [`evaluate_kms`]) combine the
//!   caller's identity policies, an optional permissions boundary, and a bucket or KMS key
//!   policy into a [`Decision`].
//!
//! # What is implemented
//!
//! - `Action`/`NotAction` (case-insensitive, `*` and `?`), `Resource`/`NotResource`
//!   (case-sensitive, `*` spans `/` and `:`), `Principal`/`NotPrincipal` (`"*"`, an account id or
//!   `arn:…:iam::ACCOUNT:root` for every principal of the account, exact ARNs otherwise, a role
//!   ARN for that role's sessions; no wildcards inside ARNs), and `Condition`.
//! - Condition operators: `String*`, `Numeric*`, `Date*` (ISO 8601 or epoch seconds), `Bool`,
//!   `BinaryEquals`, `IpAddress`/`NotIpAddress` (IPv4 and IPv6 CIDR), `Arn*` (segment by
//!   segment), `Null`; the `…IfExists` suffix and the `ForAnyValue:`/`ForAllValues:` prefixes.
//!   A key absent from the request makes a negated operator true and the others false.
//! - Policy variables (`${aws:username}`, `${key, 'default'}`, `${*}`, `${?}`, `${$}`) in
//!   `Resource`/`NotResource` and in the values of string and ARN conditions, for
//!   `"Version": "2012-10-17"` only. A variable without a value (absent, or multi-valued) makes
//!   the resource entry not match, and makes a condition, hence its statement, not apply.
//! - Combining, same account: an explicit deny anywhere wins; otherwise an identity policy allow
//!   (within the permissions boundary, when there is one) or a resource policy allow. A resource
//!   policy grant to a user, a session or `"*"` stands on its own; one to a role ARN is still
//!   limited by the boundary; one to the account (`root` or the account id) only delegates to
//!   IAM, so the identity policies must allow too. For a KMS key policy, identity policies
//!   count only through such a delegation. The account root user is allowed by default.
//! - `Principal` in an identity policy: [`PolicyDocument::validate`] rejects it, as AWS does;
//!   [`PolicyDocument::evaluate`] ignores it, so a policy fetched from AWS always evaluates.
//!   A bare account id in a `Principal` is read in the resource's partition (any), a `root`
//!   ARN in its own. An anonymous caller (no principal) has no identity policies.
//! - `NotPrincipal` with `Deny` follows AWS's caveat: the caller's account, then its role, then
//!   the caller itself are each checked, so the statement applies unless all of them are
//!   listed, and always applies to a caller with a permissions boundary.
//!
//! # What is not
//!
//! - SCPs, RCPs, session policies, ACLs, VPC endpoint policies, and cross-account requests
//!   (where both sides must allow): callers decide same-account questions only.
//! - Statements this code cannot decide (an unknown condition operator, `NotPrincipal` with
//!   `Allow`, which AWS no longer supports) are never guessed: they make the result
//!   [`Access::Undetermined`] (or [`Outcome::Unknown`]) when they could change it, and are
//!   listed in [`Decision::unevaluated`] so the caller can warn rather than pass or fail.
//! - Role ARNs are matched to sessions by role name, ignoring the role's path, which session
//!   ARNs do not carry; `aws:userid` and other unique ids are never derived.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::dates::days_from_civil;
use serde_json::{Map, Value};

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("the policy is not JSON: {0}")]
    Json(String),
    #[error("the policy must be a JSON object")]
    NotAnObject,
    #[error("the policy's Version must be \"2012-10-17\" or \"2008-10-17\", not {0}")]
    Version(String),
    #[error("the policy has no Statement")]
    NoStatement,
    #[error("the policy has an unknown element {0:?}")]
    UnknownElement(String),
    #[error("{at}: {problem}")]
    Statement { at: StatementId, problem: StatementProblem },
}

/// What is wrong with one statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementProblem {
    #[error("the statement must be a JSON object")]
    NotAnObject,
    #[error("unknown element {0:?}")]
    UnknownElement(String),
    #[error("{0} must be a string")]
    NotAString(&'static str),
    #[error("Effect is missing")]
    NoEffect,
    #[error("Effect must be \"Allow\" or \"Deny\", not {0}")]
    Effect(String),
    #[error("has both {0} and Not{0}")]
    Both(&'static str),
    #[error("has neither {0} nor Not{0}")]
    Missing(&'static str),
    #[error("{0} must be a string or an array of strings")]
    NotStrings(&'static str),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("{0} must be \"*\" or an object of principal types")]
    BadPrincipal(&'static str),
    #[error("unknown principal type {0:?} (expected AWS, Service, Federated or CanonicalUser)")]
    PrincipalType(String),
    #[error("Condition must be an object of condition operators")]
    ConditionNotAnObject,
    #[error("condition operator {0:?} must map context keys to values")]
    ConditionOperator(String),
    #[error("condition {operator} {key:?}: values must be strings, numbers or booleans, or a non-empty array of them")]
    ConditionValue { operator: String, key: String },
    #[error("an identity policy cannot have Principal or NotPrincipal")]
    PrincipalInIdentityPolicy,
    #[error("NotPrincipal with Allow is not supported")]
    NotPrincipalWithAllow,
}

/// Which statement: its position in the document and its `Sid`, as written, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementId {
    /// Zero-based position in the `Statement` array (0 for a single statement object).
    pub index: usize,
    pub sid: Option<String>,
}

impl fmt::Display for StatementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Statement[{}]", self.index)?;
        match &self.sid {
            Some(sid) => write!(f, " (Sid {sid:?})"),
            None => Ok(()),
        }
    }
}

/// The policy language version: it decides whether `${...}` policy variables are substituted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `"2008-10-17"`, or no `Version` at all: `${...}` is literal text.
    V2008_10_17,
    /// `"2012-10-17"`: policy variables are substituted from the request context.
    V2012_10_17,
}

/// Where a policy is attached, which decides how `Principal` is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role (or a permissions boundary): applies to that identity,
    /// so `Principal` is meaningless and ignored by [`PolicyDocument::evaluate`].
    Identity,
    /// Attached to a resource (a bucket policy, a KMS key policy): each statement applies only to
    /// the principals its `Principal`/`NotPrincipal` names.
    Resource,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    version: PolicyVersion,
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

/// An element and its `Not` twin: `Only` for `Action`, `AllBut` for `NotAction`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed<T> {
    Only(T),
    AllBut(T),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    id: StatementId,
    effect: Effect,
    /// Lower-cased patterns: actions compare case-insensitively.
    actions: Listed<Vec<Vec<Tok>>>,
    /// As written: policy variables are resolved per request.
    resources: Option<Listed<Vec<String>>>,
    principals: Option<Listed<Principals>>,
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Principals {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    any: bool,
    aws: Vec<String>,
    others: Vec<String>,
}

/// One (operator, key) pair of a `Condition` block; its values are OR-ed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    /// As written, for reporting.
    operator: String,
    set: Option<SetOp>,
    if_exists: bool,
    /// `None` for an operator this code does not know.
    op: Option<Operator>,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Operator {
    kind: Kind,
    negated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    StringIgnoreCase,
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

const fn op(kind: Kind, negated: bool) -> Operator {
    Operator { kind, negated }
}

const OPERATORS: [(&str, Operator); 27] = [
    ("StringEquals", op(Kind::String, false)),
    ("StringNotEquals", op(Kind::String, true)),
    ("StringEqualsIgnoreCase", op(Kind::StringIgnoreCase, false)),
    ("StringNotEqualsIgnoreCase", op(Kind::StringIgnoreCase, true)),
    ("StringLike", op(Kind::StringLike, false)),
    ("StringNotLike", op(Kind::StringLike, true)),
    ("NumericEquals", op(Kind::Numeric(Cmp::Eq), false)),
    ("NumericNotEquals", op(Kind::Numeric(Cmp::Eq), true)),
    ("NumericLessThan", op(Kind::Numeric(Cmp::Lt), false)),
    ("NumericLessThanEquals", op(Kind::Numeric(Cmp::Le), false)),
    ("NumericGreaterThan", op(Kind::Numeric(Cmp::Gt), false)),
    ("NumericGreaterThanEquals", op(Kind::Numeric(Cmp::Ge), false)),
    ("DateEquals", op(Kind::Date(Cmp::Eq), false)),
    ("DateNotEquals", op(Kind::Date(Cmp::Eq), true)),
    ("DateLessThan", op(Kind::Date(Cmp::Lt), false)),
    ("DateLessThanEquals", op(Kind::Date(Cmp::Le), false)),
    ("DateGreaterThan", op(Kind::Date(Cmp::Gt), false)),
    ("DateGreaterThanEquals", op(Kind::Date(Cmp::Ge), false)),
    ("Bool", op(Kind::Bool, false)),
    ("BinaryEquals", op(Kind::Binary, false)),
    ("IpAddress", op(Kind::Ip, false)),
    ("NotIpAddress", op(Kind::Ip, true)),
    ("ArnEquals", op(Kind::Arn, false)),
    ("ArnLike", op(Kind::Arn, false)),
    ("ArnNotEquals", op(Kind::Arn, true)),
    ("ArnNotLike", op(Kind::Arn, true)),
    ("Null", op(Kind::Null, false)),
];

const STATEMENT_ELEMENTS: [&str; 9] =
    ["Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "NotPrincipal", "Condition"];

impl PolicyDocument {
    /// Parses a policy document. It checks what holds wherever the policy is attached; see
    /// [`PolicyDocument::validate`] (or [`PolicyDocument::parse_as`]) for the rest.
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(json).map_err(|e| PolicyError::Json(e.to_string()))?;
        let Value::Object(top) = value else { return Err(PolicyError::NotAnObject) };
        let mut version = PolicyVersion::V2008_10_17;
        let mut statements = None;
        for (element, value) in &top {
            match element.as_str() {
                "Version" => {
                    version = match value.as_str() {
                        Some("2012-10-17") => PolicyVersion::V2012_10_17,
                        Some("2008-10-17") => PolicyVersion::V2008_10_17,
                        _ => return Err(PolicyError::Version(value.to_string())),
                    }
                }
                "Id" => {}
                "Statement" => statements = Some(value),
                other => return Err(PolicyError::UnknownElement(other.to_owned())),
            }
        }
        let statements: Vec<&Value> = match statements {
            None => return Err(PolicyError::NoStatement),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(one) => vec![one],
        };
        let statements = statements
            .into_iter()
            .enumerate()
            .map(|(index, value)| parse_statement(index, value))
            .collect::<Result<_, _>>()?;
        Ok(Self { version, statements })
    }

    /// Parses a policy and checks it for where it is attached ([`PolicyDocument::validate`]).
    pub fn parse_as(json: &str, kind: PolicyKind) -> Result<Self, PolicyError> {
        let document = Self::parse(json)?;
        document.validate(kind)?;
        Ok(document)
    }

    /// Checks the rules that depend on where the policy is attached, as AWS does when the
    /// policy is saved: an identity policy needs `Resource` (or `NotResource`) and cannot name a
    /// `Principal`; a resource policy needs `Principal` (or `NotPrincipal`, with `Deny` only).
    /// [`PolicyDocument::evaluate`] does not require this: it ignores `Principal` in identity
    /// policies, reads a missing `Resource` as "the resource the policy is attached to", and
    /// never applies a resource policy statement without a principal.
    pub fn validate(&self, kind: PolicyKind) -> Result<(), PolicyError> {
        for statement in &self.statements {
            let problem = match kind {
                PolicyKind::Identity if statement.principals.is_some() => StatementProblem::PrincipalInIdentityPolicy,
                PolicyKind::Identity if statement.resources.is_none() => StatementProblem::Missing("Resource"),
                PolicyKind::Resource if statement.principals.is_none() => StatementProblem::Missing("Principal"),
                PolicyKind::Resource
                    if statement.effect == Effect::Allow && matches!(statement.principals, Some(Listed::AllBut(_))) =>
                {
                    StatementProblem::NotPrincipalWithAllow
                }
                _ => continue,
            };
            return Err(PolicyError::Statement { at: statement.id.clone(), problem });
        }
        Ok(())
    }

    pub fn version(&self) -> PolicyVersion {
        self.version
    }

    /// Evaluates this document alone against `request`: an explicit deny wins over an allow
    /// within the document; a statement that cannot be evaluated and could change the outcome
    /// makes it [`Outcome::Unknown`].
    pub fn evaluate(&self, request: &Request, kind: PolicyKind) -> Outcome {
        let source = match kind {
            PolicyKind::Identity => PolicySource::Identity(0),
            PolicyKind::Resource => PolicySource::Resource,
        };
        let verdict = self.verdict(request, kind, source, false);
        let allow = verdict.direct.or(verdict.role).or(verdict.account);
        let denies = verdict.deny.tri != Tri::False;
        let term = if denies { verdict.deny } else { allow };
        let Some(hit) = term.hit else { return Outcome::NotApplicable };
        match (term.tri, term.unsupported) {
            (Tri::Unknown, Some(unsupported)) => Outcome::Unknown { statement: hit.statement, unsupported },
            _ if denies => Outcome::ExplicitDeny { statement: hit.statement },
            _ => Outcome::Allow { statement: hit.statement },
        }
    }

    /// Every statement of the document that applies (or may apply) to `request`, sorted into
    /// denies and the three kinds of allow.
    fn verdict(&self, request: &Request, kind: PolicyKind, source: PolicySource, has_boundary: bool) -> Verdict {
        let variables = self.version == PolicyVersion::V2012_10_17;
        let mut verdict = Verdict::default();
        for statement in &self.statements {
            let applies = statement.applies(request, kind, variables, has_boundary);
            if applies.tri == Tri::False {
                continue;
            }
            let hit = Deciding { policy: source, statement: statement.id.clone() };
            if let Some(unsupported) = &applies.unsupported {
                verdict.unevaluated.push(Unevaluated {
                    policy: source,
                    statement: statement.id.clone(),
                    unsupported: unsupported.clone(),
                });
            }
            let term = Term { tri: applies.tri, hit: Some(hit), unsupported: applies.unsupported };
            let slot = match (statement.effect, applies.via) {
                (Effect::Deny, _) => &mut verdict.deny,
                (Effect::Allow, Via::Direct) => &mut verdict.direct,
                (Effect::Allow, Via::Role) => &mut verdict.role,
                (Effect::Allow, Via::Account) => &mut verdict.account,
            };
            *slot = std::mem::take(slot).or(term);
        }
        verdict
    }
}

fn parse_statement(index: usize, value: &Value) -> Result<Statement, PolicyError> {
    let fail = |problem| PolicyError::Statement { at: StatementId { index, sid: None }, problem };
    let Value::Object(map) = value else { return Err(fail(StatementProblem::NotAnObject)) };
    let sid = match map.get("Sid") {
        None => None,
        Some(Value::String(sid)) => Some(sid.clone()),
        Some(_) => return Err(fail(StatementProblem::NotAString("Sid"))),
    };
    let id = StatementId { index, sid };
    statement(map, id.clone()).map_err(|problem| PolicyError::Statement { at: id, problem })
}

fn statement(map: &Map<String, Value>, id: StatementId) -> Result<Statement, StatementProblem> {
    if let Some(unknown) = map.keys().find(|key| !STATEMENT_ELEMENTS.contains(&key.as_str())) {
        return Err(StatementProblem::UnknownElement(unknown.clone()));
    }
    let effect = match map.get("Effect") {
        None => return Err(StatementProblem::NoEffect),
        Some(Value::String(effect)) if effect == "Allow" => Effect::Allow,
        Some(Value::String(effect)) if effect == "Deny" => Effect::Deny,
        Some(other) => return Err(StatementProblem::Effect(other.to_string())),
    };
    let actions = pair(map, "Action", strings)?.ok_or(StatementProblem::Missing("Action"))?;
    let actions = actions.map(|list| list.iter().map(|action| literal_tokens(&action.to_lowercase())).collect());
    let resources = pair(map, "Resource", strings)?;
    let principals = pair(map, "Principal", principals)?;
    let conditions = match map.get("Condition") {
        None => Vec::new(),
        Some(block) => conditions(block)?,
    };
    Ok(Statement { id, effect, actions, resources, principals, conditions })
}

impl<T> Listed<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Listed<U> {
        match self {
            Listed::Only(t) => Listed::Only(f(t)),
            Listed::AllBut(t) => Listed::AllBut(f(t)),
        }
    }
}

/// Reads `name` or `Not<name>`, at most one of them.
fn pair<T>(
    map: &Map<String, Value>,
    name: &'static str,
    parse: impl Fn(&Value, &'static str) -> Result<T, StatementProblem>,
) -> Result<Option<Listed<T>>, StatementProblem> {
    let not_name = match name {
        "Action" => "NotAction",
        "Resource" => "NotResource",
        _ => "NotPrincipal",
    };
    match (map.get(name), map.get(not_name)) {
        (Some(_), Some(_)) => Err(StatementProblem::Both(name)),
        (Some(value), None) => Ok(Some(Listed::Only(parse(value, name)?))),
        (None, Some(value)) => Ok(Some(Listed::AllBut(parse(value, not_name)?))),
        (None, None) => Ok(None),
    }
}

fn strings(value: &Value, element: &'static str) -> Result<Vec<String>, StatementProblem> {
    let list = match value {
        Value::String(one) => vec![one.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(StatementProblem::NotStrings(element))?,
        _ => return Err(StatementProblem::NotStrings(element)),
    };
    if list.is_empty() { Err(StatementProblem::Empty(element)) } else { Ok(list) }
}

fn principals(value: &Value, element: &'static str) -> Result<Principals, StatementProblem> {
    let mut principals = Principals::default();
    match value {
        Value::String(star) if star == "*" => principals.any = true,
        Value::Object(map) if !map.is_empty() => {
            for (kind, names) in map {
                let names = strings(names, element)?;
                match kind.as_str() {
                    "AWS" => {
                        principals.any |= names.iter().any(|name| name == "*");
                        principals.aws.extend(names);
                    }
                    "Service" | "Federated" | "CanonicalUser" => principals.others.extend(names),
                    other => return Err(StatementProblem::PrincipalType(other.to_owned())),
                }
            }
        }
        _ => return Err(StatementProblem::BadPrincipal(element)),
    }
    Ok(principals)
}

fn conditions(block: &Value) -> Result<Vec<Condition>, StatementProblem> {
    let Value::Object(operators) = block else { return Err(StatementProblem::ConditionNotAnObject) };
    let mut conditions = Vec::new();
    for (operator, keys) in operators {
        let Value::Object(keys) = keys else { return Err(StatementProblem::ConditionOperator(operator.clone())) };
        let (set, if_exists, op) = parse_operator(operator);
        for (key, values) in keys {
            let values = condition_values(values)
                .ok_or_else(|| StatementProblem::ConditionValue { operator: operator.clone(), key: key.clone() })?;
            conditions.push(Condition { operator: operator.clone(), set, if_exists, op, key: key.clone(), values });
        }
    }
    Ok(conditions)
}

/// Condition values may be JSON strings, numbers or booleans; AWS compares their text.
fn condition_values(value: &Value) -> Option<Vec<String>> {
    fn scalar(value: &Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }
    match value {
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => items.iter().map(scalar).collect(),
        one => scalar(one).map(|text| vec![text]),
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.get(..prefix.len()).filter(|head| head.eq_ignore_ascii_case(prefix)).and_then(|_| text.get(prefix.len()..))
}

fn parse_operator(text: &str) -> (Option<SetOp>, bool, Option<Operator>) {
    let (set, rest) = if let Some(rest) = strip_prefix_ignore_case(text, "ForAnyValue:") {
        (Some(SetOp::ForAnyValue), rest)
    } else if let Some(rest) = strip_prefix_ignore_case(text, "ForAllValues:") {
        (Some(SetOp::ForAllValues), rest)
    } else {
        (None, text)
    };
    let suffix = "IfExists";
    let (if_exists, base) = match rest.len().checked_sub(suffix.len()).and_then(|at| rest.split_at_checked(at)) {
        Some((base, tail)) if tail.eq_ignore_ascii_case(suffix) => (true, base),
        _ => (false, rest),
    };
    let op = OPERATORS.iter().find(|(name, _)| name.eq_ignore_ascii_case(base)).map(|(_, op)| *op);
    // `Null` tests presence itself; AWS has no `NullIfExists`.
    let op = op.filter(|op| !(if_exists && op.kind == Kind::Null));
    (set, if_exists, op)
}

/// The request context AWS evaluates policies against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The caller's ARN (`arn:aws:iam::ACCOUNT:user/NAME`,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`, ...), a service principal name, or
    /// `None` for an anonymous caller.
    pub principal: Option<String>,
    /// `service:Action`, e.g. `s3:GetObject`.
    pub action: String,
    /// The resource's ARN, e.g. `arn:aws:s3:::bucket/key`.
    pub resource: String,
    /// Context keys (`aws:SecureTransport`, `s3:prefix`, ...) and their values. Key names are
    /// compared case-insensitively, as AWS does; a key with no values counts as absent.
    pub context: BTreeMap<String, Vec<String>>,
}

impl Request {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { principal: None, action: action.into(), resource: resource.into(), context: BTreeMap::new() }
    }

    /// Sets the caller and, unless already set, the context keys AWS derives from it:
    /// `aws:PrincipalArn` (the role's ARN, without its path, for a role session),
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:username` for an IAM user and
    /// `aws:userid` for a federated user.
    pub fn with_principal(mut self, principal: impl Into<String>) -> Self {
        let principal = principal.into();
        for (key, value) in derived_keys(&principal) {
            if self.context_values(key).is_none() {
                self.context.insert(key.to_owned(), vec![value]);
            }
        }
        self.principal = Some(principal);
        self
    }

    /// Sets a single-valued context key, replacing any key of the same name in another case.
    pub fn with_context(self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.with_context_values(key, [value.into()])
    }

    /// Sets a multi-valued context key (`aws:TagKeys`, ...).
    pub fn with_context_values<V: Into<String>>(
        mut self,
        key: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Self {
        let key = key.into();
        self.context.retain(|existing, _| !existing.eq_ignore_ascii_case(&key));
        self.context.insert(key, values.into_iter().map(Into::into).collect());
        self
    }

    /// The values of a context key, its name compared case-insensitively.
    pub fn context_values(&self, key: &str) -> Option<&[String]> {
        self.context.iter().find(|(name, _)| name.eq_ignore_ascii_case(key)).map(|(_, values)| values.as_slice())
    }
}

fn derived_keys(principal: &str) -> Vec<(&'static str, String)> {
    let Some(arn) = Arn::parse(principal) else { return Vec::new() };
    let mut principal_arn = principal.to_owned();
    let mut keys = vec![("aws:PrincipalAccount", arn.account.to_owned())];
    match (arn.service, arn.resource.split_once('/')) {
        ("iam", None) if arn.resource == "root" => keys.push(("aws:PrincipalType", "Account".to_owned())),
        ("iam", Some(("user", path_and_name))) => {
            keys.push(("aws:PrincipalType", "User".to_owned()));
            let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
            keys.push(("aws:username", name.to_owned()));
        }
        ("sts", Some(("assumed-role", role_and_session))) => {
            keys.push(("aws:PrincipalType", "AssumedRole".to_owned()));
            let role = role_and_session.split('/').next().unwrap_or(role_and_session);
            principal_arn = format!("arn:{}:iam::{}:role/{role}", arn.partition, arn.account);
        }
        ("sts", Some(("federated-user", name))) => {
            keys.push(("aws:PrincipalType", "FederatedUser".to_owned()));
            keys.push(("aws:userid", format!("{}:{name}", arn.account)));
        }
        _ => {}
    }
    keys.push(("aws:PrincipalArn", principal_arn));
    keys
}

/// What one document says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A `Deny` statement applies.
    ExplicitDeny { statement: StatementId },
    /// An `Allow` statement applies, and no `Deny` does.
    Allow { statement: StatementId },
    /// No statement applies.
    NotApplicable,
    /// A statement that might apply could not be evaluated (`unsupported` names the condition
    /// operator or the construct), and it could change the outcome.
    Unknown { statement: StatementId, unsupported: String },
}

/// The final answer for a request under a set of policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effect: Access,
    /// The statement that decided: the deny for [`Access::ExplicitlyDenied`], the grant for
    /// [`Access::Allowed`] (`None` when the caller is the account root user, allowed by default);
    /// `None` otherwise.
    pub deciding: Option<Deciding>,
    /// Statements that might have applied but could not be evaluated. They only matter when
    /// `effect` is [`Access::Undetermined`], or to tell an explicit deny from an implicit one.
    pub unevaluated: Vec<Unevaluated>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        self.effect == Access::Allowed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    ExplicitlyDenied,
    /// Nothing allows the request.
    ImplicitlyDenied,
    /// Whether the request is allowed depends on a statement that could not be evaluated.
    Undetermined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deciding {
    pub policy: PolicySource,
    pub statement: StatementId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unevaluated {
    pub policy: PolicySource,
    pub statement: StatementId,
    /// The condition operator as written, or `NotPrincipal with Allow`.
    pub unsupported: String,
}

/// Which of the policies given to [`Policies::decide`] a statement is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// The identity policy at this index of [`Policies::identity`].
    Identity(usize),
    Boundary,
    Resource,
    KeyPolicy,
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Identity(index) => write!(f, "identity policy #{index}"),
            PolicySource::Boundary => f.write_str("permissions boundary"),
            PolicySource::Resource => f.write_str("resource policy"),
            PolicySource::KeyPolicy => f.write_str("key policy"),
        }
    }
}

/// The resource's own policy, if any.
#[derive(Debug, Clone, Copy, Default)]
pub enum ResourcePolicy<'a> {
    #[default]
    Absent,
    /// A bucket policy or another resource policy that grants on its own.
    Standard(&'a PolicyDocument),
    /// A KMS key policy: identity policies count only if it delegates to the account.
    KmsKey(&'a PolicyDocument),
}

/// Every policy that applies to one request in one account.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policies<'a> {
    /// The caller's identity policies (user, group or role policies, managed and inline).
    pub identity: &'a [&'a PolicyDocument],
    /// The caller's permissions boundary, if it has one.
    pub boundary: Option<&'a PolicyDocument>,
    pub resource: ResourcePolicy<'a>,
}

impl Policies<'_> {
    /// AWS's same-account decision; see the module documentation for the rules.
    pub fn decide(&self, request: &Request) -> Decision {
        let has_boundary = self.boundary.is_some();
        let mut unevaluated = Vec::new();
        let mut deny = Term::default();
        let mut identity = Term::default();
        // An anonymous caller has no identity, hence no identity policies.
        if request.principal.is_some() {
            for (index, document) in self.identity.iter().enumerate() {
                let verdict =
                    document.verdict(request, PolicyKind::Identity, PolicySource::Identity(index), has_boundary);
                deny = deny.or(verdict.deny);
                identity = identity.or(verdict.direct);
                unevaluated.extend(verdict.unevaluated);
            }
        }
        if request.principal.as_deref().and_then(Arn::parse).is_some_and(|arn| arn.is_root()) {
            identity = identity.or(Term::yes());
        }
        let boundary = match self.boundary {
            None => Term::yes(),
            Some(document) => {
                let verdict = document.verdict(request, PolicyKind::Identity, PolicySource::Boundary, has_boundary);
                deny = deny.or(verdict.deny);
                unevaluated.extend(verdict.unevaluated);
                verdict.direct
            }
        };
        let (resource, kms) = match self.resource {
            ResourcePolicy::Absent => (None, false),
            ResourcePolicy::Standard(document) => (Some((document, PolicySource::Resource)), false),
            ResourcePolicy::KmsKey(document) => (Some((document, PolicySource::KeyPolicy)), true),
        };
        let mut resource_verdict = Verdict::default();
        if let Some((document, source)) = resource {
            resource_verdict = document.verdict(request, PolicyKind::Resource, source, has_boundary);
            deny = deny.or(std::mem::take(&mut resource_verdict.deny));
            unevaluated.append(&mut resource_verdict.unevaluated);
        }
        let Verdict { direct, role, account, .. } = resource_verdict;
        let through_role = role.and(boundary.clone());
        let allowed = if kms {
            direct.or(through_role).or(identity.and(account).and(boundary))
        } else {
            identity.and(boundary).or(direct).or(through_role)
        };
        let (effect, deciding) = match (deny.tri, allowed.tri) {
            (Tri::True, _) => (Access::ExplicitlyDenied, deny.hit),
            (_, Tri::False) => (Access::ImplicitlyDenied, None),
            (Tri::False, Tri::True) => (Access::Allowed, allowed.hit),
            _ => (Access::Undetermined, None),
        };
        Decision { effect, deciding, unevaluated }
    }
}

/// The common case: a caller's identity policies and, optionally, the resource's policy.
pub fn evaluate(request: &Request, identity: &[&PolicyDocument], resource: Option<&PolicyDocument>) -> Decision {
    let resource = resource.map_or(ResourcePolicy::Absent, ResourcePolicy::Standard);
    Policies { identity, boundary: None, resource }.decide(request)
}

/// A request on a KMS key: the key policy must allow, directly or by delegating to the account.
pub fn evaluate_kms(request: &Request, identity: &[&PolicyDocument], key_policy: &PolicyDocument) -> Decision {
    Policies { identity, boundary: None, resource: ResourcePolicy::KmsKey(key_policy) }.decide(request)
}

// ---------------------------------------------------------------------------------------------
// Evaluation: three-valued, because an unknown operator must neither match nor fail to match.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Tri {
    #[default]
    False,
    Unknown,
    True,
}

impl Tri {
    fn from(holds: bool) -> Self {
        if holds { Tri::True } else { Tri::False }
    }
}

/// A three-valued fact and the statement it came from (the first one, when several agree).
#[derive(Debug, Clone, Default)]
struct Term {
    tri: Tri,
    hit: Option<Deciding>,
    unsupported: Option<String>,
}

impl Term {
    fn yes() -> Self {
        Term { tri: Tri::True, hit: None, unsupported: None }
    }

    fn or(self, other: Term) -> Term {
        if other.tri > self.tri { other } else { self }
    }

    /// Keeps the left side's statement: the grant, limited by the right side.
    fn and(self, other: Term) -> Term {
        let tri = self.tri.min(other.tri);
        if tri == Tri::True { self } else { Term { tri, hit: None, unsupported: None } }
    }
}

/// How a resource policy statement's `Principal` matched the caller, weakest first; it decides
/// which other policies must also allow. Identity policy statements count as `Direct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Via {
    /// Through the caller's account (`root` or the account id): a delegation to IAM.
    Account,
    /// Through the role a session belongs to: limited by the role's permissions boundary.
    Role,
    /// The caller itself, or everyone.
    Direct,
}

#[derive(Debug, Default)]
struct Verdict {
    deny: Term,
    direct: Term,
    role: Term,
    account: Term,
    unevaluated: Vec<Unevaluated>,
}

struct Applies {
    tri: Tri,
    via: Via,
    unsupported: Option<String>,
}

impl Statement {
    fn applies(&self, request: &Request, kind: PolicyKind, variables: bool, has_boundary: bool) -> Applies {
        let no = Applies { tri: Tri::False, via: Via::Direct, unsupported: None };
        if !self.action_matches(&request.action) || !self.resource_matches(request, variables) {
            return no;
        }
        let mut applies = Applies { tri: Tri::True, via: Via::Direct, unsupported: None };
        if kind == PolicyKind::Resource {
            match &self.principals {
                None => return no,
                Some(Listed::Only(principals)) => match principals.matches(request.principal.as_deref()) {
                    Some(via) => applies.via = via,
                    None => return no,
                },
                Some(Listed::AllBut(_)) if self.effect == Effect::Allow => {
                    applies.tri = Tri::Unknown;
                    applies.unsupported = Some("NotPrincipal with Allow".to_owned());
                }
                // AWS: a NotPrincipal deny always applies to a caller with a permissions boundary.
                Some(Listed::AllBut(principals)) => {
                    if !has_boundary && principals.lists_whole_chain(request.principal.as_deref()) {
                        return no;
                    }
                }
            }
        }
        for condition in &self.conditions {
            match condition.evaluate(request, variables) {
                Tri::False => return no,
                Tri::Unknown => {
                    applies.tri = Tri::Unknown;
                    applies.unsupported.get_or_insert_with(|| condition.operator.clone());
                }
                Tri::True => {}
            }
        }
        applies
    }

    fn action_matches(&self, action: &str) -> bool {
        let action = action.to_lowercase();
        match &self.actions {
            Listed::Only(patterns) => patterns.iter().any(|pattern| glob(pattern, &action)),
            Listed::AllBut(patterns) => !patterns.iter().any(|pattern| glob(pattern, &action)),
        }
    }

    fn resource_matches(&self, request: &Request, variables: bool) -> bool {
        let context = variables.then_some(request);
        let resource = request.resource.as_str();
        match &self.resources {
            None => true,
            Some(Listed::Only(patterns)) => {
                patterns.iter().any(|pattern| resolve(pattern, context).is_some_and(|pattern| glob(&pattern, resource)))
            }
            // An entry that cannot be resolved makes the statement invalid, hence not apply.
            Some(Listed::AllBut(patterns)) => patterns
                .iter()
                .all(|pattern| resolve(pattern, context).is_some_and(|pattern| !glob(&pattern, resource))),
        }
    }
}

/// The parts of an ARN, `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, Copy)]
struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let (partition, service, _region, account, resource) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        Some(Arn { partition, service, account, resource })
    }

    fn is_root(&self) -> bool {
        self.service == "iam" && self.resource == "root"
    }

    /// The role's name, for a role ARN (`role/PATH/NAME`).
    fn role_name(&self) -> Option<&'a str> {
        let path_and_name = self.resource.strip_prefix("role/").filter(|_| self.service == "iam")?;
        path_and_name.rsplit('/').next()
    }

    /// The role's name, for a role session ARN (`assumed-role/NAME/SESSION`).
    fn session_role(&self) -> Option<&'a str> {
        let rest = self.resource.strip_prefix("assumed-role/").filter(|_| self.service == "sts")?;
        rest.split('/').next()
    }
}

/// The account a `Principal` entry stands for, if it names an account: `123456789012` or
/// `arn:aws:iam::123456789012:root`.
fn account_entry(entry: &str) -> Option<(Option<&str>, &str)> {
    if entry.len() == 12 && entry.bytes().all(|b| b.is_ascii_digit()) {
        return Some((None, entry));
    }
    Arn::parse(entry).filter(Arn::is_root).map(|arn| (Some(arn.partition), arn.account))
}

fn same_account(entry: (Option<&str>, &str), arn: &Arn<'_>) -> bool {
    entry.1 == arn.account && entry.0.is_none_or(|partition| partition == arn.partition)
}

fn same_role(entry: &str, partition: &str, account: &str, role: &str) -> bool {
    Arn::parse(entry)
        .is_some_and(|arn| arn.partition == partition && arn.account == account && arn.role_name() == Some(role))
}

/// The identities AWS checks a `NotPrincipal` against: the account, the role (for a session),
/// then the caller itself.
#[derive(Debug)]
enum Identity<'a> {
    Anonymous,
    Account(Arn<'a>),
    Role(Arn<'a>, &'a str),
    Exact(&'a str),
}

impl Principals {
    fn matches(&self, principal: Option<&str>) -> Option<Via> {
        if self.any {
            return Some(Via::Direct);
        }
        let principal = principal?;
        let caller = Arn::parse(principal);
        let mut best = None;
        for entry in &self.aws {
            let via = match &caller {
                _ if entry == principal => {
                    Some(if caller.is_some_and(|c| c.role_name().is_some()) { Via::Role } else { Via::Direct })
                }
                Some(caller) => match account_entry(entry) {
                    Some(account) if same_account(account, caller) => {
                        Some(if caller.is_root() { Via::Direct } else { Via::Account })
                    }
                    Some(_) => None,
                    None => caller
                        .session_role()
                        .filter(|role| same_role(entry, caller.partition, caller.account, role))
                        .map(|_| Via::Role),
                },
                None => None,
            };
            best = best.max(via);
        }
        if self.others.iter().any(|entry| entry == principal) {
            best = Some(Via::Direct);
        }
        best
    }

    /// Whether every identity AWS checks for this caller is listed, which is what exempts it
    /// from a `NotPrincipal` deny.
    fn lists_whole_chain(&self, principal: Option<&str>) -> bool {
        chain(principal).iter().all(|identity| self.lists(identity))
    }

    fn lists(&self, identity: &Identity<'_>) -> bool {
        if self.any {
            return true;
        }
        match identity {
            Identity::Anonymous => false,
            Identity::Account(arn) => {
                self.aws.iter().any(|entry| account_entry(entry).is_some_and(|account| same_account(account, arn)))
            }
            Identity::Role(arn, role) => {
                self.aws.iter().any(|entry| same_role(entry, arn.partition, arn.account, role))
            }
            Identity::Exact(principal) => self.aws.iter().chain(&self.others).any(|entry| entry == principal),
        }
    }
}

fn chain(principal: Option<&str>) -> Vec<Identity<'_>> {
    let Some(principal) = principal else { return vec![Identity::Anonymous] };
    let Some(arn) = Arn::parse(principal) else { return vec![Identity::Exact(principal)] };
    if arn.is_root() {
        return vec![Identity::Account(arn)];
    }
    let mut identities = vec![Identity::Account(arn)];
    if let Some(role) = arn.session_role() {
        identities.push(Identity::Role(arn, role));
    }
    identities.push(Identity::Exact(principal));
    identities
}

impl Condition {
    fn evaluate(&self, request: &Request, variables: bool) -> Tri {
        let Some(op) = self.op else { return Tri::Unknown };
        let present = request.context_values(&self.key).filter(|values| !values.is_empty());
        if op.kind == Kind::Null {
            return Tri::from(self.values.iter().any(|value| match value.to_ascii_lowercase().as_str() {
                "true" => present.is_none(),
                "false" => present.is_some(),
                _ => false,
            }));
        }
        let Some(actual) = present else {
            return Tri::from(
                self.if_exists
                    || match self.set {
                        Some(SetOp::ForAllValues) => true,
                        Some(SetOp::ForAnyValue) => false,
                        None => op.negated,
                    },
            );
        };
        let substitute =
            variables && matches!(op.kind, Kind::String | Kind::StringIgnoreCase | Kind::StringLike | Kind::Arn);
        let mut patterns = Vec::with_capacity(self.values.len());
        for value in &self.values {
            match resolve(value, substitute.then_some(request)) {
                Some(pattern) => patterns.push(pattern),
                // AWS: a variable without a value makes the statement invalid.
                None => return Tri::False,
            }
        }
        let holds = |value: &String| patterns.iter().any(|pattern| op.kind.matches(pattern, value)) != op.negated;
        Tri::from(match self.set {
            Some(SetOp::ForAllValues) => actual.iter().all(holds),
            Some(SetOp::ForAnyValue) => actual.iter().any(holds),
            // A negated operator holds when no value matches, a plain one when any does.
            None if op.negated => actual.iter().all(holds),
            None => actual.iter().any(holds),
        })
    }
}

impl Kind {
    /// Whether `value` (from the request) matches `pattern` (from the policy).
    fn matches(self, pattern: &[Tok], value: &str) -> bool {
        match self {
            Kind::String | Kind::Binary => text(pattern) == value,
            Kind::StringIgnoreCase => text(pattern).to_lowercase() == value.to_lowercase(),
            Kind::StringLike => glob(pattern, value),
            Kind::Numeric(cmp) => match (number(value), number(&text(pattern))) {
                (Some(value), Some(limit)) => cmp.holds(value.partial_cmp(&limit)),
                _ => false,
            },
            Kind::Date(cmp) => match (date(value), date(&text(pattern))) {
                (Some(value), Some(limit)) => cmp.holds(Some(value.cmp(&limit))),
                _ => false,
            },
            Kind::Bool => text(pattern).eq_ignore_ascii_case(value),
            Kind::Ip => ip_in(&text(pattern), value),
            Kind::Arn => arn_like(pattern, value),
            Kind::Null => false,
        }
    }
}

impl Cmp {
    fn holds(self, ordering: Option<Ordering>) -> bool {
        matches!(
            (self, ordering),
            (Cmp::Eq, Some(Ordering::Equal))
                | (Cmp::Lt, Some(Ordering::Less))
                | (Cmp::Le, Some(Ordering::Less | Ordering::Equal))
                | (Cmp::Gt, Some(Ordering::Greater))
                | (Cmp::Ge, Some(Ordering::Greater | Ordering::Equal))
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Patterns: wildcards and policy variables.

/// One element of a pattern. Policy variables resolve to literal characters, so a `*` in a
/// user name (or `${*}`) never acts as a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Star,
    One,
}

fn tok(c: char) -> Tok {
    match c {
        '*' => Tok::Star,
        '?' => Tok::One,
        c => Tok::Lit(c),
    }
}

fn literal_tokens(text: &str) -> Vec<Tok> {
    text.chars().map(tok).collect()
}

/// The pattern's text, wildcards written back as `*` and `?`.
fn text(pattern: &[Tok]) -> String {
    pattern
        .iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            Tok::Star => '*',
            Tok::One => '?',
        })
        .collect()
}

/// Tokenises `text`, substituting policy variables from `context` when it is given (2012-10-17
/// policies). `None` when a variable has no value and no default.
fn resolve(text: &str, context: Option<&Request>) -> Option<Vec<Tok>> {
    let Some(request) = context else { return Some(literal_tokens(text)) };
    let mut tokens = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix("${")
            && let Some(end) = variable_end(body)
        {
            let value = variable(body.get(..end)?, request)?;
            tokens.extend(value.chars().map(Tok::Lit));
            rest = body.get(end + 1..)?;
            continue;
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            tokens.push(tok(c));
        }
        rest = chars.as_str();
    }
    Some(tokens)
}

/// Where a variable's closing brace is, skipping braces inside a quoted default.
fn variable_end(body: &str) -> Option<usize> {
    let mut quoted = false;
    for (at, c) in body.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '}' if !quoted => return Some(at),
            _ => {}
        }
    }
    None
}

/// The value of `${body}`: `*`, `?` and `$` stand for themselves; otherwise a context key with
/// exactly one value, or the quoted default after a comma (`''` is a quote).
fn variable(body: &str, request: &Request) -> Option<String> {
    let body = body.trim();
    if matches!(body, "*" | "?" | "$") {
        return Some(body.to_owned());
    }
    let (key, default) = match body.split_once(',') {
        Some((key, default)) => {
            let quoted = default.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            (key.trim(), Some(quoted.replace("''", "'")))
        }
        None => (body, None),
    };
    match request.context_values(key) {
        Some([value]) => Some(value.clone()),
        _ => default,
    }
}

/// `*` matches any run of characters (`/` and `:` included), `?` exactly one.
fn glob(pattern: &[Tok], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and how much text it has swallowed so far.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Tok::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Tok::One) => {
                p += 1;
                t += 1;
            }
            Some(Tok::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == Tok::Star)
}

/// ARN operators compare the six colon-separated parts one by one, so a `*` does not cross a
/// colon (except in the last part, the resource, which may contain colons). A policy value that
/// is not an ARN (`"*"`) is matched as a whole.
fn arn_like(pattern: &[Tok], value: &str) -> bool {
    let parts: Vec<&[Tok]> = pattern.splitn(6, |t| *t == Tok::Lit(':')).collect();
    if parts.len() < 6 {
        return glob(pattern, value);
    }
    let values: Vec<&str> = value.splitn(6, ':').collect();
    values.len() == 6 && parts.iter().zip(&values).all(|(part, value)| glob(part, value))
}

fn number(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// Milliseconds since the epoch of an ISO 8601 date or date-time (UTC unless it has an
/// offset), or of a whole number of epoch seconds.
fn date(text: &str) -> Option<i128> {
    let s = text.trim();
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if digits(s) {
        return s.parse::<i64>().ok().map(|seconds| i128::from(seconds) * 1000);
    }
    let field = |from: usize, to: usize| s.get(from..to).filter(|part| digits(part)).and_then(|part| part.parse().ok());
    let (year, month, day): (i64, i64, i64) = (field(0, 4)?, field(5, 7)?, field(8, 10)?);
    if s.get(4..5)? != "-" || s.get(7..8)? != "-" || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let mut millis = i128::from(days_from_civil(year, month, day)) * 86_400_000;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some(millis);
    }
    let time = rest.strip_prefix(['T', 't', ' '])?;
    let zone_at = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    let mut parts = clock.split(':');
    let hour: i64 = parts.next().filter(|p| digits(p))?.parse().ok()?;
    let minute: i64 = parts.next().filter(|p| digits(p))?.parse().ok()?;
    let second: f64 = match parts.next() {
        Some(second) => second.parse().ok()?,
        None => 0.0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || !(0.0..61.0).contains(&second) {
        return None;
    }
    millis += i128::from(hour * 3_600_000 + minute * 60_000) + (second * 1000.0).round() as i128;
    let offset_minutes = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let hhmm: String = zone.get(1..)?.chars().filter(|c| *c != ':').collect();
            if hhmm.len() != 4 || !digits(&hhmm) {
                return None;
            }
            let (hours, minutes): (i64, i64) = (hhmm.get(..2)?.parse().ok()?, hhmm.get(2..)?.parse().ok()?);
            sign * (hours * 60 + minutes)
        }
    };
    Some(millis - i128::from(offset_minutes) * 60_000)
}

/// Whether `address` is in `block` (CIDR notation, or a single address).
fn ip_in(block: &str, address: &str) -> bool {
    let (network, bits) = match block.trim().split_once('/') {
        Some((network, bits)) => match bits.parse::<u32>() {
            Ok(bits) => (network, Some(bits)),
            Err(_) => return false,
        },
        None => (block.trim(), None),
    };
    let address = address.trim();
    let address = address.split_once('/').map_or(address, |(address, _)| address);
    match (network.parse::<IpAddr>(), address.parse::<IpAddr>()) {
        (Ok(IpAddr::V4(network)), Ok(IpAddr::V4(address))) => {
            same_prefix(u32::from(network).into(), u32::from(address).into(), bits.unwrap_or(32), 32)
        }
        (Ok(IpAddr::V6(network)), Ok(IpAddr::V6(address))) => {
            same_prefix(network.into(), address.into(), bits.unwrap_or(128), 128)
        }
        _ => false,
    }
}

fn same_prefix(a: u128, b: u128, bits: u32, width: u32) -> bool {
    let Some(shift) = width.checked_sub(bits) else { return false };
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use expect_test::expect;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    const ACCOUNT: &str = "111122223333";
    const USER: &str = "arn:aws:iam::111122223333:user/platform";
    const OTHER_USER: &str = "arn:aws:iam::111122223333:user/mallory";
    const FOREIGN_USER: &str = "arn:aws:iam::444455556666:user/platform";
    const ROOT: &str = "arn:aws:iam::111122223333:root";
    const ROLE: &str = "arn:aws:iam::111122223333:role/service/copy-role";
    const SESSION: &str = "arn:aws:sts::111122223333:assumed-role/copy-role/job-42";
    const FEDERATED: &str = "arn:aws:sts::111122223333:federated-user/project-7";

    fn doc(policy: &Value) -> PolicyDocument {
        PolicyDocument::parse(&policy.to_string()).expect("the test policy parses")
    }

    fn get(resource: &str) -> Request {
        Request::new("s3:GetObject", resource)
    }

    /// A request whose context has these single-valued keys.
    fn with(pairs: &[(&str, &str)]) -> Request {
        pairs.iter().fold(Request::new("s3:ListBucket", "arn:aws:s3:::b"), |r, (k, v)| r.with_context(*k, *v))
    }

    fn label(statement: &StatementId) -> String {
        statement.sid.clone().unwrap_or_else(|| format!("#{}", statement.index))
    }

    /// An outcome in a few words, so that tables read as text.
    fn short(outcome: &Outcome) -> String {
        match outcome {
            Outcome::ExplicitDeny { statement } => format!("Deny {}", label(statement)),
            Outcome::Allow { statement } => format!("Allow {}", label(statement)),
            Outcome::NotApplicable => "-".to_owned(),
            Outcome::Unknown { statement, unsupported } => format!("Unknown {} {unsupported}", label(statement)),
        }
    }

    fn decision(decision: &Decision) -> String {
        let by = decision.deciding.as_ref().map(|d| format!(" by {} {}", d.policy, label(&d.statement)));
        format!("{:?}{}", decision.effect, by.unwrap_or_default())
    }

    /// Evaluates one document against each request; compares all outcomes at once.
    fn check(kind: PolicyKind, policy: &Value, cases: &[(Request, &str)]) {
        let policy = doc(policy);
        let got: Vec<_> = cases.iter().enumerate().map(|(i, (r, _))| (i, short(&policy.evaluate(r, kind)))).collect();
        let want: Vec<_> = cases.iter().enumerate().map(|(i, (_, w))| (i, (*w).to_owned())).collect();
        assert_eq!(got, want);
    }

    /// Whether a statement allowing everything under `condition` applies to each request.
    fn check_condition(condition: Value, cases: &[(Request, bool)]) {
        let policy = doc(&json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": condition},
        }));
        let applies = |r| matches!(policy.evaluate(r, PolicyKind::Identity), Outcome::Allow { .. });
        let got: Vec<_> = cases.iter().enumerate().map(|(i, (r, _))| (i, applies(r))).collect();
        let want: Vec<_> = cases.iter().enumerate().map(|(i, (_, w))| (i, *w)).collect();
        assert_eq!(got, want, "{condition}");
    }

    /// Whether a resource policy allowing `principal` applies to each caller.
    fn check_principal(principal: Value, cases: &[(Option<&str>, bool)]) {
        let policy = doc(&json!({
            "Version": "2012-10-17",
            "Statement": {"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject", "Resource": "*"},
        }));
        let applies = |caller: Option<&str>| {
            let request = caller.map_or_else(|| get("arn:aws:s3:::b/k"), |c| get("arn:aws:s3:::b/k").with_principal(c));
            matches!(policy.evaluate(&request, PolicyKind::Resource), Outcome::Allow { .. })
        };
        let got: Vec<_> = cases.iter().map(|(caller, _)| (*caller, applies(*caller))).collect();
        assert_eq!(got, cases, "{principal}");
    }

    #[test]
    fn a_document_allows_denies_or_does_not_apply() {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Sid": "Read", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                 "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
                {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/secret/*"},
            ]
        });
        check(
            PolicyKind::Identity,
            &policy,
            &[
                (get("arn:aws:s3:::b/k"), "Allow Read"),
                (Request::new("s3:ListBucket", "arn:aws:s3:::b"), "Allow Read"),
                (Request::new("s3:PutObject", "arn:aws:s3:::b/k"), "-"),
                (get("arn:aws:s3:::other/k"), "-"),
                // Explicit deny overrides allow within a document.
                (get("arn:aws:s3:::b/secret/k"), "Deny NoSecrets"),
            ],
        );
    }

    #[test]
    fn decisions_combine_identity_policies() {
        let read = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}));
        let no_secrets = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "NoSecrets", "Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/secret/*"}]}));
        let request = |resource| get(resource).with_principal(USER);
        let cases = [
            // No policy at all: the default implicit deny.
            (evaluate(&request("arn:aws:s3:::b/k"), &[], None), "ImplicitlyDenied"),
            (evaluate(&request("arn:aws:s3:::b/k"), &[&read], None), "Allowed by identity policy #0 Read"),
            (evaluate(&request("arn:aws:s3:::b/k"), &[&no_secrets], None), "ImplicitlyDenied"),
            (evaluate(&request("arn:aws:s3:::b/k"), &[&read, &no_secrets], None), "Allowed by identity policy #0 Read"),
            // An explicit deny in one policy overrides an allow in another.
            (
                evaluate(&request("arn:aws:s3:::b/secret/k"), &[&read, &no_secrets], None),
                "ExplicitlyDenied by identity policy #1 NoSecrets",
            ),
            (
                evaluate(&request("arn:aws:s3:::b/secret/k"), &[&no_secrets, &read], None),
                "ExplicitlyDenied by identity policy #0 NoSecrets",
            ),
        ];
        let got: Vec<_> = cases.iter().map(|(d, _)| decision(d)).collect();
        let want: Vec<_> = cases.iter().map(|(_, w)| *w).collect();
        assert_eq!(got, want);
        assert!(cases[1].0.is_allowed());
    }

    #[test]
    fn not_action_with_allow_allows_everything_else() {
        // AWS's example: everything except IAM.
        let policy =
            json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}});
        check(
            PolicyKind::Identity,
            &policy,
            &[
                (get("arn:aws:s3:::b/k"), "Allow #0"),
                (Request::new("sts:GetFederationToken", "*"), "Allow #0"),
                (Request::new("iam:CreateUser", "arn:aws:iam::111122223333:user/x"), "-"),
                (Request::new("IAM:createuser", "arn:aws:iam::111122223333:user/x"), "-"),
            ],
        );
    }

    #[test]
    fn not_action_with_deny_denies_everything_else() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "All", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "ReadOnly", "Effect": "Deny", "NotAction": ["s3:GetObject", "s3:List*"], "Resource": "*"},
        ]});
        check(
            PolicyKind::Identity,
            &policy,
            &[
                (get("arn:aws:s3:::b/k"), "Allow All"),
                (Request::new("s3:ListBucketVersions", "arn:aws:s3:::b"), "Allow All"),
                (Request::new("s3:PutObject", "arn:aws:s3:::b/k"), "Deny ReadOnly"),
                (Request::new("kms:Decrypt", "arn:aws:kms:eu-west-1:111122223333:key/k"), "Deny ReadOnly"),
            ],
        );
    }

    #[test]
    fn not_resource_matches_every_other_resource() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AllButSecrets", "Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::b/secret/*"},
            {"Sid": "OnlyB", "Effect": "Deny", "Action": "s3:*", "NotResource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]},
        ]});
        check(
            PolicyKind::Identity,
            &policy,
            &[
                (get("arn:aws:s3:::b/k"), "Allow AllButSecrets"),
                (get("arn:aws:s3:::b/secret/k"), "-"),
                (get("arn:aws:s3:::other/k"), "Deny OnlyB"),
                (Request::new("sqs:SendMessage", "arn:aws:sqs:eu-west-1:111122223333:q"), "-"),
            ],
        );
    }

    #[test]
    fn action_patterns_are_case_insensitive_globs() {
        let cases = [
            ("s3:GetObject", "s3:GetObject", true),
            ("s3:GetObject", "S3:getobject", true),
            ("S3:GETOBJECT", "s3:GetObject", true),
            ("s3:GetObject", "s3:GetObjectAcl", false),
            ("s3:Get*", "s3:GetObject", true),
            ("s3:Get*", "s3:GetBucketLocation", true),
            ("s3:Get*", "s3:PutObject", false),
            ("s3:*Object", "s3:PutObject", true),
            ("s3:*Object", "s3:DeleteObject", true),
            ("s3:*Object", "s3:GetObjectAcl", false),
            ("s3:?etObject", "s3:GetObject", true),
            ("s3:?etObject", "s3:SetObject", true),
            ("s3:?etObject", "s3:GetObjects", false),
            ("s3:?etObject", "s3:etObject", false),
            ("s3:*", "s3:ListBucket", true),
            ("s3:*", "s3express:CreateSession", false),
            ("*", "kms:Decrypt", true),
            ("kms:*", "s3:GetObject", false),
        ];
        let got: Vec<_> = cases
            .iter()
            .map(|(pattern, action, _)| {
                let policy = doc(&json!({"Statement": {"Effect": "Allow", "Action": pattern, "Resource": "*"}}));
                (
                    *pattern,
                    *action,
                    policy.evaluate(&Request::new(*action, "*"), PolicyKind::Identity) != Outcome::NotApplicable,
                )
            })
            .collect();
        assert_eq!(got, cases);
    }

    #[test]
    fn resource_patterns_are_case_sensitive_globs() {
        let cases = [
            ("*", "arn:aws:s3:::b/k", true),
            ("arn:aws:s3:::b", "arn:aws:s3:::b", true),
            // A bucket's ARN is not its objects' ARN, and the other way round.
            ("arn:aws:s3:::b", "arn:aws:s3:::b/key", false),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b*", "arn:aws:s3:::b/key", true),
            ("arn:aws:s3:::b*", "arn:aws:s3:::bucket-2", true),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/", true),
            ("arn:aws:s3:::b/*", "arn:aws:s3:::b/a/b/c.txt", true),
            ("arn:aws:s3:::b/data/*", "arn:aws:s3:::b/data/x/y", true),
            ("arn:aws:s3:::b/data/*", "arn:aws:s3:::b/data", false),
            ("arn:aws:s3:::b/data/*", "arn:aws:s3:::b/database/x", false),
            ("arn:aws:s3:::b/data*", "arn:aws:s3:::b/database/x", true),
            ("arn:aws:s3:::b/*/report.csv", "arn:aws:s3:::b/2024/05/report.csv", true),
            ("arn:aws:s3:::b?", "arn:aws:s3:::b1", true),
            ("arn:aws:s3:::b?", "arn:aws:s3:::b12", false),
            ("arn:aws:s3:::B", "arn:aws:s3:::b", false),
            ("arn:aws:s3:::b/Data/*", "arn:aws:s3:::b/data/x", false),
            // `*` crosses colons too.
            ("arn:aws:sqs:*", "arn:aws:sqs:eu-west-1:111122223333:q", true),
            ("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:eu-west-1:111122223333:key/abc", true),
            ("arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:eu-west-1:444455556666:key/abc", false),
        ];
        let got: Vec<_> = cases
            .iter()
            .map(|(pattern, resource, _)| {
                let policy =
                    doc(&json!({"Statement": {"Effect": "Allow", "Action": "s3:GetObject", "Resource": pattern}}));
                (*pattern, *resource, policy.evaluate(&get(resource), PolicyKind::Identity) != Outcome::NotApplicable)
            })
            .collect();
        assert_eq!(got, cases);
    }

    #[test]
    fn policy_variables_are_substituted_in_2012_only() {
        // AWS's example: each user's home folder.
        let statement = json!({"Sid": "Home", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                               "Resource": "arn:aws:s3:::bucket/home/${aws:username}/*"});
        let david = |resource: &str| get(resource).with_principal("arn:aws:iam::111122223333:user/David");
        check(
            PolicyKind::Identity,
            &json!({"Version": "2012-10-17", "Statement": [statement]}),
            &[
                (david("arn:aws:s3:::bucket/home/David/notes.txt"), "Allow Home"),
                (david("arn:aws:s3:::bucket/home/Adele/notes.txt"), "-"),
                (david("arn:aws:s3:::bucket/home/david/notes.txt"), "-"),
                // A role session has no aws:username: the variable has no value, nothing matches.
                (get("arn:aws:s3:::bucket/home/David/notes.txt").with_principal(SESSION), "-"),
                (david("arn:aws:s3:::bucket/home/${aws:username}/notes.txt"), "-"),
            ],
        );
        // Without a Version (2008-10-17), `${aws:username}` is literal text.
        let legacy = json!({"Statement": [statement]});
        assert_eq!(doc(&legacy).version(), PolicyVersion::V2008_10_17);
        check(
            PolicyKind::Identity,
            &legacy,
            &[
                (david("arn:aws:s3:::bucket/home/David/notes.txt"), "-"),
                (david("arn:aws:s3:::bucket/home/${aws:username}/notes.txt"), "Allow Home"),
            ],
        );
    }

    #[test]
    fn special_variables_and_defaults() {
        let policy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Star", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/${*}${?}${$}"},
            {"Sid": "Default", "Effect": "Allow", "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::b/${aws:userid, 'anonymous'}/*"},
            {"Sid": "Tag", "Effect": "Allow", "Action": "s3:DeleteObject", "Resource": "arn:aws:s3:::b/${aws:PrincipalTag/team}/*"},
        ]});
        let put = |resource| Request::new("s3:PutObject", resource);
        check(
            PolicyKind::Identity,
            &policy,
            &[
                (get("arn:aws:s3:::b/*?$"), "Allow Star"),
                (get("arn:aws:s3:::b/x?$"), "-"),
                (get("arn:aws:s3:::b/*x$"), "-"),
                (put("arn:aws:s3:::b/anonymous/k"), "Allow Default"),
                (put("arn:aws:s3:::b/AIDA123/k").with_context("aws:userid", "AIDA123"), "Allow Default"),
                (put("arn:aws:s3:::b/anonymous/k").with_context("aws:userid", "AIDA123"), "-"),
                (put("arn:aws:s3:::b/anonymous/k").with_principal(FEDERATED), "-"),
                (put("arn:aws:s3:::b/111122223333:project-7/k").with_principal(FEDERATED), "Allow Default"),
                (
                    Request::new("s3:DeleteObject", "arn:aws:s3:::b/red/k")
                        .with_context("AWS:PrincipalTag/Team", "red"),
                    "Allow Tag",
                ),
                // A multi-valued key is not a variable's value.
                (
                    Request::new("s3:DeleteObject", "arn:aws:s3:::b/red/k")
                        .with_context_values("aws:PrincipalTag/team", ["red", "blue"]),
                    "-",
                ),
            ],
        );
    }

    #[test]
    fn string_conditions() {
        // AWS's example: list only your own home folder.
        check_condition(
            json!({"StringLike": {"s3:prefix": ["${aws:username}/*", ""]}}),
            &[
                (with(&[("aws:username", "David"), ("s3:prefix", "David/photos/")]), true),
                (with(&[("aws:username", "David"), ("s3:prefix", "")]), true),
                (with(&[("aws:username", "David"), ("s3:prefix", "Adele/")]), false),
                (with(&[("aws:username", "David"), ("s3:prefix", "david/")]), false),
                (with(&[("aws:username", "David")]), false),
                // No aws:username: the variable has no value, the statement does not apply.
                (with(&[("s3:prefix", "David/")]), false),
            ],
        );
        // AWS's example: StringEquals is case-sensitive, StringEqualsIgnoreCase is not.
        check_condition(
            json!({"StringEquals": {"aws:username": "johndoe"}}),
            &[
                (with(&[("aws:username", "johndoe")]), true),
                (with(&[("aws:username", "JohnDoe")]), false),
                (with(&[]), false),
            ],
        );
        check_condition(
            json!({"StringEqualsIgnoreCase": {"aws:username": "johndoe"}}),
            &[(with(&[("aws:username", "JohnDoe")]), true), (with(&[("aws:username", "jane")]), false)],
        );
        // Negated operators are true when the key is absent.
        check_condition(
            json!({"StringNotEquals": {"aws:username": ["admin", "root"]}}),
            &[
                (with(&[]), true),
                (with(&[("aws:username", "bob")]), true),
                (with(&[("aws:username", "admin")]), false),
                (with(&[("aws:username", "root")]), false),
            ],
        );
        check_condition(
            json!({"StringNotLike": {"s3:prefix": "private/*"}}),
            &[
                (with(&[]), true),
                (with(&[("s3:prefix", "public/x")]), true),
                (with(&[("s3:prefix", "private/x")]), false),
            ],
        );
        check_condition(
            json!({"StringNotEqualsIgnoreCase": {"aws:username": "Admin"}}),
            &[(with(&[("aws:username", "ADMIN")]), false), (with(&[("aws:username", "bob")]), true)],
        );
    }

    #[test]
    fn conditions_are_and_of_keys_and_or_of_values() {
        check_condition(
            json!({
                "StringEquals": {"s3:x-amz-acl": ["private", "bucket-owner-full-control"], "aws:PrincipalAccount": ACCOUNT},
                "Bool": {"aws:SecureTransport": "true"},
            }),
            &[
                (
                    with(&[
                        ("s3:x-amz-acl", "private"),
                        ("aws:PrincipalAccount", ACCOUNT),
                        ("aws:SecureTransport", "true"),
                    ]),
                    true,
                ),
                (
                    with(&[
                        ("S3:X-Amz-Acl", "bucket-owner-full-control"),
                        ("aws:principalaccount", ACCOUNT),
                        ("AWS:SECURETRANSPORT", "true"),
                    ]),
                    true,
                ),
                (
                    with(&[
                        ("s3:x-amz-acl", "public-read"),
                        ("aws:PrincipalAccount", ACCOUNT),
                        ("aws:SecureTransport", "true"),
                    ]),
                    false,
                ),
                (
                    with(&[
                        ("s3:x-amz-acl", "private"),
                        ("aws:PrincipalAccount", "444455556666"),
                        ("aws:SecureTransport", "true"),
                    ]),
                    false,
                ),
                (
                    with(&[
                        ("s3:x-amz-acl", "private"),
                        ("aws:PrincipalAccount", ACCOUNT),
                        ("aws:SecureTransport", "false"),
                    ]),
                    false,
                ),
                (with(&[("s3:x-amz-acl", "private"), ("aws:PrincipalAccount", ACCOUNT)]), false),
            ],
        );
    }

    #[test]
    fn if_exists_and_null() {
        check_condition(
            json!({"StringEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}),
            &[
                (with(&[]), true),
                (with(&[("s3:x-amz-server-side-encryption", "aws:kms")]), true),
                (with(&[("s3:x-amz-server-side-encryption", "AES256")]), false),
            ],
        );
        check_condition(
            json!({"StringNotEqualsIfExists": {"s3:x-amz-server-side-encryption": "aws:kms"}}),
            &[(with(&[]), true), (with(&[("s3:x-amz-server-side-encryption", "aws:kms")]), false)],
        );
        check_condition(
            json!({"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}}),
            &[
                (with(&[]), true),
                (with(&[("aws:MultiFactorAuthPresent", "false")]), true),
                (with(&[("aws:MultiFactorAuthPresent", "true")]), false),
            ],
        );
        // Null "true": the key is absent; "false": present.
        check_condition(
            json!({"Null": {"aws:TokenIssueTime": "true"}}),
            &[(with(&[]), true), (with(&[("aws:TokenIssueTime", "2024-01-01T00:00:00Z")]), false)],
        );
        check_condition(
            json!({"Null": {"aws:TokenIssueTime": false}}),
            &[(with(&[]), false), (with(&[("aws:TokenIssueTime", "2024-01-01T00:00:00Z")]), true)],
        );
        // A key with no values counts as absent.
        check_condition(
            json!({"Null": {"aws:TagKeys": "true"}}),
            &[(with(&[]).with_context_values("aws:TagKeys", Vec::<String>::new()), true)],
        );
    }

    #[test]
    fn secure_transport_deny() {
        // AWS's example: deny any request not sent over TLS.
        let bucket = doc(&json!({"Version": "2012-10-17", "Statement": [{
            "Sid": "AllowSSLRequestsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]}));
        let user = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}));
        let request = |tls: Option<&str>| {
            let request = get("arn:aws:s3:::b/k").with_principal(USER);
            tls.map_or(request.clone(), |tls| request.with_context("aws:SecureTransport", tls))
        };
        let got: Vec<_> = [Some("true"), Some("false"), Some("FALSE"), None]
            .into_iter()
            .map(|tls| decision(&evaluate(&request(tls), &[&user], Some(&bucket))))
            .collect();
        assert_eq!(
            got,
            [
                "Allowed by identity policy #0 Read",
                "ExplicitlyDenied by resource policy AllowSSLRequestsOnly",
                "ExplicitlyDenied by resource policy AllowSSLRequestsOnly",
                // Bool on an absent key is false (BoolIfExists would deny here).
                "Allowed by identity policy #0 Read",
            ]
        );
    }

    #[test]
    fn set_operators() {
        let tags = |keys: &[&str]| with(&[]).with_context_values("aws:TagKeys", keys.iter().copied());
        // Every request value must be in the policy's set; an absent key passes.
        check_condition(
            json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}),
            &[
                (tags(&["environment"]), true),
                (tags(&["environment", "cost-center"]), true),
                (tags(&["environment", "owner"]), false),
                (with(&[]), true),
            ],
        );
        // At least one request value must be in the policy's set; an absent key fails.
        check_condition(
            json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}}),
            &[(tags(&["owner", "environment"]), true), (tags(&["owner"]), false), (with(&[]), false)],
        );
        // AWS's example: every tag key must start with key1.
        check_condition(
            json!({"ForAllValues:StringLike": {"aws:TagKeys": "key1*"}}),
            &[(tags(&["key1", "key1-b"]), true), (tags(&["key1", "key2"]), false)],
        );
        check_condition(
            json!({"ForAnyValue:StringNotEquals": {"aws:TagKeys": "environment"}}),
            &[(tags(&["environment"]), false), (tags(&["environment", "owner"]), true), (with(&[]), false)],
        );
        check_condition(
            json!({"ForAllValues:StringNotLike": {"aws:TagKeys": "secret*"}}),
            &[(tags(&["a", "b"]), true), (tags(&["a", "secret-b"]), false), (with(&[]), true)],
        );
        check_condition(
            json!({"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "environment"}}),
            &[(with(&[]), true), (tags(&["owner"]), false)],
        );
    }

    #[test]
    fn numeric_date_ip_and_binary_conditions() {
        check_condition(
            json!({"NumericLessThanEquals": {"s3:max-keys": 10}}),
            &[
                (with(&[("s3:max-keys", "10")]), true),
                (with(&[("s3:max-keys", "9.5")]), true),
                (with(&[("s3:max-keys", "11")]), false),
                (with(&[("s3:max-keys", "ten")]), false),
                (with(&[]), false),
            ],
        );
        check_condition(
            json!({"NumericNotEquals": {"s3:max-keys": ["1", "2"]}}),
            &[(with(&[("s3:max-keys", "3")]), true), (with(&[("s3:max-keys", "2")]), false), (with(&[]), true)],
        );
        check_condition(
            json!({"NumericGreaterThan": {"s3:max-keys": "100"}, "NumericLessThan": {"s3:max-keys": "1000"}}),
            &[
                (with(&[("s3:max-keys", "100")]), false),
                (with(&[("s3:max-keys", "999")]), true),
                (with(&[("s3:max-keys", "1000")]), false),
            ],
        );
        check_condition(
            json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}, "DateLessThan": {"aws:CurrentTime": "2030-01-01"}}),
            &[
                (with(&[("aws:CurrentTime", "2024-05-01T12:00:00Z")]), true),
                (with(&[("aws:CurrentTime", "2019-12-31T23:59:59Z")]), false),
                (with(&[("aws:CurrentTime", "2020-01-01T00:30:00+01:00")]), false),
                (with(&[("aws:CurrentTime", "2020-01-01T00:30:00-01:00")]), true),
                (with(&[("aws:CurrentTime", "2020-01-01T00:00:00.001Z")]), true),
                (with(&[("aws:CurrentTime", "1700000000")]), true),
                (with(&[("aws:CurrentTime", "2031-01-01T00:00:00Z")]), false),
                (with(&[("aws:CurrentTime", "yesterday")]), false),
            ],
        );
        check_condition(
            json!({"DateEquals": {"aws:EpochTime": 1577836800}}),
            &[
                (with(&[("aws:EpochTime", "2020-01-01T00:00:00Z")]), true),
                (with(&[("aws:EpochTime", "1577836801")]), false),
            ],
        );
        check_condition(
            json!({"IpAddress": {"aws:SourceIp": ["203.0.113.0/24", "2001:DB8:1234:5678::/64", "198.51.100.7"]}}),
            &[
                (with(&[("aws:SourceIp", "203.0.113.200")]), true),
                (with(&[("aws:SourceIp", "203.0.114.1")]), false),
                (with(&[("aws:SourceIp", "198.51.100.7")]), true),
                (with(&[("aws:SourceIp", "198.51.100.8")]), false),
                (with(&[("aws:SourceIp", "2001:db8:1234:5678:abcd::1")]), true),
                (with(&[("aws:SourceIp", "2001:db8:1234:5679::1")]), false),
                (with(&[("aws:SourceIp", "not an address")]), false),
            ],
        );
        check_condition(
            json!({"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
            &[
                (with(&[("aws:SourceIp", "192.0.2.1")]), false),
                (with(&[("aws:SourceIp", "::1")]), true),
                (with(&[]), true),
            ],
        );
        check_condition(
            json!({"BinaryEquals": {"key": "QmluYXJ5VmFsdWU="}}),
            &[(with(&[("key", "QmluYXJ5VmFsdWU=")]), true), (with(&[("key", "qmluyxj5vmfsdwu=")]), false)],
        );
    }

    #[test]
    fn arn_conditions_compare_segment_by_segment() {
        check_condition(
            json!({"ArnLike": {"aws:SourceArn": "arn:aws:sqs:*:111122223333:*"}}),
            &[
                (with(&[("aws:SourceArn", "arn:aws:sqs:eu-west-1:111122223333:queue")]), true),
                (with(&[("aws:SourceArn", "arn:aws:sqs:eu-west-1:111122223333:queue:with:colons")]), true),
                // A wildcard does not cross a colon: `*` is the region, not region and account.
                (with(&[("aws:SourceArn", "arn:aws:sqs:eu-west-1:444455556666:111122223333:q")]), false),
                (with(&[("aws:SourceArn", "arn:aws:sns:eu-west-1:111122223333:topic")]), false),
                (with(&[("aws:SourceArn", "not-an-arn")]), false),
            ],
        );
        // StringLike, by contrast, lets `*` run across colons.
        check_condition(
            json!({"StringLike": {"aws:SourceArn": "arn:aws:sqs:*:111122223333:*"}}),
            &[(with(&[("aws:SourceArn", "arn:aws:sqs:eu-west-1:444455556666:111122223333:q")]), true)],
        );
        check_condition(
            json!({"ArnEquals": {"aws:PrincipalArn": USER}}),
            &[(with(&[("aws:PrincipalArn", USER)]), true), (with(&[("aws:PrincipalArn", OTHER_USER)]), false)],
        );
        check_condition(
            json!({"ArnNotLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/admin-*", "*:root"]}}),
            &[
                (with(&[("aws:PrincipalArn", ROLE)]), true),
                (with(&[("aws:PrincipalArn", "arn:aws:iam::111122223333:role/admin-x")]), false),
                (with(&[]), true),
            ],
        );
        check_condition(json!({"ArnLike": {"aws:SourceArn": "*"}}), &[(with(&[("aws:SourceArn", "anything")]), true)]);
    }

    #[test]
    fn variables_in_condition_values() {
        // The variable is substituted in 2012-10-17 policies only, and in string and ARN
        // operators only.
        let policy = |version: Option<&str>, operator: &str, value: &str| {
            let mut policy = json!({"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
                                                  "Condition": {operator: {"key": value}}}});
            if let Some(version) = version {
                policy["Version"] = json!(version);
            }
            doc(&policy)
        };
        let request = with(&[("key", "arn:aws:iam::111122223333:user/platform"), ("aws:username", "platform")]);
        let cases = [
            (policy(Some("2012-10-17"), "StringEquals", "arn:aws:iam::111122223333:user/${aws:username}"), true),
            (
                policy(Some("2012-10-17"), "ArnLike", "arn:aws:iam::${aws:PrincipalAccount, '111122223333'}:user/*"),
                true,
            ),
            (policy(Some("2008-10-17"), "StringEquals", "arn:aws:iam::111122223333:user/${aws:username}"), false),
            (policy(None, "StringLike", "*${aws:username}"), false),
            (policy(Some("2012-10-17"), "StringLike", "*${aws:username}"), true),
            (policy(Some("2012-10-17"), "StringLike", "*${aws:nothing}"), false),
        ];
        let got: Vec<_> = cases
            .iter()
            .map(|(p, _)| matches!(p.evaluate(&request, PolicyKind::Identity), Outcome::Allow { .. }))
            .collect();
        let want: Vec<_> = cases.iter().map(|(_, w)| *w).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn unsupported_operators_are_reported_not_guessed() {
        let odd = json!({"Sid": "Odd", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                         "Condition": {"StringEqualsSometimes": {"k": "v"}}});
        check(
            PolicyKind::Identity,
            &json!({"Version": "2012-10-17", "Statement": [odd]}),
            &[
                (get("arn:aws:s3:::b/k"), "Unknown Odd StringEqualsSometimes"),
                // The action does not match: the operator does not matter.
                (Request::new("s3:PutObject", "arn:aws:s3:::b/k"), "-"),
            ],
        );
        // Another condition that is false settles it.
        check(
            PolicyKind::Identity,
            &json!({"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*",
                    "Condition": {"ForSomeValues:StringEquals": {"k": "v"}, "Bool": {"aws:SecureTransport": "true"}}}}),
            &[
                (get("b").with_context("aws:SecureTransport", "false"), "-"),
                (get("b").with_context("aws:SecureTransport", "true"), "Unknown #0 ForSomeValues:StringEquals"),
            ],
        );

        let allow = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}));
        let maybe_allow = doc(&json!({"Version": "2012-10-17", "Statement": [odd]}));
        let maybe_deny = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "MaybeDeny", "Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": {"Frobnicate": {"k": "v"}}}]}));
        let deny = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Deny", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}]}));
        let request = get("arn:aws:s3:::b/k").with_principal(USER);
        let cases: [(&[&PolicyDocument], &str); 6] = [
            (&[&maybe_allow], "Undetermined"),
            (&[&maybe_allow, &allow], "Allowed by identity policy #1 Read"),
            (&[&allow, &maybe_deny], "Undetermined"),
            // Denied either way: explicitly or implicitly.
            (&[&maybe_deny], "ImplicitlyDenied"),
            (&[&maybe_allow, &maybe_deny], "Undetermined"),
            (&[&allow, &maybe_deny, &deny], "ExplicitlyDenied by identity policy #2 Deny"),
        ];
        let got: Vec<_> = cases.iter().map(|(policies, _)| decision(&evaluate(&request, policies, None))).collect();
        let want: Vec<_> = cases.iter().map(|(_, w)| *w).collect();
        assert_eq!(got, want);
        let undetermined = evaluate(&request, &[&allow, &maybe_deny], None);
        assert_eq!(
            undetermined.unevaluated,
            [Unevaluated {
                policy: PolicySource::Identity(1),
                statement: StatementId { index: 0, sid: Some("MaybeDeny".to_owned()) },
                unsupported: "Frobnicate".to_owned(),
            }]
        );
    }

    #[test]
    fn resource_policy_principals() {
        let everyone = [
            (None, true),
            (Some(USER), true),
            (Some(FOREIGN_USER), true),
            (Some(SESSION), true),
            (Some("s3.amazonaws.com"), true),
        ];
        check_principal(json!("*"), &everyone);
        check_principal(json!({"AWS": "*"}), &everyone);
        // The account root, or the bare account id, stands for every principal of the account.
        let account = [
            (Some(USER), true),
            (Some(OTHER_USER), true),
            (Some(SESSION), true),
            (Some(FEDERATED), true),
            (Some(ROOT), true),
            (Some(FOREIGN_USER), false),
            (None, false),
        ];
        check_principal(json!({"AWS": ROOT}), &account);
        check_principal(json!({"AWS": ACCOUNT}), &account);
        // The root ARN names its partition; a bare account id is read in the resource's.
        check_principal(json!({"AWS": ROOT}), &[(Some("arn:aws-cn:iam::111122223333:user/platform"), false)]);
        check_principal(
            json!({"AWS": [USER, "arn:aws:iam::444455556666:user/other"]}),
            &[
                (Some(USER), true),
                (Some(OTHER_USER), false),
                (Some(FOREIGN_USER), false),
                (Some(ROOT), false),
                (None, false),
            ],
        );
        // No wildcards in principal ARNs: `user/*` is a literal name.
        check_principal(
            json!({"AWS": "arn:aws:iam::111122223333:user/*"}),
            &[(Some(USER), false), (Some("arn:aws:iam::111122223333:user/*"), true)],
        );
        check_principal(
            json!({"AWS": FEDERATED}),
            &[
                (Some(FEDERATED), true),
                (Some("arn:aws:sts::111122223333:federated-user/project-8"), false),
                (Some(USER), false),
            ],
        );
        // A role ARN (with its path) stands for its sessions.
        check_principal(
            json!({"AWS": ROLE}),
            &[
                (Some(SESSION), true),
                (Some(ROLE), true),
                (Some("arn:aws:sts::111122223333:assumed-role/other-role/job-42"), false),
                (Some("arn:aws:sts::444455556666:assumed-role/copy-role/job-42"), false),
                (Some(USER), false),
            ],
        );
        check_principal(
            json!({"AWS": SESSION}),
            &[(Some(SESSION), true), (Some("arn:aws:sts::111122223333:assumed-role/copy-role/job-43"), false)],
        );
        check_principal(
            json!({"Service": ["s3.amazonaws.com"], "AWS": USER}),
            &[(Some("s3.amazonaws.com"), true), (Some(USER), true), (Some("sns.amazonaws.com"), false)],
        );
    }

    #[test]
    fn same_account_resource_policy_rules() {
        let bucket = |principal: &str| {
            doc(&json!({"Version": "2012-10-17", "Statement": [{"Sid": "Grant", "Effect": "Allow",
                "Principal": {"AWS": principal}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}))
        };
        let read = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}));
        let boundary = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "OnlyLists", "Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]}));
        let (to_user, to_root, to_role) = (bucket(USER), bucket(ROOT), bucket(ROLE));
        let case = |caller: &str, identity: &[&PolicyDocument], boundary: Option<&PolicyDocument>, resource| {
            let request = get("arn:aws:s3:::b/k").with_principal(caller);
            decision(&Policies { identity, boundary, resource: ResourcePolicy::Standard(resource) }.decide(&request))
        };
        let got = [
            // A grant to the user itself needs no identity policy...
            case(USER, &[], None, &to_user),
            // ...and is not limited by a permissions boundary.
            case(USER, &[], Some(&boundary), &to_user),
            // A grant to the account delegates to IAM: the identity policy must allow.
            case(USER, &[], None, &to_root),
            case(USER, &[&read], None, &to_root),
            case(USER, &[&read], Some(&boundary), &to_root),
            // A grant to a role ARN reaches its sessions, limited by the boundary.
            case(SESSION, &[], None, &to_role),
            case(SESSION, &[], Some(&boundary), &to_role),
            case(OTHER_USER, &[], None, &to_user),
            // The account root user is allowed by default.
            case(ROOT, &[], None, &to_user),
        ];
        assert_eq!(
            got,
            [
                "Allowed by resource policy Grant",
                "Allowed by resource policy Grant",
                "ImplicitlyDenied",
                "Allowed by identity policy #0 Read",
                "ImplicitlyDenied",
                "Allowed by resource policy Grant",
                "ImplicitlyDenied",
                "ImplicitlyDenied",
                "Allowed",
            ]
        );
    }

    #[test]
    fn not_principal_deny_all_but() {
        let deny_all_but = |exempt: &[&str]| {
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "DenyAllBut", "Effect": "Deny",
                "NotPrincipal": {"AWS": exempt}, "Action": "s3:*",
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}]})
        };
        let by = |caller: Option<&str>| {
            caller.map_or_else(|| get("arn:aws:s3:::b/k"), |c| get("arn:aws:s3:::b/k").with_principal(c))
        };
        // AWS's example: the user and its account.
        check(
            PolicyKind::Resource,
            &deny_all_but(&[USER, ROOT]),
            &[
                (by(Some(USER)), "-"),
                (by(Some(OTHER_USER)), "Deny DenyAllBut"),
                (by(Some(FOREIGN_USER)), "Deny DenyAllBut"),
                (by(None), "Deny DenyAllBut"),
                (get("arn:aws:s3:::elsewhere/k").with_principal(OTHER_USER), "-"),
            ],
        );
        // AWS's caveat: without the account's ARN the account, hence the user, is denied.
        check(PolicyKind::Resource, &deny_all_but(&[USER]), &[(by(Some(USER)), "Deny DenyAllBut")]);
        // For a role session: the session, its role and the account.
        check(
            PolicyKind::Resource,
            &deny_all_but(&[SESSION, ROLE, ROOT]),
            &[
                (by(Some(SESSION)), "-"),
                (by(Some("arn:aws:sts::111122223333:assumed-role/copy-role/job-43")), "Deny DenyAllBut"),
            ],
        );
        check(PolicyKind::Resource, &deny_all_but(&[SESSION, ROOT]), &[(by(Some(SESSION)), "Deny DenyAllBut")]);
        // AWS: a NotPrincipal deny always denies a principal with a permissions boundary.
        let policy = doc(&deny_all_but(&[USER, ROOT]));
        let user_allows = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "All", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}));
        let request = by(Some(USER));
        let with_boundary = Policies {
            identity: &[&user_allows],
            boundary: Some(&user_allows),
            resource: ResourcePolicy::Standard(&policy),
        };
        assert_eq!(decision(&with_boundary.decide(&request)), "ExplicitlyDenied by resource policy DenyAllBut");
        assert_eq!(decision(&evaluate(&request, &[&user_allows], Some(&policy))), "Allowed by identity policy #0 All");
        // NotPrincipal with Allow is not supported by AWS any more: not guessed.
        let allow_all_but = json!({"Version": "2012-10-17", "Statement": {"Sid": "AllowAllBut", "Effect": "Allow",
            "NotPrincipal": {"AWS": USER}, "Action": "s3:*", "Resource": "*"}});
        check(
            PolicyKind::Resource,
            &allow_all_but,
            &[(by(Some(OTHER_USER)), "Unknown AllowAllBut NotPrincipal with Allow")],
        );
    }

    #[test]
    fn condition_based_exceptions_to_a_deny() {
        // The recommended alternative to NotPrincipal, in the shape of the platform's deny-all
        // bucket policy.
        let policy = |operator: &str| {
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "DenyAllButThePlatform", "Effect": "Deny",
                "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                "Condition": {operator: {"aws:PrincipalArn": [USER, "arn:aws:sts::111122223333:federated-user/*"]}}}]})
        };
        let by = |caller: &str| get("arn:aws:s3:::b/k").with_principal(caller);
        for operator in ["ArnNotLike", "StringNotLike"] {
            check(
                PolicyKind::Resource,
                &policy(operator),
                &[
                    (by(USER), "-"),
                    (by(FEDERATED), "-"),
                    (by(OTHER_USER), "Deny DenyAllButThePlatform"),
                    (by(SESSION), "Deny DenyAllButThePlatform"),
                    (by(FOREIGN_USER), "Deny DenyAllButThePlatform"),
                    // Anonymous: no aws:PrincipalArn, and a negated operator holds on an absent key.
                    (get("arn:aws:s3:::b/k"), "Deny DenyAllButThePlatform"),
                ],
            );
        }
    }

    #[test]
    fn kms_key_policies_must_allow() {
        let key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        // AWS's default key policy: delegate to IAM.
        let default_key_policy = doc(&json!({"Version": "2012-10-17", "Id": "key-default-1", "Statement": [
            {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": ROOT},
             "Action": "kms:*", "Resource": "*"}]}));
        let copy_role_only = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "AllowCrossAccountCopy", "Effect": "Allow", "Principal": {"AWS": ROLE},
             "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*"}]}));
        let user_kms = doc(&json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "UseKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": key}]}));
        let decrypt = |caller: &str| Request::new("kms:Decrypt", key).with_principal(caller);
        let got = [
            decision(&evaluate_kms(&decrypt(USER), &[&user_kms], &default_key_policy)),
            decision(&evaluate_kms(&decrypt(USER), &[], &default_key_policy)),
            decision(&evaluate_kms(&decrypt(SESSION), &[], &copy_role_only)),
            // The key policy does not delegate to IAM: the identity policy does not count...
            decision(&evaluate_kms(&decrypt(USER), &[&user_kms], &copy_role_only)),
            // ...whereas for a bucket policy it would.
            decision(&evaluate(&decrypt(USER), &[&user_kms], Some(&copy_role_only))),
            decision(&evaluate_kms(
                &Request::new("kms:Encrypt", key).with_principal(USER),
                &[&user_kms],
                &default_key_policy,
            )),
        ];
        assert_eq!(
            got,
            [
                "Allowed by identity policy #0 UseKey",
                "ImplicitlyDenied",
                "Allowed by key policy AllowCrossAccountCopy",
                "ImplicitlyDenied",
                "Allowed by identity policy #0 UseKey",
                "ImplicitlyDenied",
            ]
        );
    }

    #[test]
    fn icas_unversioned_policy() {
        // ICA's published IAM policy for an unversioned bucket, as the bucket owner pastes it.
        let policy = PolicyDocument::parse_as(
            r#"{
                "Statement": [
                    {
                        "Sid": "Stmt1",
                        "Action": ["s3:PutBucketNotification", "s3:ListBucket", "s3:GetBucketNotification", "s3:GetBucketLocation"],
                        "Effect": "Allow",
                        "Resource": "arn:aws:s3:::customer-bucket"
                    },
                    {
                        "Sid": "Stmt2",
                        "Action": ["s3:PutObject", "s3:GetObject", "s3:RestoreObject", "s3:DeleteObject"],
                        "Effect": "Allow",
                        "Resource": "arn:aws:s3:::customer-bucket/ica-data/*"
                    },
                    {
                        "Sid": "Stmt3",
                        "Action": ["sts:GetFederationToken"],
                        "Effect": "Allow",
                        "Resource": ["*"]
                    }
                ]
            }"#,
            PolicyKind::Identity,
        )
        .expect("ICA's policy parses");
        assert_eq!(policy.version(), PolicyVersion::V2008_10_17);
        let cases = [
            ("s3:GetBucketVersioning", "arn:aws:s3:::customer-bucket", "ImplicitlyDenied"),
            ("s3:ListBucketVersions", "arn:aws:s3:::customer-bucket", "ImplicitlyDenied"),
            ("s3:ListBucket", "arn:aws:s3:::customer-bucket", "Allowed by identity policy #0 Stmt1"),
            ("s3:GetBucketLocation", "arn:aws:s3:::customer-bucket", "Allowed by identity policy #0 Stmt1"),
            (
                "s3:PutObject",
                "arn:aws:s3:::customer-bucket/ica-data/project/x.bam",
                "Allowed by identity policy #0 Stmt2",
            ),
            ("s3:DeleteObject", "arn:aws:s3:::customer-bucket/ica-data/", "Allowed by identity policy #0 Stmt2"),
            ("s3:PutObject", "arn:aws:s3:::customer-bucket/other/x.bam", "ImplicitlyDenied"),
            ("s3:PutObject", "arn:aws:s3:::customer-bucket/ica-data", "ImplicitlyDenied"),
            ("s3:PutObject", "arn:aws:s3:::other-bucket/ica-data/x", "ImplicitlyDenied"),
            ("s3:GetObjectVersion", "arn:aws:s3:::customer-bucket/ica-data/x", "ImplicitlyDenied"),
            (
                "sts:GetFederationToken",
                "arn:aws:sts::111122223333:federated-user/p",
                "Allowed by identity policy #0 Stmt3",
            ),
            ("kms:Decrypt", "arn:aws:kms:eu-west-1:111122223333:key/k", "ImplicitlyDenied"),
        ];
        let got: Vec<_> = cases
            .iter()
            .map(|(action, resource, _)| {
                let request = Request::new(*action, *resource).with_principal(USER);
                (*action, *resource, decision(&evaluate(&request, &[&policy], None)))
            })
            .collect();
        let want: Vec<_> = cases.iter().map(|(a, r, w)| (*a, *r, (*w).to_owned())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn the_principal_sets_the_context_keys_aws_derives() {
        let keys = |principal: &str| {
            let request = Request::new("s3:GetObject", "*").with_principal(principal);
            request.context.iter().map(|(k, v)| format!("{k}={}", v.join(","))).collect::<Vec<_>>().join(" ")
        };
        expect![[r#"
            aws:PrincipalAccount=111122223333 aws:PrincipalArn=arn:aws:iam::111122223333:user/platform aws:PrincipalType=User aws:username=platform
            aws:PrincipalAccount=111122223333 aws:PrincipalArn=arn:aws:iam::111122223333:role/copy-role aws:PrincipalType=AssumedRole
            aws:PrincipalAccount=111122223333 aws:PrincipalArn=arn:aws:sts::111122223333:federated-user/project-7 aws:PrincipalType=FederatedUser aws:userid=111122223333:project-7
            aws:PrincipalAccount=111122223333 aws:PrincipalArn=arn:aws:iam::111122223333:root aws:PrincipalType=Account"#]]
        .assert_eq(&[USER, SESSION, FEDERATED, ROOT].map(keys).join("\n"));
        assert_eq!(keys("s3.amazonaws.com"), "");
        // Keys already set are kept; later ones replace, whatever their case.
        let request = Request::new("s3:GetObject", "*")
            .with_context("AWS:USERNAME", "alias")
            .with_principal(USER)
            .with_context("aws:principalaccount", "999");
        assert_eq!(request.context_values("aws:username"), Some(&["alias".to_owned()][..]));
        assert_eq!(request.context_values("aws:PrincipalAccount"), Some(&["999".to_owned()][..]));
    }

    #[test]
    fn a_single_statement_object_is_a_statement() {
        let policy = json!({"Version": "2012-10-17", "Statement":
            {"Sid": "Only", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}});
        check(
            PolicyKind::Identity,
            &policy,
            &[(get("arn:aws:s3:::b/k"), "Allow Only"), (get("arn:aws:s3:::c/k"), "-")],
        );
    }

    #[test]
    fn parse_errors_name_the_statement_and_the_problem() {
        let statement = |extra: Value| {
            let mut statement = json!({"Effect": "Allow", "Action": "s3:*", "Resource": "*"});
            if let (Value::Object(statement), Value::Object(extra)) = (&mut statement, extra) {
                statement.extend(extra);
            }
            json!({"Version": "2012-10-17", "Statement": [{"Sid": "Fine", "Effect": "Deny", "Action": "*", "Resource": "*"}, statement]})
                .to_string()
        };
        let without = |element: &str| {
            let mut policy: Value = serde_json::from_str(&statement(json!({"Sid": "Short"}))).expect("JSON");
            if let Some(Value::Object(statement)) = policy.pointer_mut("/Statement/1") {
                statement.remove(element);
            }
            policy.to_string()
        };
        let cases = [
            "not json".to_owned(),
            "[]".to_owned(),
            r#"{"Version": "2012-10-18", "Statement": []}"#.to_owned(),
            r#"{"Version": "2012-10-17"}"#.to_owned(),
            r#"{"Version": "2012-10-17", "Statement": [], "Statements": []}"#.to_owned(),
            r#"{"Statement": ["Allow"]}"#.to_owned(),
            statement(json!({"Sid": "Permit", "Effect": "Permit"})),
            without("Effect"),
            statement(json!({"Sid": "Both", "NotAction": "iam:*"})),
            without("Action"),
            statement(json!({"NotResource": "arn:aws:s3:::b"})),
            statement(json!({"Resource": 5})),
            statement(json!({"Action": []})),
            statement(json!({"Action": ["s3:GetObject", 7]})),
            statement(json!({"Sid": 7})),
            statement(json!({"Condtion": {}})),
            statement(json!({"Principal": "someone"})),
            statement(json!({"Principal": {"Users": "x"}})),
            statement(json!({"Principal": "*", "NotPrincipal": {"AWS": USER}})),
            statement(json!({"Condition": "aws:SecureTransport"})),
            statement(json!({"Condition": {"Bool": "true"}})),
            statement(json!({"Condition": {"StringEquals": {"s3:prefix": null}}})),
            statement(json!({"Condition": {"StringEquals": {"s3:prefix": []}}})),
        ];
        let mut errors: Vec<String> = cases
            .iter()
            .map(|json| PolicyDocument::parse(json).map_or_else(|e| e.to_string(), |_| "parsed".to_owned()))
            .collect();
        // The checks that depend on where the policy is attached.
        let kinds = [
            (without("Resource"), PolicyKind::Identity),
            (statement(json!({"Principal": {"AWS": USER}})), PolicyKind::Identity),
            (json!({"Statement": {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}}).to_string(), PolicyKind::Resource),
            (
                json!({"Statement": {"Sid": "AllBut", "Effect": "Allow", "NotPrincipal": {"AWS": USER}, "Action": "s3:*"}})
                    .to_string(),
                PolicyKind::Resource,
            ),
            // A resource policy may leave Resource out: it is the resource it is attached to.
            (json!({"Statement": {"Effect": "Deny", "NotPrincipal": {"AWS": USER}, "Action": "s3:*"}}).to_string(), PolicyKind::Resource),
        ];
        errors.extend(kinds.iter().map(|(json, kind)| {
            PolicyDocument::parse_as(json, *kind).map_or_else(|e| e.to_string(), |_| format!("parsed as {kind:?}"))
        }));
        expect![[r#"
            the policy is not JSON: expected ident at line 1 column 2
            the policy must be a JSON object
            the policy's Version must be "2012-10-17" or "2008-10-17", not "2012-10-18"
            the policy has no Statement
            the policy has an unknown element "Statements"
            Statement[0]: the statement must be a JSON object
            Statement[1] (Sid "Permit"): Effect must be "Allow" or "Deny", not "Permit"
            Statement[1] (Sid "Short"): Effect is missing
            Statement[1] (Sid "Both"): has both Action and NotAction
            Statement[1] (Sid "Short"): has neither Action nor NotAction
            Statement[1]: has both Resource and NotResource
            Statement[1]: Resource must be a string or an array of strings
            Statement[1]: Action must not be empty
            Statement[1]: Action must be a string or an array of strings
            Statement[1]: Sid must be a string
            Statement[1]: unknown element "Condtion"
            Statement[1]: Principal must be "*" or an object of principal types
            Statement[1]: unknown principal type "Users" (expected AWS, Service, Federated or CanonicalUser)
            Statement[1]: has both Principal and NotPrincipal
            Statement[1]: Condition must be an object of condition operators
            Statement[1]: condition operator "Bool" must map context keys to values
            Statement[1]: condition StringEquals "s3:prefix": values must be strings, numbers or booleans, or a non-empty array of them
            Statement[1]: condition StringEquals "s3:prefix": values must be strings, numbers or booleans, or a non-empty array of them
            Statement[1] (Sid "Short"): has neither Resource nor NotResource
            Statement[1]: an identity policy cannot have Principal or NotPrincipal
            Statement[0]: has neither Principal nor NotPrincipal
            Statement[0] (Sid "AllBut"): NotPrincipal with Allow is not supported
            parsed as Resource"#]].assert_eq(&errors.join("\n"));
    }

    proptest! {
        #[test]
        fn a_pattern_without_wildcards_matches_only_itself(a in "[a-z0-9/:._-]{0,12}", b in "[a-z0-9/:._-]{0,12}") {
            prop_assert_eq!(glob(&literal_tokens(&a), &b), a == b);
            let mut prefix = literal_tokens(&a);
            prefix.push(Tok::Star);
            let extended = format!("{a}{b}");
            prop_assert!(glob(&prefix, &extended));
            prop_assert!(glob(&literal_tokens("*"), &b));
        }

        #[test]
        fn dates_and_epoch_seconds_agree(seconds in 0i64..4_102_444_800) {
            let days = seconds.div_euclid(86_400);
            // Civil from days (the inverse of days_from_civil), to print the ISO form.
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let day = doy - (153 * mp + 2) / 5 + 1;
            let month = if mp < 10 { mp + 3 } else { mp - 9 };
            let year = yoe + era * 400 + i64::from(month <= 2);
            let rem = seconds.rem_euclid(86_400);
            let iso = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60);
            prop_assert_eq!(date(&iso), date(&seconds.to_string()));
        }
    }
}
