//! ApiVersions (key 18): the versions of every API in the table. An unsupported request
//! version gets UNSUPPORTED_VERSION in a v0 response that still lists our versions (KIP-511).
//! Tagged fields with default values are omitted, as Kafka does (librdkafka 2.0 needs it).

use crate::model::ErrorCode;
use crate::protocol::codec::encode_response;
use crate::server::api_table::{API_TABLE, single_stage};
use crate::server::{HandlerError, RequestContext, ResponseFrame};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind};
use std::rc::Rc;

fn response(error: ErrorCode) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error.code();
    response.api_keys = API_TABLE
        .iter()
        .map(|row| {
            let mut version = ApiVersion::default();
            version.api_key = row.key as i16;
            version.min_version = row.min_version;
            version.max_version = row.max_version;
            version
        })
        .collect();
    response
}

pub fn handle(
    _shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, crate::server::api_table::ResponseFuture> {
    single_stage(async move {
        let RequestKind::ApiVersions(_) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        context.respond(&response(ErrorCode::None)).map(Some)
    })
}

/// The KIP-511 answer to an ApiVersions request of a version we do not know.
pub fn unsupported_version(correlation_id: i32) -> Result<ResponseFrame, HandlerError> {
    let body = response(ErrorCode::UnsupportedVersion);
    let frame = encode_response(ApiKey::ApiVersions, 0, correlation_id, &body)?;
    Ok(ResponseFrame::of(frame))
}
