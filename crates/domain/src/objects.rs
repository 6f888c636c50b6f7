//! The catalog's view of one object key: its versions, delete markers and tombstones, and the
//! rules that apply S3 events to it in any order.
//!
//! The sync engine loads a key's [`KeyState`], turns each event record into a [`Change`] with
//! [`Change::from_record`], applies the changes with [`KeyState::apply`] and stores the state
//! back when one of them answered [`Applied::Changed`]. Events come at least once and in any
//! order. From events alone, the state depends only on the set of events applied, never on
//! their order or repetition, and it never loses, invents or resurrects a version.
//!
//! # Versions
//!
//! S3 names every version of a key by an id. Ids are unique and never reused, with one
//! exception: [`NULL_VERSION`], the id of the version written while the bucket is unversioned or
//! its versioning is suspended, which each such write replaces. So a version other than `null`
//! is written once and removed at most once, while `null` can be rewritten any number of times,
//! as an object or as a delete marker.
//!
//! # Events
//!
//! Every write and delete event carries the key's `sequencer`, which orders all of them.
//! - A write (`Created`, `DeleteMarkerCreated`) of version v with sequencer s is applied when s
//!   is greater than the sequencer of the v the state holds, if any, and than v's tombstone, if
//!   any. It inserts v, or replaces it (a rewrite of `null`).
//! - A removal (`ObjectRemoved:Delete`, a permanent delete of one version) of v with sequencer s
//!   removes v when the state's v is older than s, and always raises v's tombstone to s: a write
//!   of v that arrives late, with a smaller sequencer, is then known to be older than the removal
//!   and is ignored. The state's v being newer than s is a rewrite of `null` after the delete.
//! - The current version is the one with the greatest sequencer; the key is visible when it is an
//!   object rather than a delete marker. Deleting the current version makes the one before it
//!   current, as in S3.
//!
//! An event without a sequencer (moto sends none), a transition (it does not say to which
//! storage class) and a record without its object data cannot be placed: [`Change::from_record`]
//! answers [`NeedsLookup`], and the engine reads the key from S3 and applies the answer with
//! [`KeyState::observe`] instead. Such an event is only a hint that the key changed.
//!
//! # Restores
//!
//! Restore events (`ObjectRestore:Post`, `:Completed`, `:Delete`) are kept per version id apart
//! from the versions, because one can arrive before the create event of its version. They are
//! ordered by event time, not by sequencer; at equal times the later stage wins (in progress,
//! then restored, then expired), the only order in which S3 sends them within one restore. A
//! restore belongs to the content its version had at the restore's time: one older than the
//! write of the state's `null`, or than a removal of `null`, is about content that is gone, and
//! a restore of a removed version other than `null` is dropped with it.
//!
//! # Listings
//!
//! A lookup or a reconcile gives an [`Observation`]: the versions S3 listed for the key, newest
//! first and without sequencers, and `as_of_ms`, a time such that the listing reflects every
//! event with an earlier event time (the request's start minus a margin for clock skew). An
//! event is "before" the state's last observation when its time is earlier than that
//! observation's `as_of_ms`. Events that happened just before a listing may arrive after it, and
//! events that happened after it may arrive before it is applied; neither may undo the other.
//! The rules rest on one fact: every event is delivered in the end. So when the state and a
//! listing disagree about something the listing cannot be shown to reflect, the event's side is
//! kept: had the listing been newer, the event that made it newer would still be on its way.
//!
//! [`KeyState::observe`] merges a listing into the state:
//! - A listed version takes its place in the listing's order (it is "listed"). A version other
//!   than `null` keeps the sequencer the state knew for it; it is left out when the state holds
//!   its tombstone, since it was removed after the listing and that is final.
//! - A listed `null` is left out when the state's `null` is unlisted and came from an event that
//!   is not before, or when the tombstone of `null` is not before and newer than the state's
//!   `null`: that event may be newer than the listing. Otherwise the listing's `null` wins, with
//!   the state's sequencer when the content is the same.
//! - A version of the state that the listing does not show is dropped, unless it is unlisted and
//!   came from an event that is not before (it may have been written after the listing).
//! - Tombstones stay. A restore state that the listing reports counts as of just before
//!   `as_of_ms`, so that every restore event the listing may not reflect wins over it.
//!
//! Events after an observation:
//! - A write of a listed version other than `null` is that version's own create event: the
//!   version takes the sequencer and keeps its place in the listing's order.
//! - A write of a listed `null` that is before only gives its sequencer, and only when the
//!   content is the same (the listed write, or an older identical one); the listing is newer than
//!   any other. One that is not before replaces it, as any newer write replaces `null`.
//! - A write of a version the state does not hold is ignored when it is before: the listing
//!   reflects it and no longer shows the version.
//! - A removal of a listed version removes it, except that a removal of a listed `null` that is
//!   before is older than the listed write.
//!
//! The order of versions merges the two kinds: unlisted versions by sequencer, listed ones in the
//! listing's order, and between an unlisted and a listed version their sequencers when the listed
//! one has one; otherwise the unlisted one is newer (it was written after the listing, or its
//! removal is on its way). Once every event is in, each listed version has its sequencer and this
//! is the order of the sequencers.
//!
//! Observations of a key may come in any order (lookups of several batches run at once): one
//! older than the last applied (`as_of_ms` before it) is ignored, since the newer one already
//! shows everything the older one could. A bucket's events either all carry sequencers (AWS) or none do (moto); the
//! model tests below check both, not a mix, in which a lookup could consume the very event that
//! would have corrected a state kept by the rule above, until the next reconcile. S3 lists `LastModified` in whole seconds; the one known limit is that a restore
//! event about a `null` overwritten within the same second as a listed rewrite can be shown with
//! the new content until its next restore event or listing.
//!
//! Tombstones are needed only while late events can still arrive: [`KeyState::prune_tombstones`]
//! drops those older than the queue's retention.

use std::collections::BTreeMap;
use std::mem;

use serde::{Deserialize, Serialize};

use crate::events::{EventKind, S3Record, Sequencer};

/// S3's id of the version written while a bucket is unversioned or its versioning is suspended.
/// Events of an unversioned bucket carry no version id: they are about this version.
pub const NULL_VERSION: &str = "null";

/// What one version is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionKind {
    Object {
        size: u64,
        /// Without quotes.
        etag: String,
        /// As S3 lists it. Events do not carry it, so a version known only from events has none.
        storage_class: Option<String>,
    },
    DeleteMarker,
}

impl VersionKind {
    /// Whether two writes wrote the same thing. The storage class is no part of it: a
    /// transition changes it without a new version.
    fn same_content(&self, other: &VersionKind) -> bool {
        match (self, other) {
            (
                VersionKind::Object { size, etag, .. },
                VersionKind::Object { size: other_size, etag: other_etag, .. },
            ) => size == other_size && etag == other_etag,
            (VersionKind::DeleteMarker, VersionKind::DeleteMarker) => true,
            _ => false,
        }
    }
}

/// One version of the key as the catalog knows it: from an event, from a listing, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub version_id: String,
    pub kind: VersionKind,
    /// The write's event time, or S3's `LastModified` for a version taken from a listing.
    pub last_modified_ms: i64,
    /// The sequencer of the write's event, once one has been applied.
    #[serde(default, with = "sequencer_text::optional", skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<Sequencer>,
    /// The version's place in the last listing that showed it, 0 for the latest; `None` for a
    /// version known from events only. Every version has a sequencer or a place, or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<u32>,
}

