//! `/api/v1/jobs`: long operations on a project's data (a folder's delete or move, copies and
//! moves between projects), as they run. A job belongs to its project (a copy's, its
//! destination's): its routes need the access to it that the project's own routes would
//! (`project:read` to follow, `project:read-write` to cancel), and to anyone else it does not
//! exist. Starting a copy needs access to both projects, which its body names. The rules are
//! `byos_service::Jobs`'.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use byos_catalog::{Job, JobObject, JobSpec};
use byos_domain::CheckResult;
use byos_service::{Caller, CopyRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Items, rfc3339};
use crate::AppState;
use crate::audit::AuditNote;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Id};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs, start_copy))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_report))
}

/// A job, as it runs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobView {
    id: Uuid,
    /// `delete-folder`, `move-folder`, `copy` or `move`.
    #[schema(example = "delete-folder")]
    r#type: &'static str,
    /// The project whose data it changes: a copy's destination.
    project_id: Uuid,
    /// What it works on: the folder a delete empties, a folder's move moves, or a copy fills.
    #[schema(example = "/runs/42/")]
    path: String,
    /// Where a folder's move puts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "/archive/run-42/")]
    to: Option<String>,
    /// What a copy or move job copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<CopySourceBody>,
    /// A copy's `skip`, `overwrite` or `fail`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "fail")]
    on_conflict: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    include: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,
    /// A copy that plans and reports without copying.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    /// What a copy's checks found before any byte moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    preflight: Option<Vec<PreflightCheckView>>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    #[schema(example = "running")]
    status: &'static str,
    progress: ProgressView,
    /// Why it failed: a catalogue entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<JobErrorView>,
    /// A cancel was asked for; the job stops at its next step.
    cancel_requested: bool,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

/// How far a job has got. A total is absent until the job knows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProgressView {
    objects_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects_total: Option<u64>,
    objects_skipped: u64,
    objects_failed: u64,
    bytes_done: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_total: Option<u64>,
    /// While it runs: bytes a second, since it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_second: Option<u64>,
    /// While it runs and its totals are known: seconds left at that rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    eta_seconds: Option<u64>,
}

/// One check of a copy's preflight.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PreflightCheckView {
    /// The side and the check: `source:objects-readable`, `destination:probe-writable`, ...
    #[schema(example = "destination:probe-writable")]
    name: String,
    /// `passed`, `failed` or `skipped`.
    #[schema(value_type = String, example = "passed")]
    result: CheckResult,
    detail: String,
    /// For a failed check: the statement to add, and the command that prints it.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// A copy job's sources: paths of one project.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CopySourceBody {
    #[schema(value_type = Option<Uuid>)]
    project_id: Option<String>,
    /// From the project's root: a folder ends with `/` and keeps its last segment under the
    /// destination (`/a/` into `/in/` gives `/in/a/...`; `/` copies the root's contents). No
    /// two paths may land on the same keys (`/x/run/` and `/y/run/`; `/` and `/b.txt`).
    #[serde(default)]
    #[schema(example = json!(["/runs/42/", "/samples.csv"]))]
    paths: Vec<String>,
}

/// Where a copy job puts its sources.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CopyDestinationBody {
    #[schema(value_type = Option<Uuid>)]
    project_id: Option<String>,
    /// A folder, from the project's root (`/` for the root).
    #[schema(example = "/in/")]
    path: Option<String>,
}

/// A copy or move job between projects (or within one): server-side, verified, resumable.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CopyJobBody {
    /// `copy`, or `move` (each source deleted once its copy is verified).
    #[schema(example = "copy")]
    r#type: Option<String>,
    source: Option<CopySourceBody>,
    destination: Option<CopyDestinationBody>,
    /// `skip`, `overwrite` or `fail` (the default) when a destination key holds another object.
    #[schema(example = "skip")]
    on_conflict: Option<String>,
    /// Globs over the path an object gets under the destination folder (`run/lane-1/a.txt`
    /// for `/run/` into `/in/`); `*` matches across `/` too, as `aws s3 cp`'s does.
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// Plan and report without copying.
    #[serde(default)]
    dry_run: bool,
}

