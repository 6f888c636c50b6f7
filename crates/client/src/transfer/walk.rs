//! What a transfer moves: a local tree walked on a blocking thread, or a project's folder
//! paged through the API, each file sent on as soon as it is found, filtered by globs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;

use super::Item;
use crate::error::ClientError;
use crate::remote::Remote;

/// `--include` and `--exclude`: globs over a file's path relative to the source folder (`*`
/// matches across `/` too, as `aws s3 cp`'s do). A file is moved when it matches an include
/// (or none are given) and no exclude.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filters {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filters, ClientError> {
        let set = |globs: &[String], flag: &str| -> Result<Option<GlobSet>, ClientError> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for glob in globs {
                let glob = Glob::new(glob).map_err(|e| ClientError::Usage(format!("--{flag} {glob:?}: {e}")))?;
                builder.add(glob);
            }
            builder.build().map(Some).map_err(|e| ClientError::Usage(format!("--{flag}: {e}")))
        };
        Ok(Filters { include: set(include, "include")?, exclude: set(exclude, "exclude")? })
    }

    /// Whether the file at `relative` (`/`-separated) is moved.
    pub fn admits(&self, relative: &str) -> bool {
        self.include.as_ref().is_none_or(|set| set.is_match(relative))
            && self.exclude.as_ref().is_none_or(|set| !set.is_match(relative))
    }
}

/// Where a file lands: `destination` itself for a single file named in full, otherwise the
/// destination folder joined with the file's path relative to the source.
pub fn relative_destination(folder: &str, relative: &str) -> String {
    if folder.ends_with('/') { format!("{folder}{relative}") } else { format!("{folder}/{relative}") }
}

/// Walks a local source for an upload to the project path `to`.
pub(super) fn local(
    from: PathBuf,
    to: String,
    recursive: bool,
    filters: Filters,
    sender: Sender<Item>,
) -> Result<JoinHandle<Result<(), ClientError>>, ClientError> {
    let metadata = std::fs::metadata(&from).map_err(ClientError::io(&from))?;
    if metadata.is_dir() && !recursive {
        return Err(ClientError::Usage(format!("{} is a folder: add -r to upload what it holds", from.display())));
    }
    if !metadata.is_dir() {
        let name = file_name(&from);
        let destination = if to.ends_with('/') { format!("{to}{name}") } else { to };
        let item = Item { source: from.display().to_string(), destination, size: metadata.len() };
        let admitted = filters.admits(&name);
        return Ok(tokio::spawn(async move {
            if admitted {
                let _ = sender.send(item).await;
            }
            Ok(())
        }));
    }
    Ok(tokio::task::spawn_blocking(move || walk_folder(&from, "", &to, &filters, &sender)))
}

