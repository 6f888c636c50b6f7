//! The catalog of a project's data: what [`DataStore`](crate::DataStore) keeps, and the pure
//! part of applying a batch: each key's state under the domain's rules
//! ([`byos_domain::objects`]), then what that means for the visible tree.
//!
//! The tree has a file entry for every visible key and a folder entry for every folder that
//! holds anything or has a folder marker object (a key ending in `/`). A folder counts its
//! direct children; it goes away by itself when the count drops to zero and it has no marker,
//! and that may empty its parent in turn. Keys are relative to the project's prefix; the empty
//! key is the project folder's own marker object, which has a state but no entry (the project's
//! root is no entry of any folder).
//!
//! A key's row stays while its state holds anything, tombstones included: a tombstone is what
//! stops a late write of a removed version from bringing it back, so the row must outlive the
//! version (the engine drops old tombstones with [`KeyState::prune_tombstones`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use byos_domain::objects::{Applied, Change, KeyState, Observation, RestoreState, VisibleObject};

/// What happened to one key: changes from events, or what S3 answered about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUpdate {
    /// Changes from event records, in any order.
    Changes { key: String, changes: Vec<Change> },
    /// A lookup's or a reconcile's answer. With a `fence`, it is skipped when the key changed
    /// at a later revision: an event that came during the scan is never overwritten by it.
    Observed { key: String, observation: Observation, fence: Option<i64> },
    /// Drops the key's tombstones of removals older than `older_than_ms`, a time before which no
    /// event can still arrive; a key left with nothing goes.
    Prune { key: String, older_than_ms: i64 },
}

/// Whether the store can keep `key` (relative to its project). PostgreSQL's text cannot hold
/// NUL, which S3 keys may contain; both stores refuse it, so that they behave the same, and
/// callers skip such a key (with a dead letter) instead of failing the batch it came in.
pub fn storable_key(key: &str) -> bool {
    !key.contains('\0')
}

impl KeyUpdate {
    pub fn key(&self) -> &str {
        match self {
            KeyUpdate::Changes { key, .. } | KeyUpdate::Observed { key, .. } | KeyUpdate::Prune { key, .. } => key,
        }
    }
}

/// What a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Keys whose state changed.
    pub changed: u32,
    /// Keys the batch left as they were (duplicates, older events, fenced observations): each
    /// key of the batch counts once, as changed or as unchanged.
    pub unchanged: u32,
    /// Observations skipped because an event changed the key after their fence.
    pub fenced: u32,
    /// The project's revision after the batch.
    pub revision: i64,
}

/// A key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key: String,
    pub state: KeyState,
    /// The project revision at which the key last changed.
    pub revision: i64,
}

/// One entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The folder it is in, relative to the project: `""` or `a/b/`.
    pub parent: String,
    /// The file's name, or the folder's with its `/`.
    pub name: String,
    pub kind: EntryKind,
}

impl Entry {
    /// The entry's path relative to the project: `a/b/c.txt`, `a/b/`.
    pub fn path(&self) -> String {
        format!("{}{}", self.parent, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File(FileEntry),
    Folder {
        /// A folder marker object keeps the folder while it is empty.
        marker: bool,
        /// Direct children: files and folders.
        children: u64,
    },
}

/// A visible object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub storage_class: Option<String>,
    pub version_id: Option<String>,
    pub restore: Option<RestoreState>,
}

impl FileEntry {
    fn from_visible(visible: VisibleObject) -> FileEntry {
        FileEntry {
            size: visible.size,
            etag: visible.etag,
            last_modified_ms: visible.last_modified_ms,
            storage_class: visible.storage_class,
            version_id: Some(visible.version_id).filter(|v| v != byos_domain::objects::NULL_VERSION),
            restore: visible.restore,
        }
    }
}

/// Splits a relative key into its folder and name: `a/b/c` is (`a/b/`, `c`), `a/b/` is (`a/`,
/// `b/`), `c` is (``, `c`).
pub(crate) fn split(key: &str) -> (&str, &str) {
    let body = key.strip_suffix('/').unwrap_or(key);
    match body.rfind('/') {
        Some(at) => (&key[..=at], &key[at + 1..]),
        None => ("", key),
    }
}

/// A folder's row, as the batch needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FolderRow {
    pub(crate) children: i64,
    pub(crate) marker: bool,
}

