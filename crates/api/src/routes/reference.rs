//! Reference data any token may read: the region table and the error catalogue.

use axum::Json;
use axum::extract::State;
use byos_domain::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Items;
use crate::AppState;
use crate::auth::Principal;
use crate::error::ErrorBody;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_regions)).routes(routes!(list_errors))
}

/// A platform region.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegionView {
    #[schema(example = "EU")]
    code: String,
    #[schema(example = "Germany")]
    name: String,
    /// The id every `region` field of the API takes.
    #[schema(example = "eu-central-1")]
    aws_region: String,
    /// The role the platform assumes to copy across accounts in this region.
    cross_account_role_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

/// An entry of the error catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CatalogueEntryView {
    #[serde(rename = "type")]
    error_type: &'static str,
    code: &'static str,
    status: u16,
    /// The message; `{name}` marks a value filled in when the error happens.
    message: &'static str,
    fix: &'static str,
}

/// List the platform regions.
#[utoipa::path(get, path = "/api/v1/regions", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Items<RegionView>), (status = "4XX", body = ErrorBody)))]
async fn list_regions(_: Principal, state: State<AppState>) -> Json<Items<RegionView>> {
    let items = state
        .services()
        .regions()
        .regions()
        .iter()
        .map(|r| RegionView {
            code: r.code.clone(),
            name: r.name.clone(),
            aws_region: r.aws_region.clone(),
            cross_account_role_arn: r.cross_account_role_arn.clone(),
            note: r.note.clone(),
        })
        .collect();
    Json(Items { items })
}

/// List the error catalogue: every error the API can answer with, and its fix.
#[utoipa::path(get, path = "/api/v1/errors", tag = "reference", security(("bearer" = [])),
    responses((status = 200, body = Items<CatalogueEntryView>), (status = "4XX", body = ErrorBody)))]
async fn list_errors(_: Principal) -> Json<Items<CatalogueEntryView>> {
    let items = ErrorCode::ALL
        .iter()
        .map(|code| {
            let e = code.entry();
            CatalogueEntryView {
                error_type: e.error_type,
                code: e.code,
                status: e.status,
                message: e.message,
                fix: e.fix,
            }
        })
        .collect();
    Json(Items { items })
}