impl Version {
    pub fn is_delete_marker(&self) -> bool {
        self.kind == VersionKind::DeleteMarker
    }
}

/// Where a restore from an archive storage class stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// Requested (`ObjectRestore:Post`), not readable yet.
    InProgress,
    /// A temporary copy is readable (`ObjectRestore:Completed`) until `expires` (RFC 3339).
    Restored { expires: Option<String> },
    /// The temporary copy is gone (`ObjectRestore:Delete`): the object is archived again.
    Expired,
}

impl RestoreState {
    /// The order of the stages within one restore, which breaks ties of event time.
    fn stage(&self) -> u8 {
        match self {
            RestoreState::InProgress => 0,
            RestoreState::Restored { .. } => 1,
            RestoreState::Expired => 2,
        }
    }
}

/// The latest restore state known for one version id, and the event time it is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    pub state: RestoreState,
    pub at_ms: i64,
}

impl Restore {
    fn is_later_than(&self, other: &Restore) -> bool {
        (self.at_ms, self.state.stage()) > (other.at_ms, other.state.stage())
    }
}

/// The latest removal seen of one version id. Writes of that id with a sequencer no greater are
/// older than the removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    #[serde(with = "sequencer_text")]
    pub sequencer: Sequencer,
    /// The removal's event time: it places the removal against listings, and ages it out.
    pub at_ms: i64,
}

/// What one event record means for its key, once it can be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An object was written as version `version_id` (a new id, or a rewrite of `null`).
    Created { version_id: String, sequencer: Sequencer, size: u64, etag: String, at_ms: i64 },
    /// A delete marker was written as version `version_id` (a new id, or `null` on a suspended
    /// bucket, replacing the `null` version).
    DeleteMarkerCreated { version_id: String, sequencer: Sequencer, at_ms: i64 },
    /// Version `version_id` was permanently deleted; on an unversioned bucket, the object.
    Removed { version_id: String, sequencer: Sequencer, at_ms: i64 },
    /// A restore of version `version_id` moved to `state`.
    Restore { version_id: String, state: RestoreState, at_ms: i64 },
}

/// Why an event cannot be applied as it is: the engine reads the key from S3 instead and applies
/// the answer with [`KeyState::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NeedsLookup {
    /// moto sends none; without it the event cannot be ordered against the key's others.
    #[error("the event has no sequencer")]
    NoSequencer,
    #[error("the event time is not a date-time")]
    NoEventTime,
    /// A lifecycle transition or Intelligent-Tiering move: the event does not say to which class.
    #[error("the storage class changed and the event does not say to which")]
    StorageClassChanged,
    /// AWS always sends these with a created event.
    #[error("the created event has no {0}")]
    MissingField(&'static str),
}

impl Change {
    /// `Ok(None)` for events that change nothing the catalog keeps (tags, ACLs, unknown names).
    /// A record without a version id is about [`NULL_VERSION`]: that is what S3 sends for an
    /// unversioned bucket, and for a delete marker on a suspended one it names `null` anyway.
    pub fn from_record(record: &S3Record) -> Result<Option<Change>, NeedsLookup> {
        let version_id = || record.version_id.clone().unwrap_or_else(|| NULL_VERSION.to_owned());
        let sequencer = || record.sequencer.clone().ok_or(NeedsLookup::NoSequencer);
        let at_ms = || record.event_time_millis().ok_or(NeedsLookup::NoEventTime);
        let restore = |state| Ok(Some(Change::Restore { version_id: version_id(), state, at_ms: at_ms()? }));
        match record.kind() {
            EventKind::Ignored => Ok(None),
            EventKind::Transition => Err(NeedsLookup::StorageClassChanged),
            EventKind::Created => Ok(Some(Change::Created {
                sequencer: sequencer()?,
                size: record.size.ok_or(NeedsLookup::MissingField("size"))?,
                etag: record.etag.clone().ok_or(NeedsLookup::MissingField("eTag"))?,
                at_ms: at_ms()?,
                version_id: version_id(),
            })),
            EventKind::DeleteMarkerCreated => Ok(Some(Change::DeleteMarkerCreated {
                sequencer: sequencer()?,
                at_ms: at_ms()?,
                version_id: version_id(),
            })),
            EventKind::Removed => {
                Ok(Some(Change::Removed { sequencer: sequencer()?, at_ms: at_ms()?, version_id: version_id() }))
            }
            EventKind::RestoreStarted => restore(RestoreState::InProgress),
            EventKind::RestoreCompleted => restore(RestoreState::Restored {
                expires: record.restore.as_ref().and_then(|r| r.lifecycle_restoration_expiry_time.clone()),
            }),
            EventKind::RestoreExpired => restore(RestoreState::Expired),
        }
    }
}

/// Whether applying something changed the state, which then has to be stored. Duplicates and
/// events older than what the state knows change nothing.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Unchanged,
}

impl Applied {
    fn from_bool(changed: bool) -> Applied {
        if changed { Applied::Changed } else { Applied::Unchanged }
    }
}

/// What S3 answered about one key: `ListObjectVersions` with the key as prefix, or `HeadObject`
/// on an unversioned bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The listing reflects every event whose time is earlier: take the request's start time
    /// minus a margin for the skew between this clock and S3's.
    pub as_of_ms: i64,
    /// Newest first, as S3 lists them (objects and delete markers in one order), the first being
    /// the latest. Of two entries with one id, the first counts.
    pub versions: Vec<ObservedVersion>,
}

/// One version in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVersion {
    /// [`NULL_VERSION`] for the version of an unversioned bucket.
    pub version_id: String,
    /// With the eTag unquoted, as events give it.
    pub kind: VersionKind,
    pub last_modified_ms: i64,
    /// The restore state S3 reported, or `None` when it reported none or was not asked.
    pub restore: Option<RestoreState>,
}

/// The object the catalog shows for a key: its current version when that is not a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleObject {
    pub version_id: String,
    pub size: u64,
    pub etag: String,
    pub storage_class: Option<String>,
    pub last_modified_ms: i64,
    /// The restore state of this version's content, if it was ever restored.
    pub restore: Option<RestoreState>,
}

/// Everything the catalog knows about one key. See the module documentation for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeyStateData")]
pub struct KeyState {
    /// Sorted by version id, ids unique.
    versions: Vec<Version>,
    /// Left out of the stored form when empty, as they mostly are: a row per key of a big
    /// catalog, the bytes count.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tombstones: BTreeMap<String, Tombstone>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    restores: BTreeMap<String, Restore>,
    /// The `as_of_ms` of the last observation applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    listed_as_of_ms: Option<i64>,
}

/// The stored form, checked on the way in so that a damaged row cannot break the invariants.
#[derive(Deserialize)]
struct KeyStateData {
    #[serde(default)]
    versions: Vec<Version>,
    #[serde(default)]
    tombstones: BTreeMap<String, Tombstone>,
    #[serde(default)]
    restores: BTreeMap<String, Restore>,
    #[serde(default)]
    listed_as_of_ms: Option<i64>,
}

impl TryFrom<KeyStateData> for KeyState {
    type Error = String;