/// Why a job failed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JobErrorView {
    /// The catalogue entry's stable code.
    #[schema(example = "objects-not-deleted")]
    code: &'static str,
    message: String,
    /// What to do about it.
    fix: &'static str,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> JobView {
        let (path, to, copy) = match &job.spec {
            JobSpec::DeleteFolder { folder } => (format!("/{folder}"), None, None),
            JobSpec::MoveFolder { from, to, .. } => (format!("/{from}"), Some(format!("/{to}")), None),
            JobSpec::Copy(spec) | JobSpec::Move(spec) => (format!("/{}", spec.destination), None, Some(spec)),
        };
        let p = &job.progress;
        let (bytes_per_second, eta_seconds) = pace(job);
        JobView {
            id: job.id,
            r#type: job.spec.kind(),
            project_id: job.project_id,
            path,
            to,
            source: copy.map(|spec| CopySourceBody {
                project_id: Some(spec.source_project.to_string()),
                paths: spec.paths.iter().map(|p| format!("/{p}")).collect(),
            }),
            on_conflict: copy.map(|spec| spec.on_conflict.as_str()),
            include: copy.map(|spec| spec.include.clone()).unwrap_or_default(),
            exclude: copy.map(|spec| spec.exclude.clone()).unwrap_or_default(),
            dry_run: copy.is_some_and(|spec| spec.dry_run),
            preflight: job.preflight.as_ref().map(|report| {
                report
                    .checks
                    .iter()
                    .map(|c| PreflightCheckView {
                        name: c.name.clone(),
                        result: c.result,
                        detail: c.detail.clone(),
                        fix: c.fix.clone(),
                    })
                    .collect()
            }),
            status: job.status.as_str(),
            progress: ProgressView {
                objects_done: p.objects_done,
                objects_total: p.objects_total,
                objects_skipped: p.objects_skipped,
                objects_failed: p.objects_failed,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                bytes_per_second,
                eta_seconds,
            },
            error: job.error.as_ref().map(|e| JobErrorView {
                code: e.entry().code,
                message: e.message().to_owned(),
                fix: e.entry().fix,
            }),
            cancel_requested: job.cancel_requested,
            created_at: rfc3339(job.created_at),
            updated_at: rfc3339(job.updated_at),
            started_at: job.started_at.map(rfc3339),
            finished_at: job.finished_at.map(rfc3339),
        }
    }
}

/// A running job's rate since it started (its last record), and the time left at that rate.
fn pace(job: &Job) -> (Option<u64>, Option<u64>) {
    let (Some(started), false) = (job.started_at, job.status.is_final()) else {
        return (None, None);
    };
    let elapsed = (job.updated_at - started).as_seconds_f64();
    let p = &job.progress;
    if elapsed <= 0.0 || p.bytes_done == 0 {
        return (None, None);
    }
    let rate = p.bytes_done as f64 / elapsed;
    let eta = p.bytes_total.map(|total| (total.saturating_sub(p.bytes_done) as f64 / rate).ceil() as u64);
    (Some(rate as u64), eta)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobsQuery {
    /// Only this project's jobs.
    project_id: Option<String>,
}

/// The newest jobs (up to 100) of the projects the caller may see, or of one of them.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), params(JobsQuery),
    responses((status = 200, body = Items<JobView>), (status = "4XX", body = ErrorBody)))]
async fn list_jobs(
    Principal(caller): Principal,
    state: State<AppState>,
    query: Result<Query<JobsQuery>, QueryRejection>,
) -> ApiResult<Json<Items<JobView>>> {
    let Query(query) = query.map_err(ApiError::from)?;
    let jobs = state.services().jobs().list(&caller, query.project_id.as_deref()).await?;
    Ok(Json(Items { items: jobs.iter().map(JobView::from).collect() }))
}

/// A job, with its progress; its project's readers may follow it.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", security(("bearer" = ["project:read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn get_job(Principal(caller): Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<JobView>> {
    let job = state.services().jobs().get(&caller, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// Cancel a job: a queued one ends at once, a running one at its next step (what it deleted
/// stays deleted). An ended job stays as it is.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = ["project:read-write"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn cancel_job(Principal(caller): Principal, state: State<AppState>, Id(id): Id) -> ApiResult<Json<JobView>> {
    let job = state.services().jobs().cancel(&caller, id).await?;
    Ok(Json(JobView::from(&job)))
}

/// Start a copy or move job: the sources' objects copied server-side into the destination
/// folder (bytes never pass through the server), each verified, for a move its source deleted
/// after that. The job checks both sides before any byte moves (`preflight`), survives a
/// restart, and reports each object (`/api/v1/jobs/{id}/report`). Needs read access to the
/// source (read-write for a move) and read-write access to the destination.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", security(("bearer" = [])), request_body = CopyJobBody,
    responses((status = 202, body = JobView), (status = "4XX", body = ErrorBody)))]
async fn start_copy(
    Principal(caller): Principal,
    state: State<AppState>,
    ApiJson(body): ApiJson<CopyJobBody>,
) -> ApiResult<impl IntoResponse> {
    let remove_sources = match body.r#type.as_deref() {
        Some("copy") => false,
        Some("move") => true,
        Some(other) => return Err(invalid(&format!("type: {other:?} is not copy or move"))),
        None => return Err(invalid("type: required (copy or move)")),
    };
    let (source, destination) = (body.source.unwrap_or_default(), body.destination.unwrap_or_default());
    let request = CopyRequest {
        remove_sources,
        source_project: source.project_id,
        paths: source.paths,
        destination_project: destination.project_id,
        destination_path: destination.path,
        on_conflict: body.on_conflict,
        include: body.include,
        exclude: body.exclude,
        dry_run: body.dry_run,
    };
    let job = state.services().jobs().copy(&caller, request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Extension(AuditNote::target(format!("/api/v1/jobs/{}", job.id))),
        Json(JobView::from(&job)),
    ))
}

