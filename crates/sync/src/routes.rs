//! Which project an event is for: by bucket, then by the longest project prefix that holds the
//! key. Projects never overlap (the store refuses it), so at most one prefix matches; the
//! longest-first order makes that hold even while a refresh races a project's creation.

use std::collections::HashMap;

use byos_catalog::Project;
use uuid::Uuid;

/// A project as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) project: Uuid,
    pub(crate) prefix: String,
    pub(crate) configuration: Uuid,
}

/// The routing table, built from the list of projects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes {
    /// Per bucket, longest prefix first.
    by_bucket: HashMap<String, Vec<Route>>,
}

impl Routes {
    pub(crate) fn new(projects: &[Project]) -> Routes {
        let mut by_bucket: HashMap<String, Vec<Route>> = HashMap::new();
        for p in projects {
            by_bucket.entry(p.bucket.to_string()).or_default().push(Route {
                project: p.id,
                prefix: p.key_prefix.to_string(),
                configuration: p.configuration_id,
            });
        }
        for routes in by_bucket.values_mut() {
            routes.sort_by(|a, b| b.prefix.len().cmp(&a.prefix.len()).then_with(|| a.prefix.cmp(&b.prefix)));
        }
        Routes { by_bucket }
    }

    /// The project a key of a bucket belongs to, and the key relative to the project's prefix.
    /// A key equal to the prefix itself is the project folder's own marker: it is not data.
    pub(crate) fn route<'k>(&self, bucket: &str, key: &'k str) -> Option<(&Route, &'k str)> {
        self.by_bucket.get(bucket)?.iter().find_map(|route| {
            let relative = key.strip_prefix(route.prefix.as_str())?;
            (!relative.is_empty()).then_some((route, relative))
        })
    }
}

#[cfg(test)]
mod tests {
    use byos_domain::{AwsRegion, BucketName, KeyPrefix, ProjectFolder, ResourceName};
    use time::OffsetDateTime;

    use super::*;

    fn project(bucket: &str, prefix: Option<&str>, folder: &str) -> Project {
        let prefix = prefix.map(|p| KeyPrefix::parse(p).unwrap());
        let folder = ProjectFolder::parse(folder).unwrap();
        Project {
            id: Uuid::new_v4(),
            name: ResourceName::parse(&format!("project {folder}")).unwrap(),
            region: AwsRegion::parse("eu-central-1").unwrap(),
            configuration_id: Uuid::new_v4(),
            key_prefix: folder.key_prefix(prefix.as_ref()),
            folder,
            bucket: BucketName::parse(bucket).unwrap(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn keys_route_by_bucket_and_prefix() {
        let a = project("bucket-one", Some("ica/"), "study");
        let b = project("bucket-one", Some("ica/"), "study-2");
        let c = project("bucket-two", None, "study");
        let routes = Routes::new(&[a.clone(), b.clone(), c.clone()]);
        let route = |bucket, key| routes.route(bucket, key).map(|(r, rel)| (r.project, rel.to_owned()));
        assert_eq!(route("bucket-one", "ica/study/x/y.txt"), Some((a.id, "x/y.txt".to_owned())));
        assert_eq!(route("bucket-one", "ica/study-2/y.txt"), Some((b.id, "y.txt".to_owned())));
        assert_eq!(route("bucket-two", "study/y.txt"), Some((c.id, "y.txt".to_owned())));
        assert_eq!(route("bucket-one", "ica/study"), None, "not under the folder");
        assert_eq!(route("bucket-one", "ica/study/"), None, "the project folder's own marker");
        assert_eq!(route("bucket-one", "ica/other/y.txt"), None);
        assert_eq!(route("bucket-three", "ica/study/y.txt"), None);
    }
}