    fn try_from(data: KeyStateData) -> Result<KeyState, String> {
        let mut versions = data.versions;
        versions.sort_by(|a, b| a.version_id.cmp(&b.version_id));
        if let Some(pair) = versions.windows(2).find(|pair| pair[0].version_id == pair[1].version_id) {
            return Err(format!("version {:?} appears twice", pair[0].version_id));
        }
        if let Some(version) = versions.iter().find(|v| v.sequencer.is_none() && v.listed.is_none()) {
            return Err(format!("version {:?} has neither a sequencer nor a listing place", version.version_id));
        }
        Ok(KeyState {
            versions,
            tombstones: data.tombstones,
            restores: data.restores,
            listed_as_of_ms: data.listed_as_of_ms,
        })
    }
}

impl KeyState {
    /// The state of a key the catalog knows nothing about.
    pub fn new() -> KeyState {
        KeyState::default()
    }

    /// All versions, delete markers included, by version id.
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    pub fn tombstone(&self, version_id: &str) -> Option<&Tombstone> {
        self.tombstones.get(version_id)
    }

    /// The latest restore state recorded for a version id, whichever content it was about.
    pub fn restore(&self, version_id: &str) -> Option<&Restore> {
        self.restores.get(version_id)
    }

    /// No versions and no pending restore: the key has nothing to show. Tombstones are not
    /// counted; the engine decides whether to keep them (see [`KeyState::prune_tombstones`]).
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.restores.is_empty()
    }

    /// The versions newest first: S3's version history of the key.
    pub fn history(&self) -> Vec<&Version> {
        let mut unlisted: Vec<&Version> = self.versions.iter().filter(|v| v.listed.is_none()).collect();
        unlisted.sort_by(|a, b| b.sequencer.cmp(&a.sequencer));
        let mut listed: Vec<&Version> = self.versions.iter().filter(|v| v.listed.is_some()).collect();
        listed.sort_by_key(|v| v.listed);
        let mut unlisted = unlisted.into_iter().peekable();
        let mut listed = listed.into_iter().peekable();
        let mut history = Vec::with_capacity(self.versions.len());
        loop {
            let take_unlisted = match (unlisted.peek(), listed.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(u), Some(l)) => match (&u.sequencer, &l.sequencer) {
                    (Some(u), Some(l)) => u > l,
                    // Written after the listing, or removed and the removal is on its way.
                    _ => true,
                },
            };
            history.extend(if take_unlisted { unlisted.next() } else { listed.next() });
        }
        history
    }

    /// The latest version, a delete marker or not.
    pub fn current(&self) -> Option<&Version> {
        self.history().into_iter().next()
    }

    /// The current version when it is an object, with the restore state of its content.
    pub fn visible(&self) -> Option<VisibleObject> {
        let version = self.current()?;
        let VersionKind::Object { size, etag, storage_class } = &version.kind else {
            return None;
        };
        let restore = self
            .restores
            .get(&version.version_id)
            .filter(|r| r.at_ms >= version.last_modified_ms)
            .map(|r| r.state.clone());
        Some(VisibleObject {
            version_id: version.version_id.clone(),
            size: *size,
            etag: etag.clone(),
            storage_class: storage_class.clone(),
            last_modified_ms: version.last_modified_ms,
            restore,
        })
    }

    /// Applies one event's change by the rules of the module documentation.
    pub fn apply(&mut self, change: &Change) -> Applied {
        match change {
            Change::Created { version_id, sequencer, size, etag, at_ms } => {
                let kind = VersionKind::Object { size: *size, etag: etag.clone(), storage_class: None };
                self.write(version_id, sequencer, kind, *at_ms)
            }
            Change::DeleteMarkerCreated { version_id, sequencer, at_ms } => {
                self.write(version_id, sequencer, VersionKind::DeleteMarker, *at_ms)
            }
            Change::Removed { version_id, sequencer, at_ms } => self.remove(version_id, sequencer, *at_ms),
            Change::Restore { version_id, state, at_ms } => {
                self.record_restore(version_id, Restore { state: state.clone(), at_ms: *at_ms })
            }
        }
    }

    /// Merges what S3 answered about the key, by the rules of the module documentation.
    pub fn observe(&mut self, observation: &Observation) -> Applied {
        let as_of = observation.as_of_ms;
        if self.listed_as_of_ms.is_some_and(|last| as_of < last) {
            return Applied::Unchanged;
        }
        let before = self.clone();
        let mut known: BTreeMap<String, Version> =
            mem::take(&mut self.versions).into_iter().map(|v| (v.version_id.clone(), v)).collect();
        let mut merged: BTreeMap<String, Version> = BTreeMap::new();
        let mut restores = Vec::new();
        for (place, seen) in observation.versions.iter().enumerate() {
            let id = &seen.version_id;
            if merged.contains_key(id) {
                continue;
            }
            let tombstone = self.tombstones.get(id);
            let listed = Version {
                version_id: id.clone(),
                kind: seen.kind.clone(),
                last_modified_ms: seen.last_modified_ms,
                sequencer: None,
                listed: Some(u32::try_from(place).unwrap_or(u32::MAX)),
            };
            let version = match known.remove(id) {
                _ if id != NULL_VERSION && tombstone.is_some() => continue,
                Some(state) if id != NULL_VERSION => Version { sequencer: state.sequencer, ..listed },
                None if id != NULL_VERSION => listed,
                Some(state) if state.listed.is_none() && state.last_modified_ms >= as_of => {
                    merged.insert(id.clone(), state);
                    continue;
                }
                Some(state)
                    if tombstone.is_some_and(|t| t.at_ms >= as_of && state.sequencer.as_ref() < Some(&t.sequencer)) =>
                {
                    continue;
                }
                None if tombstone.is_some_and(|t| t.at_ms >= as_of) => continue,
                Some(state) if state.kind.same_content(&listed.kind) => {
                    Version { sequencer: state.sequencer, ..listed }
                }
                _ => listed,
            };
            if let Some(state) = &seen.restore {
                // Just before `as_of`, so that any restore event the listing may miss wins.
                let at_ms = (as_of - 1).max(seen.last_modified_ms);
                restores.push((id.clone(), Restore { state: state.clone(), at_ms }));
            }
            merged.insert(id.clone(), version);
        }
        for (id, version) in known {
            if version.listed.is_none() && version.last_modified_ms >= as_of {
                merged.insert(id, version);
            }
        }
        self.versions = merged.into_values().collect();
        self.listed_as_of_ms = Some(as_of);
        for (id, restore) in restores {
            let _ = self.record_restore(&id, restore);
        }
        // A restore the listing reflects is worth keeping only while its content exists.
        let versions = &self.versions;
        self.restores.retain(|id, restore| {
            restore.at_ms >= as_of
                || versions
                    .iter()
                    .any(|v| &v.version_id == id && v.last_modified_ms <= restore.at_ms && !v.is_delete_marker())
        });
        Applied::from_bool(*self != before)
    }

    /// Drops the tombstones of removals older than `older_than_ms`. Call it with a time before
    /// which no event can still be delivered (the queue's retention, redrives included): a late
    /// write that a dropped tombstone would have stopped brings the removed version back.
    pub fn prune_tombstones(&mut self, older_than_ms: i64) -> Applied {
        let count = self.tombstones.len();
        self.tombstones.retain(|_, t| t.at_ms >= older_than_ms);
        Applied::from_bool(self.tombstones.len() != count)
    }

    fn position(&self, version_id: &str) -> Result<usize, usize> {
        self.versions.binary_search_by(|v| v.version_id.as_str().cmp(version_id))
    }

    /// Whether the last observation reflects an event of this time.
    fn listing_reflects(&self, at_ms: i64) -> bool {
        self.listed_as_of_ms.is_some_and(|as_of| at_ms < as_of)
    }

    fn write(&mut self, version_id: &str, sequencer: &Sequencer, kind: VersionKind, at_ms: i64) -> Applied {
        if self.tombstones.get(version_id).is_some_and(|t| *sequencer <= t.sequencer) {
            return Applied::Unchanged;
        }
        let reflected = self.listing_reflects(at_ms);
        let written = Version {
            version_id: version_id.to_owned(),
            kind,
            last_modified_ms: at_ms,
            sequencer: Some(sequencer.clone()),
            listed: None,
        };
        match self.position(version_id) {
            Err(_) if reflected => return Applied::Unchanged,
            Err(at) => self.versions.insert(at, written),
            Ok(at) => {
                let existing = &mut self.versions[at];
                if existing.sequencer.as_ref().is_some_and(|s| sequencer <= s) {
                    return Applied::Unchanged;
                }
                if existing.listed.is_some() && (version_id != NULL_VERSION || reflected) {
                    if version_id != NULL_VERSION || existing.kind.same_content(&written.kind) {
                        existing.sequencer = Some(sequencer.clone());
                        return Applied::Changed;
                    }
                    return Applied::Unchanged;
                }
                *existing = written;
            }
        }
        // A restore older than this write was about the content it replaced.
        if self.restores.get(version_id).is_some_and(|r| r.at_ms < at_ms) {
            self.restores.remove(version_id);
        }
        Applied::Changed
    }

    fn remove(&mut self, version_id: &str, sequencer: &Sequencer, at_ms: i64) -> Applied {
        let mut changed = false;
        if self.tombstones.get(version_id).is_none_or(|t| *sequencer > t.sequencer) {
            self.tombstones.insert(version_id.to_owned(), Tombstone { sequencer: sequencer.clone(), at_ms });
            changed = true;
        }
        if let Ok(at) = self.position(version_id) {
            let existing = &self.versions[at];
            let newer = match (&existing.sequencer, existing.listed) {
                (Some(s), _) if s >= sequencer => true,
                (_, Some(_)) => version_id == NULL_VERSION && self.listing_reflects(at_ms),
                _ => false,
            };
            if !newer {
                self.versions.remove(at);
                changed = true;
            }
        }
        let gone = self.restores.get(version_id).is_some_and(|r| version_id != NULL_VERSION || r.at_ms < at_ms);
        if gone {
            self.restores.remove(version_id);
            changed = true;
        }
        Applied::from_bool(changed)
    }

    fn record_restore(&mut self, version_id: &str, restore: Restore) -> Applied {
        let removed =
            self.tombstones.get(version_id).is_some_and(|t| version_id != NULL_VERSION || t.at_ms > restore.at_ms);
        let overwritten = self.position(version_id).is_ok_and(|at| self.versions[at].last_modified_ms > restore.at_ms);
        if removed || overwritten || self.restores.get(version_id).is_some_and(|old| !restore.is_later_than(old)) {
            return Applied::Unchanged;
        }
        self.restores.insert(version_id.to_owned(), restore);
        Applied::Changed
    }
}