fn invalid(why: &str) -> ApiError {
    byos_domain::Problem::invalid_request(why).into()
}

/// Objects a page of the report reads from the store.
const REPORT_PAGE: u32 = 1_000;

/// One line of a copy job's report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReportLine {
    /// From the source project's root.
    #[schema(example = "/runs/42/a.bam")]
    source: String,
    /// The version copied, on a versioned source.
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
    /// From the destination project's root.
    #[schema(example = "/in/42/a.bam")]
    destination: String,
    bytes: u64,
    /// `pending`, `planned` (a dry run's), `copied`, `moved`, `skipped` or `failed`.
    #[schema(example = "copied")]
    result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<&JobObject> for ReportLine {
    fn from(o: &JobObject) -> ReportLine {
        ReportLine {
            source: format!("/{}", o.source_key),
            version_id: o.version_id.clone(),
            destination: format!("/{}", o.destination_key),
            bytes: o.size,
            result: o.result.as_str(),
            error: o.error.clone(),
        }
    }
}

/// A copy job's report, one line per object in the order the plan listed them: newline-delimited
/// JSON (`application/x-ndjson`), or CSV with `Accept: text/csv` (`source,versionId,destination,
/// bytes,result,error`). Streamed a page at a time; other jobs' reports are empty.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/report", tag = "jobs", security(("bearer" = ["project:read"])),
    params(("id" = Uuid, Path)),
    responses((status = 200, content((ReportLine = "application/x-ndjson"), (String = "text/csv"))),
        (status = "4XX", body = ErrorBody)))]
async fn job_report(
    Principal(caller): Principal,
    state: State<AppState>,
    Id(id): Id,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let csv = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/csv"));
    // The first page answers the access check; the rest stream.
    let first = state.services().jobs().report(&caller, id, None, REPORT_PAGE).await?;
    let format = if csv { Format::Csv } else { Format::Json };
    let reader = Reader { state: state.0.clone(), caller, id, format, header: csv };
    let stream = futures_util::stream::unfold((reader, Next::Page(first.objects)), |(mut reader, next)| async move {
        let page = match next {
            Next::Done => return None,
            Next::Page(page) => page,
            Next::After(seq) => match reader.page(seq).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(job = %reader.id, error = ?e, "a job's report stopped");
                    let error = std::io::Error::other("the report could not be read to its end");
                    return Some((Err(error), (reader, Next::Done)));
                }
            },
        };
        let chunk = reader.format.lines(&page, std::mem::take(&mut reader.header));
        let next = match page.last() {
            Some(last) if page.len() == REPORT_PAGE as usize => Next::After(last.seq),
            _ => Next::Done,
        };
        Some((Ok(chunk), (reader, next)))
    });
    let content_type = if csv { "text/csv; charset=utf-8" } else { "application/x-ndjson" };
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Where the report's stream goes on.
enum Next {
    Page(Vec<JobObject>),
    After(u64),
    Done,
}

/// What the report's stream reads pages with.
struct Reader {
    state: AppState,
    caller: Caller,
    id: Uuid,
    format: Format,
    /// The CSV header is still to be written.
    header: bool,
}

impl Reader {
    async fn page(&self, after: u64) -> Result<Vec<JobObject>, byos_service::ServiceError> {
        let jobs = self.state.services().jobs();
        Ok(jobs.report(&self.caller, self.id, Some(after), REPORT_PAGE).await?.objects)
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Json,
    Csv,
}

impl Format {
    fn lines(self, objects: &[JobObject], header: bool) -> String {
        let mut out = String::with_capacity(objects.len() * 160);
        match self {
            Format::Json => {
                for object in objects {
                    let line = serde_json::to_string(&ReportLine::from(object))
                        .unwrap_or_else(|_| unreachable!("a report line always serializes"));
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            Format::Csv => {
                if header {
                    out.push_str("source,versionId,destination,bytes,result,error\r\n");
                }
                for o in objects.iter().map(ReportLine::from) {
                    let fields = [
                        csv_field(&o.source),
                        csv_field(o.version_id.as_deref().unwrap_or_default()),
                        csv_field(&o.destination),
                        o.bytes.to_string(),
                        o.result.to_owned(),
                        csv_field(o.error.as_deref().unwrap_or_default()),
                    ];
                    out.push_str(&fields.join(","));
                    out.push_str("\r\n");
                }
            }
        }
        out
    }
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes doubled.
/// A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is quoted and led by
/// a `'`, as OWASP advises for CSV exports.
fn csv_field(value: &str) -> String {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if !formula && !value.contains([',', '"', '\n', '\r']) {
        return value.to_owned();
    }
    let lead = if formula { "'" } else { "" };
    format!("\"{lead}{}\"", value.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(csv_field("/runs/a.txt"), "/runs/a.txt");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "\"'=HYPERLINK(1)\"", "no formula runs");
        assert_eq!(csv_field(""), "");
    }
}