/// What a batch does to one row of the catalog, known from the rows it loaded: the batch holds
/// its project's lock, so no other writer adds or removes a row in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RowWrite<T> {
    /// A row the table does not have: written without looking for one.
    Insert(T),
    /// Replaces the row the table has.
    Update(T),
    /// Removes the row.
    Delete,
}

impl<T> RowWrite<T> {
    /// The write that takes a row from `before` (whether the table has it) to `after`.
    fn new(before: bool, after: Option<T>) -> RowWrite<T> {
        match after {
            Some(row) if before => RowWrite::Update(row),
            Some(row) => RowWrite::Insert(row),
            None => RowWrite::Delete,
        }
    }
}

/// What a batch writes, computed from the loaded rows. Keys and paths borrow from the batch's
/// updates.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Keys whose row changes, in key order, with their new state; a key loses its row once its
    /// state holds nothing at all (not even a tombstone).
    pub(crate) states: Vec<(&'a str, RowWrite<KeyState>)>,
    /// Files whose entry changes, as (folder, name, what becomes of the entry).
    pub(crate) files: Vec<(&'a str, &'a str, RowWrite<FileEntry>)>,
    /// Folder paths whose marker appeared (`true`) or went (`false`).
    pub(crate) markers: BTreeMap<&'a str, bool>,
    /// Folder paths whose child count changes by files appearing or going.
    pub(crate) deltas: BTreeMap<&'a str, i64>,
    pub(crate) outcome: ApplyOutcome,
}

/// Applies the updates to the loaded states (a key the store does not have is missing).
pub(crate) fn plan<'a>(updates: &'a [KeyUpdate], mut loaded: HashMap<String, (KeyState, i64)>) -> Plan<'a> {
    let mut plan = Plan::default();
    // A key may come several times in one batch: its updates apply in turn to one state, in the
    // order they came (the sort is stable).
    let mut order: Vec<&KeyUpdate> = updates.iter().collect();
    order.sort_by(|a, b| a.key().cmp(b.key()));
    for same_key in order.chunk_by(|a, b| a.key() == b.key()) {
        let key = same_key[0].key();
        let stored = loaded.remove(key);
        let has_row = stored.is_some();
        let (mut state, revision) = stored.unwrap_or_default();
        let before = state.visible();
        let mut changed = false;
        for update in same_key {
            match update {
                KeyUpdate::Changes { changes, .. } => {
                    for change in changes {
                        changed |= state.apply(change) == Applied::Changed;
                    }
                }
                KeyUpdate::Prune { older_than_ms, .. } => {
                    changed |= state.prune_tombstones(*older_than_ms) == Applied::Changed;
                }
                KeyUpdate::Observed { observation, fence, .. } => {
                    // A change earlier in this batch is at this batch's revision, which is after
                    // any fence: the observation is skipped as if the change had come in a batch
                    // of its own.
                    if fence.is_some_and(|fence| changed || revision > fence) {
                        plan.outcome.fenced += 1;
                        continue;
                    }
                    changed |= state.observe(observation) == Applied::Changed;
                }
            }
        }
        if !changed {
            plan.outcome.unchanged += 1;
            continue;
        }
        plan.outcome.changed += 1;
        let after = state.visible();
        // The project folder's own marker (the empty key) shows as no entry.
        if before != after && !key.is_empty() {
            let (parent, name) = split(key);
            if key.ends_with('/') {
                // A folder marker object: it shows as the folder, never as a file.
                if before.is_some() != after.is_some() {
                    plan.markers.insert(key, after.is_some());
                }
            } else {
                match (before.is_some(), after.is_some()) {
                    (false, true) => *plan.deltas.entry(parent).or_default() += 1,
                    (true, false) => *plan.deltas.entry(parent).or_default() -= 1,
                    _ => {}
                }
                plan.files.push((parent, name, RowWrite::new(before.is_some(), after.map(FileEntry::from_visible))));
            }
        }
        // A state without versions may still hold tombstones, or the time of its last
        // listing: the row stays until there is nothing at all to keep.
        let keep = state != KeyState::default();
        if has_row || keep {
            plan.states.push((key, RowWrite::new(has_row, keep.then_some(state))));
        }
    }
    plan
}