/// [`Sequencer`] as its text in the stored state.
mod sequencer_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::events::Sequencer;

    pub(super) fn serialize<S: Serializer>(sequencer: &Sequencer, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(sequencer.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Sequencer, D::Error> {
        let text = String::deserialize(deserializer)?;
        Sequencer::parse(&text).map_err(D::Error::custom)
    }

    pub(super) mod optional {
        use serde::{Deserialize, Deserializer, Serializer, de::Error};

        use crate::events::Sequencer;

        pub(crate) fn serialize<S: Serializer>(
            sequencer: &Option<Sequencer>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match sequencer {
                Some(sequencer) => serializer.serialize_some(sequencer.as_str()),
                None => serializer.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Sequencer>, D::Error> {
            let text = Option::<String>::deserialize(deserializer)?;
            text.map(|text| Sequencer::parse(&text).map_err(D::Error::custom)).transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    use super::*;
    use crate::events::{EventName, RestoreData};

    fn seq(text: &str) -> Sequencer {
        Sequencer::parse(text).unwrap()
    }

    fn object(size: u64, etag: &str) -> VersionKind {
        VersionKind::Object { size, etag: etag.to_owned(), storage_class: None }
    }

    fn put(id: &str, sequencer: &str, size: u64, etag: &str, at_ms: i64) -> Step {
        Step::Apply(Change::Created {
            version_id: id.to_owned(),
            sequencer: seq(sequencer),
            size,
            etag: etag.to_owned(),
            at_ms,
        })
    }

    fn marker(id: &str, sequencer: &str, at_ms: i64) -> Step {
        Step::Apply(Change::DeleteMarkerCreated { version_id: id.to_owned(), sequencer: seq(sequencer), at_ms })
    }

    fn delete(id: &str, sequencer: &str, at_ms: i64) -> Step {
        Step::Apply(Change::Removed { version_id: id.to_owned(), sequencer: seq(sequencer), at_ms })
    }

    fn restore(id: &str, state: RestoreState, at_ms: i64) -> Step {
        Step::Apply(Change::Restore { version_id: id.to_owned(), state, at_ms })
    }

    fn restored() -> RestoreState {
        RestoreState::Restored { expires: Some("2025-01-02T00:00:00.000Z".to_owned()) }
    }

    fn listed(id: &str, kind: VersionKind, last_modified_ms: i64) -> ObservedVersion {
        ObservedVersion { version_id: id.to_owned(), kind, last_modified_ms, restore: None }
    }

    fn observe(as_of_ms: i64, versions: Vec<ObservedVersion>) -> Step {
        Step::Observe(Observation { as_of_ms, versions })
    }

    #[derive(Debug)]
    enum Step {
        Apply(Change),
        Observe(Observation),
    }

    impl Step {
        fn run(&self, state: &mut KeyState) -> Applied {
            match self {
                Step::Apply(change) => state.apply(change),
                Step::Observe(observation) => state.observe(observation),
            }
        }
    }

    /// One line per step that changed the state, then the state newest version first.
    fn render(steps: &[Step]) -> String {
        let mut state = KeyState::new();
        let mut out = String::new();
        let applied: Vec<&str> = steps
            .iter()
            .map(|step| match step.run(&mut state) {
                Applied::Changed => "C",
                Applied::Unchanged => "-",
            })
            .collect();
        let _ = writeln!(out, "applied: {}", applied.join(""));
        for version in state.history() {
            let kind = match &version.kind {
                VersionKind::Object { size, etag, .. } => format!("object {size} {etag}"),
                VersionKind::DeleteMarker => "marker".to_owned(),
            };
            let sequencer = version.sequencer.as_ref().map_or("-", Sequencer::as_str);
            let place = version.listed.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let _ = writeln!(out, "{} {kind} seq={sequencer} listed={place}", version.version_id);
        }
        match state.visible() {
            Some(v) => {
                let _ = writeln!(out, "visible: {} restore={:?}", v.version_id, v.restore);
            }
            None => out.push_str("visible: none\n"),
        }
        let tombstones: Vec<String> = state.tombstones.iter().map(|(id, t)| format!("{id}@{}", t.sequencer)).collect();
        if !tombstones.is_empty() {
            let _ = writeln!(out, "tombstones: {}", tombstones.join(" "));
        }
        let restores: Vec<String> =
            state.restores.iter().map(|(id, r)| format!("{id}={:?}@{}", r.state.stage(), r.at_ms)).collect();
        if !restores.is_empty() {
            let _ = writeln!(out, "restores: {}", restores.join(" "));
        }
        // The stored form gives the same state back.
        let json = serde_json::to_string(&state).unwrap();
        let back: KeyState = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(back, state, "{json}");
        out
    }

    fn check(cases: Vec<(&str, Vec<Step>)>, expect: Expect) {
        let mut out = String::new();
        for (name, steps) in cases {
            let _ = write!(out, "## {name}\n{}", render(&steps));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn tricky_orders() {
        check(
            vec![
                ("delete before create", vec![delete("v1", "20", 20), put("v1", "10", 5, "a", 10)]),
                (
                    "unversioned delete before create, then a rewrite",
                    vec![delete("null", "20", 20), put("null", "10", 5, "a", 10), put("null", "30", 6, "b", 30)],
                ),
                (
                    "null rewritten on a suspended bucket, events reversed",
                    vec![
                        put("null", "40", 3, "c", 40),
                        marker("null", "30", 30),
                        put("null", "20", 2, "b", 20),
                        put("v1", "10", 1, "a", 10),
                    ],
                ),
                (
                    "null marker replaces the null version, events reversed",
                    vec![marker("null", "30", 30), put("null", "20", 2, "b", 20), put("v1", "10", 1, "a", 10)],
                ),
                (
                    "delete marker removed makes the previous version current",
                    vec![put("v1", "10", 1, "a", 10), marker("m1", "20", 20), delete("m1", "30", 30)],
                ),
                (
                    "the same, reversed",
                    vec![delete("m1", "30", 30), marker("m1", "20", 20), put("v1", "10", 1, "a", 10)],
                ),
                (
                    "duplicate of an old create after a delete",
                    vec![put("null", "10", 1, "a", 10), delete("null", "20", 20), put("null", "10", 1, "a", 10)],
                ),
                (
                    "delete of null older than its rewrite",
                    vec![put("null", "30", 2, "b", 30), delete("null", "20", 20), put("null", "10", 1, "a", 10)],
                ),
                (
                    "duplicates change nothing",
                    vec![
                        put("v1", "10", 1, "a", 10),
                        put("v1", "10", 1, "a", 10),
                        delete("v1", "20", 20),
                        delete("v1", "20", 20),
                    ],
                ),
                (
                    "padding: 0055AED6DCD90281E50001 is after 0055AED6DCD90281E5 and before 0055AED6DCD90281F",
                    vec![
                        put("null", "0055AED6DCD90281F", 3, "c", 12),
                        put("null", "0055AED6DCD90281E5", 1, "a", 10),
                        put("null", "0055AED6DCD90281E50001", 2, "b", 11),
                        put("null", "0055AED6DCD90281F000", 3, "c", 12),
                    ],
                ),
                (
                    "restore before create",
                    vec![
                        restore("v1", RestoreState::InProgress, 50),
                        put("v1", "10", 1, "a", 10),
                        restore("v1", RestoreState::Expired, 90),
                        restore("v1", restored(), 70),
                        restore("v1", RestoreState::InProgress, 50),
                    ],
                ),
                (
                    "restore of an overwritten null",
                    vec![put("null", "20", 2, "b", 20), restore("null", restored(), 15), put("null", "10", 1, "a", 10)],
                ),
                (
                    "restore of a removed version",
                    vec![
                        restore("v1", restored(), 15),
                        delete("v1", "20", 20),
                        restore("v1", RestoreState::Expired, 25),
                    ],
                ),
                (
                    "restore stages at one time",
                    vec![
                        restore("v1", restored(), 15),
                        restore("v1", RestoreState::Expired, 15),
                        restore("v1", RestoreState::InProgress, 15),
                    ],
                ),
            ],
            expect![[r#"
                ## delete before create
                applied: C-
                visible: none
                tombstones: v1@20
                ## unversioned delete before create, then a rewrite
                applied: C-C
                null object 6 b seq=30 listed=-
                visible: null restore=None
                tombstones: null@20
                ## null rewritten on a suspended bucket, events reversed
                applied: C--C
                null object 3 c seq=40 listed=-
                v1 object 1 a seq=10 listed=-
                visible: null restore=None
                ## null marker replaces the null version, events reversed
                applied: C-C
                null marker seq=30 listed=-
                v1 object 1 a seq=10 listed=-
                visible: none
                ## delete marker removed makes the previous version current
                applied: CCC
                v1 object 1 a seq=10 listed=-
                visible: v1 restore=None
                tombstones: m1@30
                ## the same, reversed
                applied: C-C
                v1 object 1 a seq=10 listed=-
                visible: v1 restore=None
                tombstones: m1@30
                ## duplicate of an old create after a delete
                applied: CC-
                visible: none
                tombstones: null@20
                ## delete of null older than its rewrite
                applied: CC-
                null object 2 b seq=30 listed=-
                visible: null restore=None
                tombstones: null@20
                ## duplicates change nothing
                applied: C-C-
                visible: none
                tombstones: v1@20
                ## padding: 0055AED6DCD90281E50001 is after 0055AED6DCD90281E5 and before 0055AED6DCD90281F
                applied: C---
                null object 3 c seq=0055AED6DCD90281F listed=-
                visible: null restore=None
                ## restore before create
                applied: CCC--
                v1 object 1 a seq=10 listed=-
                visible: v1 restore=Some(Expired)
                restores: v1=2@90
                ## restore of an overwritten null
                applied: C--
                null object 2 b seq=20 listed=-
                visible: null restore=None
                ## restore of a removed version
                applied: CC-
                visible: none
                tombstones: v1@20
                ## restore stages at one time
                applied: CC-
                visible: none
                restores: v1=2@15
            "#]],
        );
    }

    #[test]
    fn observations_and_late_events() {
        check(
            vec![
                (
                    "late create events of listed versions keep the listing's order",
                    vec![
                        observe(100, vec![listed("v2", object(2, "b"), 90), listed("v1", object(1, "a"), 50)]),
                        put("v1", "10", 1, "a", 50),
                        put("v2", "20", 2, "b", 120),
                    ],
                ),
                (
                    "a version written after the listing stays",
                    vec![
                        put("v3", "30", 3, "c", 130),
                        observe(100, vec![listed("v2", object(2, "b"), 90), listed("v1", object(1, "a"), 50)]),
                        put("v2", "20", 2, "b", 90),
                    ],
                ),
                (
                    "a version written after the listing is newer than listed versions without sequencers",
                    vec![
                        observe(100, vec![listed("v2", object(2, "b"), 90), listed("v1", object(1, "a"), 50)]),
                        put("v3", "30", 3, "c", 130),
                    ],
                ),
                (
                    "a removal is not undone by an older listing",
                    vec![delete("v1", "40", 140), observe(100, vec![listed("v1", object(1, "a"), 50)])],
                ),
                (
                    "a version the listing no longer shows is dropped, and its late duplicate ignored",
                    vec![put("v1", "10", 1, "a", 50), observe(100, vec![]), put("v1", "10", 1, "a", 50)],
                ),
                (
                    "null: an event the listing reflects is ignored, a newer one replaces",
                    vec![
                        observe(100, vec![listed("null", object(1, "x"), 80)]),
                        put("null", "10", 2, "y", 90),
                        put("null", "20", 3, "z", 150),
                    ],
                ),
                (
                    "suspended null rewrites in the listing's margin",
                    vec![
                        observe(100, vec![listed("v3", object(3, "c"), 103), listed("null", object(2, "y"), 102)]),
                        put("null", "10", 1, "x", 101),
                        put("null", "20", 2, "y", 102),
                        put("v3", "30", 3, "c", 103),
                    ],
                ),
                (
                    "null removed after the listing, events first",
                    vec![
                        put("null", "10", 1, "x", 80),
                        delete("null", "20", 120),
                        observe(100, vec![listed("null", object(1, "x"), 80)]),
                    ],
                ),
                (
                    "null removed before the listing and rewritten",
                    vec![
                        observe(100, vec![listed("null", object(2, "y"), 95)]),
                        delete("null", "20", 90),
                        put("null", "10", 1, "x", 80),
                        put("null", "30", 2, "y", 95),
                    ],
                ),
                (
                    "observed restore, then a later restore event",
                    vec![
                        Step::Observe(Observation {
                            as_of_ms: 100,
                            versions: vec![ObservedVersion {
                                restore: Some(RestoreState::InProgress),
                                ..listed("v1", object(1, "a"), 50)
                            }],
                        }),
                        restore("v1", RestoreState::Expired, 40),
                        restore("v1", restored(), 100),
                    ],
                ),
                (
                    "a later listing replaces an earlier one",
                    vec![
                        observe(100, vec![listed("v2", object(2, "b"), 90), listed("v1", object(1, "a"), 50)]),
                        observe(
                            200,
                            vec![listed("m3", VersionKind::DeleteMarker, 150), listed("v1", object(1, "a"), 50)],
                        ),
                        put("v2", "20", 2, "b", 90),
                    ],
                ),
            ],
            expect![[r###"
                ## late create events of listed versions keep the listing's order
                applied: CCC
                v2 object 2 b seq=20 listed=0
                v1 object 1 a seq=10 listed=1
                visible: v2 restore=None
                ## a version written after the listing stays
                applied: CCC
                v3 object 3 c seq=30 listed=-
                v2 object 2 b seq=20 listed=0
                v1 object 1 a seq=- listed=1
                visible: v3 restore=None
                ## a version written after the listing is newer than listed versions without sequencers
                applied: CC
                v3 object 3 c seq=30 listed=-
                v2 object 2 b seq=- listed=0
                v1 object 1 a seq=- listed=1
                visible: v3 restore=None
                ## a removal is not undone by an older listing
                applied: CC
                visible: none
                tombstones: v1@40
                ## a version the listing no longer shows is dropped, and its late duplicate ignored
                applied: CC-
                visible: none
                ## null: an event the listing reflects is ignored, a newer one replaces
                applied: C-C
                null object 3 z seq=20 listed=-
                visible: null restore=None
                ## suspended null rewrites in the listing's margin
                applied: CCCC
                v3 object 3 c seq=30 listed=0
                null object 2 y seq=20 listed=-
                visible: v3 restore=None
                ## null removed after the listing, events first
                applied: CCC
                visible: none
                tombstones: null@20
                ## null removed before the listing and rewritten
                applied: CC-C
                null object 2 y seq=30 listed=0
                visible: null restore=None
                tombstones: null@20
                ## observed restore, then a later restore event
                applied: C-C
                v1 object 1 a seq=- listed=0
                visible: v1 restore=Some(Restored { expires: Some("2025-01-02T00:00:00.000Z") })
                restores: v1=1@100
                ## a later listing replaces an earlier one
                applied: CC-
                m3 marker seq=- listed=0
                v1 object 1 a seq=- listed=1
                visible: none
            "###]],
        );
    }

    // The model: S3 for one bucket and a few keys, run through random histories. Its events are
    // delivered shuffled, some of them twice or three times, and the states built from them must
    // show what the model holds.

    const KEYS: usize = 3;
    /// 2025-01-01T00:00:00Z.
    const BASE_MS: i64 = 1_735_689_600_000;

    /// Proptest cases per model test: `BYOS_MODEL_CASES`, 10,000 unless set (for a longer run).
    fn model_cases() -> u32 {
        std::env::var("BYOS_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
    }

    /// splitmix64: the choices a history needs beyond its operations (sequencer steps, copies,
    /// delivery order), from one seed proptest generates.
    #[derive(Debug, Clone)]
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn shuffle<T>(&mut self, items: &mut [T]) {
            for i in (1..items.len()).rev() {
                items.swap(i, self.below(i + 1));
            }
        }
    }

    fn time_text(ms: i64) -> String {
        let t = ms - BASE_MS;
        let (hours, minutes, seconds, millis) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
        format!("2025-01-01T{hours:02}:{minutes:02}:{seconds:02}.{millis:03}Z")
    }

    /// A sequencer after `previous` the ways S3's grow: a digit raised with the digits after it
    /// dropped (a shorter text that is later), digits appended, trailing zeros added (a longer
    /// text that is no later than without them).
    fn next_sequencer(previous: &str, rng: &mut Rng) -> String {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut next = previous.as_bytes().to_vec();
        let choice = rng.below(4);
        if choice == 0 {
            for _ in 0..rng.below(3) {
                next.push(DIGITS[rng.below(16)]);
            }
            next.push(DIGITS[1 + rng.below(15)]);
        } else {
            let raisable: Vec<usize> =
                (next.len().saturating_sub(4)..next.len()).filter(|&i| next[i] != b'F').collect();
            if raisable.is_empty() {
                next.push(DIGITS[1 + rng.below(15)]);
            } else {
                let at = raisable[rng.below(raisable.len())];
                let digit = DIGITS.iter().position(|&d| d == next[at]).unwrap_or(0);
                next[at] = DIGITS[digit + 1];
                next.truncate(at + 1);
            }
            if choice == 1 {
                next.extend(std::iter::repeat_n(b'0', 1 + rng.below(3)));
            }
        }
        String::from_utf8(next).unwrap()
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Versioning {
        Unversioned,
        Enabled,
        Suspended,
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Unversioned or suspended to enabled.
        Enable,
        /// Enabled to suspended; S3 never goes back to unversioned.
        Suspend,
        Put {
            key: usize,
            size: u64,
            etag: u8,
        },
        /// A simple delete, without a version id.
        Delete {
            key: usize,
        },
        /// A permanent delete of one existing version or delete marker.
        DeleteVersion {
            key: usize,
            pick: usize,
        },
        /// Post (0), completion (1) or expiry (2) of a restore of an existing object version,
        /// when its restore is at the stage before.
        Restore {
            key: usize,
            pick: usize,
            stage: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few sizes and eTags, so that a rewrite often writes the same content again.
        prop_oneof![
            1 => Just(Op::Enable),
            1 => Just(Op::Suspend),
            6 => (0..KEYS, 0u64..2, 0u8..3).prop_map(|(key, size, etag)| Op::Put { key, size, etag }),
            3 => (0..KEYS).prop_map(|key| Op::Delete { key }),
            3 => (0..KEYS, 0usize..8).prop_map(|(key, pick)| Op::DeleteVersion { key, pick }),
            3 => (0..KEYS, 0usize..8, 0u8..3).prop_map(|(key, pick, stage)| Op::Restore { key, pick, stage }),
        ]
    }

    #[derive(Debug, Clone)]
    struct ModelVersion {
        id: String,
        kind: VersionKind,
        written_ms: i64,
        restore: Option<RestoreState>,
    }

    #[derive(Debug, Clone)]
    struct ModelKey {
        /// In the order written, the latest last.
        versions: Vec<ModelVersion>,
        sequencer: String,
    }

    #[derive(Debug)]
    struct Event {
        key: usize,
        /// The index of the operation that sent it.
        op: usize,
        record: S3Record,
    }

    struct Model {
        versioning: Versioning,
        keys: Vec<ModelKey>,
        clock_ms: i64,
        ids: u32,
        ops: usize,
        rng: Rng,
        events: Vec<Event>,
    }

    impl Model {
        fn new(seed: u64) -> Model {
            let mut rng = Rng(seed);
            let keys = (0..KEYS)
                .map(|_| ModelKey { versions: Vec::new(), sequencer: format!("{:016X}", rng.next() >> 4) })
                .collect();
            Model {
                versioning: Versioning::Unversioned,
                keys,
                clock_ms: BASE_MS,
                ids: 0,
                ops: 0,
                rng,
                events: Vec::new(),
            }
        }

        /// Runs one operation; every operation takes 1 to 3 ms.
        fn run(&mut self, op: &Op) {
            self.clock_ms += 1 + self.rng.below(3) as i64;
            self.step(op);
            self.ops += 1;
        }

        fn step(&mut self, op: &Op) {
            match *op {
                Op::Enable => self.versioning = Versioning::Enabled,
                Op::Suspend => {
                    if self.versioning == Versioning::Enabled {
                        self.versioning = Versioning::Suspended;
                    }
                }
                Op::Put { key, size, etag } => {
                    let etag = format!("{etag:032x}");
                    let event_id = match self.versioning {
                        Versioning::Unversioned => None,
                        // Either way it names `null`.
                        Versioning::Suspended => (self.rng.below(2) == 0).then(|| NULL_VERSION.to_owned()),
                        Versioning::Enabled => Some(self.new_id()),
                    };
                    let id = event_id.clone().unwrap_or_else(|| NULL_VERSION.to_owned());
                    self.write(key, id, object(size, &etag));
                    self.emit(key, EventName::ObjectCreatedPut, event_id, Some(size), Some(etag), None);
                }
                Op::Delete { key } => match self.versioning {
                    Versioning::Unversioned => {
                        // S3 answers 204 and sends the event whether or not the object existed.
                        self.keys[key].versions.retain(|v| v.id != NULL_VERSION);
                        self.emit(key, EventName::ObjectRemovedDelete, None, None, None, None);
                    }
                    Versioning::Suspended => {
                        self.write(key, NULL_VERSION.to_owned(), VersionKind::DeleteMarker);
                        let id = Some(NULL_VERSION.to_owned());
                        self.emit(key, EventName::ObjectRemovedDeleteMarkerCreated, id, None, None, None);
                    }
                    Versioning::Enabled => {
                        let id = self.new_id();
                        self.write(key, id.clone(), VersionKind::DeleteMarker);
                        self.emit(key, EventName::ObjectRemovedDeleteMarkerCreated, Some(id), None, None, None);
                    }
                },
                Op::DeleteVersion { key, pick } => {
                    let versions = &mut self.keys[key].versions;
                    if versions.is_empty() {
                        return;
                    }
                    let removed = versions.remove(pick % versions.len());
                    self.emit(key, EventName::ObjectRemovedDelete, Some(removed.id), None, None, None);
                }
                Op::Restore { key, pick, stage } => {
                    let objects: Vec<usize> = (0..self.keys[key].versions.len())
                        .filter(|&i| !matches!(self.keys[key].versions[i].kind, VersionKind::DeleteMarker))
                        .collect();
                    if objects.is_empty() {
                        return;
                    }
                    let expires = time_text(self.clock_ms + 86_400_000);
                    let version = &mut self.keys[key].versions[objects[pick % objects.len()]];
                    let (state, name, data) = match (stage, &version.restore) {
                        (0, None | Some(RestoreState::Expired)) => {
                            (RestoreState::InProgress, EventName::ObjectRestorePost, None)
                        }
                        (1, Some(RestoreState::InProgress)) => (
                            RestoreState::Restored { expires: Some(expires.clone()) },
                            EventName::ObjectRestoreCompleted,
                            Some(RestoreData {
                                lifecycle_restoration_expiry_time: Some(expires),
                                lifecycle_restore_storage_class: Some("GLACIER".to_owned()),
                            }),
                        ),
                        (2, Some(RestoreState::Restored { .. })) => {
                            (RestoreState::Expired, EventName::ObjectRestoreDelete, None)
                        }
                        _ => return,
                    };
                    version.restore = Some(state);
                    let id = (self.versioning != Versioning::Unversioned).then(|| version.id.clone());
                    self.emit(key, name, id, None, None, data);
                }
            }
        }

        fn new_id(&mut self) -> String {
            self.ids += 1;
            format!("3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrH{}", self.ids)
        }

        /// A write of `null` replaces the `null` version or marker wherever it is in the history.
        fn write(&mut self, key: usize, id: String, kind: VersionKind) {
            let versions = &mut self.keys[key].versions;
            if id == NULL_VERSION {
                versions.retain(|v| v.id != NULL_VERSION);
            }
            versions.push(ModelVersion { id, kind, written_ms: self.clock_ms, restore: None });
        }

        fn emit(
            &mut self,
            key: usize,
            event_name: EventName,
            version_id: Option<String>,
            size: Option<u64>,
            etag: Option<String>,
            restore: Option<RestoreData>,
        ) {
            let previous = seq(&self.keys[key].sequencer);
            let text = next_sequencer(&self.keys[key].sequencer, &mut self.rng);
            let sequencer = seq(&text);
            assert!(sequencer > previous, "{text} is not after {previous}");
            self.keys[key].sequencer = text;
            let record = S3Record {
                event_version: "2.1".to_owned(),
                event_time: time_text(self.clock_ms),
                aws_region: "eu-central-1".to_owned(),
                event_name,
                bucket: "customer-bucket".to_owned(),
                key: format!("project/file-{key}"),
                size,
                etag,
                version_id,
                sequencer: Some(sequencer),
                configuration_id: Some("gds:objectcreated".to_owned()),
                restore,
            };
            assert_eq!(record.event_time_millis(), Some(self.clock_ms));
            self.events.push(Event { key, op: self.ops, record });
        }

        /// What S3 lists for the keys now, newest first.
        fn listings(&self) -> Vec<Vec<ObservedVersion>> {
            let listing = |key: &ModelKey| {
                key.versions
                    .iter()
                    .rev()
                    .map(|v| ObservedVersion {
                        version_id: v.id.clone(),
                        kind: v.kind.clone(),
                        last_modified_ms: v.written_ms,
                        restore: v.restore.clone(),
                    })
                    .collect()
            };
            self.keys.iter().map(listing).collect()
        }
    }

    /// Some events once, some twice or three times.
    fn copies(rng: &mut Rng) -> usize {
        match rng.below(8) {
            0 => 3,
            1 | 2 => 2,
            _ => 1,
        }
    }

    fn apply_record(state: &mut KeyState, record: &S3Record) -> Result<(), TestCaseError> {
        match Change::from_record(record) {
            Ok(Some(change)) => {
                let _ = state.apply(&change);
                Ok(())
            }
            other => Err(TestCaseError::fail(format!("{other:?} for {record:?}"))),
        }
    }

    /// The versions newest first, the visible object and its restore state, as the model has them.
    fn check_key(state: &KeyState, model: &ModelKey) -> Result<(), TestCaseError> {
        let content = |kind: &VersionKind| match kind {
            VersionKind::Object { size, etag, .. } => object(*size, etag),
            VersionKind::DeleteMarker => VersionKind::DeleteMarker,
        };
        let actual: Vec<(&str, VersionKind)> =
            state.history().into_iter().map(|v| (v.version_id.as_str(), content(&v.kind))).collect();
        let expected: Vec<(&str, VersionKind)> =
            model.versions.iter().rev().map(|v| (v.id.as_str(), v.kind.clone())).collect();
        prop_assert_eq!(actual, expected, "state {:?}", state);
        let actual = state.visible().map(|v| (v.version_id, v.size, v.etag, v.restore));
        let expected = model.versions.last().and_then(|v| match &v.kind {
            VersionKind::Object { size, etag, .. } => Some((v.id.clone(), *size, etag.clone(), v.restore.clone())),
            VersionKind::DeleteMarker => None,
        });
        prop_assert_eq!(actual, expected, "state {:?}", state);
        Ok(())
    }

    proptest! {
        // No regression files: the seeds of a failure are in its message.
        #![proptest_config(ProptestConfig { cases: model_cases(), failure_persistence: None, ..ProptestConfig::default() })]

        /// Events alone, in any order and repeated: the model's versions, current object and
        /// restore state, and the very state that applying each event once in order gives.
        #[test]
        fn shuffled_events_give_the_model(ops in prop::collection::vec(op(), 5..25), seed in any::<u64>()) {
            let mut model = Model::new(seed);
            for op in &ops {
                model.run(op);
            }
            let mut rng = Rng(!seed);
            let mut deliveries: Vec<&Event> = Vec::new();
            for event in &model.events {
                for _ in 0..copies(&mut rng) {
                    deliveries.push(event);
                }
            }
            rng.shuffle(&mut deliveries);
            let mut states = vec![KeyState::new(); KEYS];
            for event in deliveries {
                apply_record(&mut states[event.key], &event.record)?;
            }
            let mut in_order = vec![KeyState::new(); KEYS];
            for event in &model.events {
                apply_record(&mut in_order[event.key], &event.record)?;
            }
            for key in 0..KEYS {
                check_key(&states[key], &model.keys[key])?;
                prop_assert_eq!(&states[key], &in_order[key]);
            }
        }

        /// Events delivered late and early around listings: reconciles taken at random moments
        /// and applied up to three operations later (so events after the listing can come
        /// first), with a random margin before their `as_of_ms`; or, in moto's way (no
        /// sequencers), a lookup for every write or delete event, taken when the event arrives
        /// and applied up to three operations later, so that lookups of one key cross (batches
        /// look up at once). Every event is delivered after it happened; reconciles are applied
        /// in the order they were taken.
        #[test]
        fn listings_and_late_events_give_the_model(
            ops in prop::collection::vec(op(), 5..25),
            seed in any::<u64>(),
            reconciles in prop::collection::vec((0usize..25, 0usize..4), 0..3),
            moto in prop::bool::weighted(0.2),
        ) {
            let mut model = Model::new(seed);
            // listings[j] is S3 after the first j operations; first_unlisted_ms[j] is the time of
            // the operation after those, the earliest a listing at j does not reflect.
            let mut listings = vec![model.listings()];
            let mut first_unlisted_ms = Vec::new();
            for op in &ops {
                model.run(op);
                first_unlisted_ms.push(model.clock_ms);
                listings.push(model.listings());
            }
            first_unlisted_ms.push(model.clock_ms + 1);
            let n = ops.len();
            enum Delivery<'a> {
                Event(&'a Event),
                /// A listing taken after the first so many operations.
                Reconcile(usize),
            }
            let mut rng = Rng(!seed);
            let mut schedule: Vec<(usize, Delivery<'_>)> = Vec::new();
            for event in &model.events {
                for _ in 0..copies(&mut rng) {
                    schedule.push((event.op + 1 + rng.below(n - event.op), Delivery::Event(event)));
                }
            }
            // Taken and applied slots, both in the order taken (a lookup may cross a reconcile).
            let mut taken: Vec<(usize, usize)> =
                reconciles.iter().map(|&(slot, delay)| (slot.min(n), (slot + delay).min(n))).collect();
            taken.sort_unstable();
            for i in 1..taken.len() {
                taken[i].1 = taken[i].1.max(taken[i - 1].1);
            }
            schedule.extend(taken.iter().map(|&(slot, applied)| (applied, Delivery::Reconcile(slot))));
            rng.shuffle(&mut schedule);
            schedule.sort_by_key(|(slot, _)| *slot);
            // Within one slot the shuffle may have swapped two reconciles: put them back in order.
            let places: Vec<usize> =
                (0..schedule.len()).filter(|&i| matches!(schedule[i].1, Delivery::Reconcile(_))).collect();
            for (place, &(slot, _)) in places.into_iter().zip(&taken) {
                schedule[place].1 = Delivery::Reconcile(slot);
            }
            // The engine dates a listing by when its request started, less a fixed margin for
            // clocks: a random margin per case, the same for every listing of the case, so that a
            // listing taken later is never dated earlier.
            let margin = rng.below(7) as i64;
            let observation = |slot: usize, key: usize| Observation {
                as_of_ms: first_unlisted_ms[slot] - margin,
                versions: listings[slot][key].clone(),
            };
            let mut states = vec![KeyState::new(); KEYS];
            // moto's lookups: (slot to apply it at, key, what S3 answered).
            let mut lookups: Vec<(usize, usize, Observation)> = Vec::new();
            let mut order = Rng(seed.rotate_left(17));
            let apply_due = |lookups: &mut Vec<(usize, usize, Observation)>, states: &mut [KeyState], order: &mut Rng, slot: usize| {
                let (mut due, later): (Vec<_>, Vec<_>) = lookups.drain(..).partition(|(at, ..)| *at <= slot);
                *lookups = later;
                order.shuffle(&mut due);
                for (_, key, observation) in due {
                    let _ = states[key].observe(&observation);
                }
            };
            for (slot, delivery) in schedule {
                apply_due(&mut lookups, &mut states, &mut order, slot.saturating_sub(1));
                match delivery {
                    Delivery::Reconcile(taken) => {
                        for (key, state) in states.iter_mut().enumerate() {
                            let _ = state.observe(&observation(taken, key));
                        }
                    }
                    Delivery::Event(event) => {
                        let mut record = event.record.clone();
                        if moto {
                            record.sequencer = None;
                        }
                        match Change::from_record(&record) {
                            Ok(Some(change)) => {
                                let _ = states[event.key].apply(&change);
                            }
                            Err(NeedsLookup::NoSequencer) => {
                                let delay = order.below(4);
                                lookups.push(((slot + delay).min(n), event.key, observation(slot, event.key)));
                            }
                            other => prop_assert!(false, "{:?} for {:?}", other, record),
                        }
                    }
                }
            }
            apply_due(&mut lookups, &mut states, &mut order, n);
            for (state, key) in states.iter().zip(&model.keys) {
                check_key(state, key)?;
            }
        }
    }
}