/// Sends the files below `folder` (whose path relative to the source is `relative`), in name
/// order, folders as they come. Symbolic links to files are followed; to folders, not (no
/// loops).
fn walk_folder(
    folder: &Path,
    relative: &str,
    to: &str,
    filters: &Filters,
    sender: &Sender<Item>,
) -> Result<(), ClientError> {
    let mut entries: Vec<_> = std::fs::read_dir(folder)
        .map_err(ClientError::io(folder))?
        .collect::<Result<_, _>>()
        .map_err(ClientError::io(folder))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let below = format!("{relative}{name}");
        let kind = entry.file_type().map_err(ClientError::io(&path))?;
        if kind.is_dir() {
            walk_folder(&path, &format!("{below}/"), to, filters, sender)?;
            continue;
        }
        let metadata = std::fs::metadata(&path).map_err(ClientError::io(&path))?;
        if !metadata.is_file() || !filters.admits(&below) {
            continue;
        }
        let item = Item {
            source: path.display().to_string(),
            destination: relative_destination(to, &below),
            size: metadata.len(),
        };
        if sender.blocking_send(item).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Walks a project's path for a download into the local path `to`.
pub(super) fn remote(
    remote: Arc<dyn Remote>,
    from: String,
    to: PathBuf,
    recursive: bool,
    filters: Filters,
    sender: Sender<Item>,
) -> JoinHandle<Result<(), ClientError>> {
    tokio::spawn(async move {
        if !recursive || !from.ends_with('/') {
            let entry = remote
                .entry(&from)
                .await?
                .ok_or_else(|| ClientError::Usage(format!("{from}: no such file or folder in the project")))?;
            if !entry.is_folder() {
                let name = entry.name.clone();
                let into_folder = to.is_dir() || to.as_os_str().to_string_lossy().ends_with('/');
                let destination = if into_folder { to.join(&name) } else { to };
                if filters.admits(&name) {
                    let item = Item {
                        source: entry.path.clone(),
                        destination: destination.display().to_string(),
                        size: entry.size.unwrap_or_default(),
                    };
                    let _ = sender.send(item).await;
                }
                return Ok(());
            }
            if !recursive {
                return Err(ClientError::Usage(format!("{from} is a folder: add -r to download what it holds")));
            }
        }
        let root = if from.ends_with('/') { from } else { format!("{from}/") };
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            let mut token: Option<String> = None;
            let mut below = Vec::new();
            loop {
                let page = remote.page(&folder, token.as_deref()).await?;
                for entry in page.items {
                    let relative = entry.path.strip_prefix(&root).unwrap_or(&entry.path).to_owned();
                    if entry.is_folder() {
                        below.push(entry.path);
                    } else if filters.admits(&relative) {
                        let item = Item {
                            source: entry.path.clone(),
                            destination: to.join(&relative).display().to_string(),
                            size: entry.size.unwrap_or_default(),
                        };
                        if sender.send(item).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                match page.next_page_token {
                    Some(next) => token = Some(next),
                    None => break,
                }
            }
            // Depth first, in name order.
            folders.extend(below.into_iter().rev());
        }
        Ok(())
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_include_then_exclude() {
        let filters = Filters::new(&["*.txt".to_owned()], &["skip/**".to_owned()]).unwrap();
        assert!(filters.admits("a.txt"));
        assert!(filters.admits("deep/down/b.txt"), "* crosses folders");
        assert!(!filters.admits("c.csv"));
        assert!(!filters.admits("skip/d.txt"));
        assert!(Filters::default().admits("anything"));
        assert!(Filters::new(&["[".to_owned()], &[]).is_err(), "a bad glob is a usage error");
    }

    #[test]
    fn a_folders_contents_go_into_the_destination_folder() {
        assert_eq!(relative_destination("/in/", "a/b.txt"), "/in/a/b.txt");
        assert_eq!(relative_destination("/in", "a.txt"), "/in/a.txt");
    }

    #[tokio::test]
    async fn a_local_tree_is_walked_in_name_order_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        for (path, bytes) in [("run42/b.txt", 2), ("run42/a.txt", 1), ("run42/sub/c.txt", 3), ("run42/x.log", 4)] {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, vec![0u8; bytes]).unwrap();
        }
        let (sender, mut items) = tokio::sync::mpsc::channel(16);
        let filters = Filters::new(&[], &["*.log".to_owned()]).unwrap();
        let walk = local(dir.path().join("run42"), "/in/".to_owned(), true, filters, sender).unwrap();
        let mut found = Vec::new();
        while let Some(item) = items.recv().await {
            found.push((item.destination, item.size));
        }
        walk.await.unwrap().unwrap();
        let want = [("/in/a.txt", 1), ("/in/b.txt", 2), ("/in/sub/c.txt", 3)];
        assert_eq!(found, want.map(|(p, s)| (p.to_owned(), s)));
        let (sender, _items) = tokio::sync::mpsc::channel(16);
        let refused = local(dir.path().join("run42"), "/in/".to_owned(), false, Filters::default(), sender);
        assert!(matches!(refused, Err(ClientError::Usage(_))), "a folder without -r");
    }
}