impl<'a> Plan<'a> {
    /// Every folder whose row the batch may change: those it touches and their ancestors.
    pub(crate) fn folders(&self) -> BTreeSet<&'a str> {
        let mut folders = BTreeSet::new();
        for path in self.deltas.keys().chain(self.markers.keys()) {
            let mut path = *path;
            while !path.is_empty() && folders.insert(path) {
                path = split(path).0;
            }
        }
        folders
    }
}

/// The folder rows after the batch (`None`: the folder goes), deepest first, from the rows
/// before it. A folder that appears or goes changes its parent's count in turn.
pub(crate) fn fold_folders<'a>(
    plan: &Plan<'a>,
    mut rows: BTreeMap<&'a str, Option<FolderRow>>,
) -> Vec<(&'a str, Option<FolderRow>)> {
    let mut deltas = plan.deltas.clone();
    let mut paths: Vec<&'a str> = rows.keys().copied().collect();
    // Deeper folders first, so that their appearing or going reaches the parent's count.
    paths.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    let mut out = Vec::new();
    for path in paths {
        let before = rows.remove(path).flatten();
        let mut after = before.unwrap_or_default();
        after.children += deltas.remove(path).unwrap_or(0);
        if let Some(marker) = plan.markers.get(path) {
            after.marker = *marker;
        }
        let exists = after.children > 0 || after.marker;
        let parent = split(path).0;
        match (before.is_some(), exists) {
            (false, true) => *deltas.entry(parent).or_default() += 1,
            (true, false) => *deltas.entry(parent).or_default() -= 1,
            _ => {}
        }
        if before != Some(after) || !exists {
            out.push((path, exists.then_some(after)));
        }
    }
    out
}

/// How a restore state is stored in an entry's `archive` column.
pub(crate) fn restore_text(restore: Option<&RestoreState>) -> Option<String> {
    restore.map(|r| match r {
        RestoreState::InProgress => "in-progress".to_owned(),
        RestoreState::Restored { expires } => format!("restored:{}", expires.as_deref().unwrap_or("")),
        RestoreState::Expired => "expired".to_owned(),
    })
}

pub(crate) fn restore_from_text(text: Option<&str>) -> Option<RestoreState> {
    match text? {
        "in-progress" => Some(RestoreState::InProgress),
        "expired" => Some(RestoreState::Expired),
        other => other
            .strip_prefix("restored:")
            .map(|e| RestoreState::Restored { expires: Some(e.to_owned()).filter(|e| !e.is_empty()) }),
    }
}

#[cfg(test)]
mod tests {
    use byos_domain::events::Sequencer;
    use byos_domain::objects::NULL_VERSION;

    use super::*;

    #[test]
    fn keys_split_into_folder_and_name() {
        assert_eq!(split("a/b/c.txt"), ("a/b/", "c.txt"));
        assert_eq!(split("a/b/"), ("a/", "b/"));
        assert_eq!(split("c"), ("", "c"));
        assert_eq!(split("top/"), ("", "top/"));
    }

