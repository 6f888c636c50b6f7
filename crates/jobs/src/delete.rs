//! A folder's delete: its objects listed a page at a time and deleted by DeleteObjects, 1,000 keys
//! a request, at the job's pace; then the folder's catalog refreshed from one listing. Taken up
//! again, it lists what is left: the objects already deleted are not listed any more.

use byos_aws::{MAX_DELETE_BATCH, NotDeleted};
use byos_catalog::Project;
use byos_domain::Problem;

use crate::worker::{Run, Stop, aws_stop};

/// DeleteObjects answers these for keys it may delete on a later try.
const TRANSIENT: [&str; 3] = ["SlowDown", "InternalError", "ServiceUnavailable"];

pub(crate) async fn delete_folder(run: &mut Run<'_>, project: &Project, folder: &str) -> Result<(), Stop> {
    let inner = run.inner;
    run.count_totals(project, folder).await?;
    let bucket = inner.buckets.open(project.configuration_id).await?;
    let name = project.bucket.as_str();
    let prefix = format!("{}{folder}", project.key_prefix);
    let mut marker = None;
    let mut refused: Vec<NotDeleted> = Vec::new();
    let mut refused_bytes = 0;
    let batch = i32::try_from(MAX_DELETE_BATCH).unwrap_or(i32::MAX);
    loop {
        let page = bucket
            .access
            .list_objects_page(name, &prefix, marker.as_ref(), batch)
            .await
            .map_err(|e| aws_stop(e, project))?;
        if !page.entries.is_empty() {
            let keys: Vec<String> = page.entries.iter().map(|e| e.key.clone()).collect();
            run.pace().await;
            let not_deleted = bucket.access.delete_objects(name, &keys).await.map_err(|e| aws_stop(e, project))?;
            run.paced(keys.len());
            let progress = run.progress();
            for entry in &page.entries {
                if not_deleted.iter().any(|n| n.key == entry.key) {
                    progress.objects_failed += 1;
                    refused_bytes += entry.size;
                } else {
                    progress.objects_done += 1;
                    progress.bytes_done += entry.size;
                }
            }
            refused.extend(not_deleted);
            run.step().await?;
        }
        marker = page.next;
        if marker.is_none() {
            break;
        }
    }
    // The catalog shows the folder as the bucket has it now, without waiting for the events.
    inner.sync.refresh_folder(project, folder).await?;
    let progress = run.progress();
    progress.objects_total = Some(progress.objects_done + progress.objects_failed);
    progress.bytes_total = Some(progress.bytes_done + refused_bytes);
    let Some(first) = refused.first() else {
        return Ok(());
    };
    if refused.iter().all(|n| TRANSIENT.contains(&n.code.as_str())) {
        // Taken up again, the job lists the keys left and deletes them: they are not failures.
        let progress = run.progress();
        progress.objects_failed -= refused.len() as u64;
        progress.objects_total = None;
        run.step().await?;
        let message =
            format!("S3 did not delete {} key(s) this time ({}: {})", refused.len(), first.code, first.message);
        return Err(Stop::Retry(message.into()));
    }
    let first = refused.iter().find(|n| !TRANSIENT.contains(&n.code.as_str())).unwrap_or(first);
    let key = first.key.strip_prefix(project.key_prefix.as_str()).unwrap_or(&first.key);
    let reason = format!("{} ({})", first.message, first.code);
    Err(Stop::Failed(Problem::objects_not_deleted(
        refused.len() as u64,
        &format!("/{folder}"),
        &format!("/{key}"),
        &reason,
    )))
}