    fn folders<'a>(plan: &Plan<'a>, rows: &[(&'a str, Option<FolderRow>)]) -> Vec<(&'a str, Option<FolderRow>)> {
        let mut all: BTreeMap<&str, Option<FolderRow>> = plan.folders().into_iter().map(|f| (f, None)).collect();
        for (path, row) in rows {
            all.insert(*path, *row);
        }
        fold_folders(plan, all)
    }

    #[test]
    fn a_first_file_makes_its_folders_and_the_last_one_takes_them_away() {
        let mut plan = Plan::default();
        plan.deltas.insert("a/b/", 1);
        let made = folders(&plan, &[]);
        assert_eq!(
            made,
            [
                ("a/b/", Some(FolderRow { children: 1, marker: false })),
                ("a/", Some(FolderRow { children: 1, marker: false })),
            ]
        );
        let mut plan = Plan::default();
        plan.deltas.insert("a/b/", -1);
        let rows = [
            ("a/b/", Some(FolderRow { children: 1, marker: false })),
            ("a/", Some(FolderRow { children: 1, marker: false })),
        ];
        assert_eq!(folders(&plan, &rows), [("a/b/", None), ("a/", None)]);
    }

    #[test]
    fn a_marker_keeps_an_empty_folder_and_a_sibling_keeps_the_parent() {
        let mut plan = Plan::default();
        plan.deltas.insert("a/b/", -1);
        let rows = [
            ("a/b/", Some(FolderRow { children: 1, marker: true })),
            ("a/", Some(FolderRow { children: 2, marker: false })),
        ];
        assert_eq!(folders(&plan, &rows), [("a/b/", Some(FolderRow { children: 0, marker: true }))]);

        let mut plan = Plan::default();
        plan.markers.insert("a/b/", false);
        let rows = [
            ("a/b/", Some(FolderRow { children: 0, marker: true })),
            ("a/", Some(FolderRow { children: 2, marker: false })),
        ];
        assert_eq!(folders(&plan, &rows), [("a/b/", None), ("a/", Some(FolderRow { children: 1, marker: false }))]);
    }

    fn seq(n: u32) -> Sequencer {
        Sequencer::parse(&format!("0055AED6DCD9{n:08X}")).unwrap()
    }

    fn created(key: &str, n: u32) -> KeyUpdate {
        let change = Change::Created {
            version_id: NULL_VERSION.to_owned(),
            sequencer: seq(n),
            size: 1,
            etag: format!("etag-{n}"),
            at_ms: 1_000 + i64::from(n),
        };
        KeyUpdate::Changes { key: key.to_owned(), changes: vec![change] }
    }

    fn removed(key: &str, n: u32) -> KeyUpdate {
        let change =
            Change::Removed { version_id: NULL_VERSION.to_owned(), sequencer: seq(n), at_ms: 1_000 + i64::from(n) };
        KeyUpdate::Changes { key: key.to_owned(), changes: vec![change] }
    }

    /// A batch that lives as long as the test, for plans that borrow from it.
    fn batch(updates: Vec<KeyUpdate>) -> &'static [KeyUpdate] {
        updates.leak()
    }

    /// The rows a store would hold after `plan`, at `revision`.
    fn stored(plan: &Plan, revision: i64) -> HashMap<String, (KeyState, i64)> {
        plan.states
            .iter()
            .filter_map(|(key, write)| match write {
                RowWrite::Insert(state) | RowWrite::Update(state) => {
                    Some(((*key).to_owned(), (state.clone(), revision)))
                }
                RowWrite::Delete => None,
            })
            .collect()
    }

    #[test]
    fn a_removed_key_keeps_its_tombstone_and_a_late_write_stays_out() {
        let made = plan(batch(vec![created("a/x", 1)]), HashMap::new());
        assert!(matches!(made.states.as_slice(), [(key, RowWrite::Insert(_))] if *key == "a/x"), "{:?}", made.states);
        assert!(matches!(made.files.as_slice(), [("a/", "x", RowWrite::Insert(_))]), "{:?}", made.files);
        let gone = plan(batch(vec![removed("a/x", 2)]), stored(&made, 1));
        assert!(matches!(gone.states.as_slice(), [(key, RowWrite::Update(_))] if *key == "a/x"), "{:?}", gone.states);
        assert_eq!(gone.files, [("a/", "x", RowWrite::Delete)]);
        assert_eq!(gone.deltas, BTreeMap::from([("a/", -1)]));

        let late = plan(batch(vec![created("a/x", 1)]), stored(&gone, 2));
        assert_eq!(late.outcome, ApplyOutcome { changed: 0, unchanged: 1, fenced: 0, revision: 0 });
        assert!(late.files.is_empty() && late.deltas.is_empty());
    }

    #[test]
    fn old_tombstones_are_pruned_and_their_row_goes() {
        let made = plan(batch(vec![created("a/x", 1)]), HashMap::new());
        let gone = plan(batch(vec![removed("a/x", 2)]), stored(&made, 1));
        // A cut-off before the removal keeps the tombstone.
        let kept =
            plan(batch(vec![KeyUpdate::Prune { key: "a/x".to_owned(), older_than_ms: 1_002 }]), stored(&gone, 2));
        assert_eq!(kept.outcome.unchanged, 1);
        let pruned =
            plan(batch(vec![KeyUpdate::Prune { key: "a/x".to_owned(), older_than_ms: 1_003 }]), stored(&gone, 2));
        assert!(matches!(pruned.states.as_slice(), [(key, RowWrite::Delete)] if *key == "a/x"), "{:?}", pruned.states);
        assert!(pruned.files.is_empty());
    }

    #[test]
    fn a_change_earlier_in_the_batch_fences_an_observation() {
        let observation = KeyUpdate::Observed {
            key: "k".to_owned(),
            observation: Observation { as_of_ms: 5_000, versions: Vec::new() },
            fence: Some(7),
        };
        let planned = plan(batch(vec![created("k", 1), observation.clone()]), HashMap::new());
        assert_eq!(planned.outcome, ApplyOutcome { changed: 1, unchanged: 0, fenced: 1, revision: 0 });
        assert!(
            matches!(planned.files.as_slice(), [(_, _, RowWrite::Insert(_))]),
            "the listing did not hide the new file"
        );

        // Alone, at or after the key's revision, it applies.
        let made = plan(batch(vec![created("k", 1)]), HashMap::new());
        let planned = plan(batch(vec![observation]), stored(&made, 7));
        assert_eq!(planned.outcome, ApplyOutcome { changed: 1, unchanged: 0, fenced: 0, revision: 0 });
        assert_eq!(planned.files, [("", "k", RowWrite::Delete)]);
    }

    #[test]
    fn a_file_appearing_and_another_going_leave_their_folder_as_it_was() {
        let before = plan(batch(vec![created("a/x", 1)]), HashMap::new());
        let planned = plan(batch(vec![created("a/y", 2), removed("a/x", 3)]), stored(&before, 1));
        assert_eq!(planned.deltas, BTreeMap::from([("a/", 0)]));
        let states = planned.states.as_slice();
        assert!(matches!(states, [("a/x", RowWrite::Update(_)), ("a/y", RowWrite::Insert(_))]), "{states:?}");
        let files = planned.files.as_slice();
        assert!(matches!(files, [("a/", "x", RowWrite::Delete), ("a/", "y", RowWrite::Insert(_))]), "{files:?}");
        let rows = [("a/", Some(FolderRow { children: 1, marker: false }))];
        assert_eq!(folders(&planned, &rows), []);
    }

    #[test]
    fn a_marker_and_files_under_it_in_one_batch() {
        let planned = plan(batch(vec![created("m/", 1), created("m/x", 2), created("m/n/y", 3)]), HashMap::new());
        assert_eq!(planned.markers, BTreeMap::from([("m/", true)]));
        let files: Vec<(&str, &str)> = planned.files.iter().map(|(p, n, _)| (*p, *n)).collect();
        // In key order: `m/n/y` before `m/x`.
        assert_eq!(files, [("m/n/", "y"), ("m/", "x")], "the marker is no file");
        assert_eq!(
            folders(&planned, &[]),
            [
                ("m/n/", Some(FolderRow { children: 1, marker: false })),
                ("m/", Some(FolderRow { children: 2, marker: true })),
            ]
        );
    }

    #[test]
    fn the_project_folders_own_marker_has_no_entry() {
        let planned = plan(batch(vec![created("", 1)]), HashMap::new());
        assert!(matches!(planned.states.as_slice(), [(key, RowWrite::Insert(_))] if key.is_empty()));
        assert!(planned.files.is_empty() && planned.markers.is_empty() && planned.deltas.is_empty());
    }

    #[test]
    fn restore_states_round_trip_through_text() {
        for state in [
            None,
            Some(RestoreState::InProgress),
            Some(RestoreState::Expired),
            Some(RestoreState::Restored { expires: None }),
            Some(RestoreState::Restored { expires: Some("2026-12-01T00:00:00Z".to_owned()) }),
        ] {
            assert_eq!(restore_from_text(restore_text(state.as_ref()).as_deref()), state);
        }
    }
}
