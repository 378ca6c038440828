//! DescribeUserScramCredentials (key 50, KIP-554): each user's SCRAM mechanisms and
//! iteration counts (never salts or keys). A null or empty user list describes every user; a
//! named user without credentials is RESOURCE_NOT_FOUND, a name given twice
//! DUPLICATE_RESOURCE, as in Kafka.

use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{DescribeUserScramCredentialsResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeUserScramCredentials(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let credentials = shard.credentials.snapshot();
        let users = credentials.users();
        let requested: Vec<String> = match &request.users {
            Some(names) if !names.is_empty() => names.iter().map(|n| n.name.to_string()).collect(),
            // Null or empty: every user, as Kafka.
            _ => users.keys().map(|user| user.to_string()).collect(),
        };
        let mut response = DescribeUserScramCredentialsResponse::default();
        for (index, user) in requested.iter().enumerate() {
            if requested[..index].contains(user) {
                continue;
            }
            let mut result = DescribeUserScramCredentialsResult::default();
            result.user = str_bytes(user);
            if requested[index + 1..].contains(user) {
                result.error_code = ErrorCode::DuplicateResource.code();
                result.error_message = Some(str_bytes(&format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single \
                     request: {user}"
                )));
            } else if let Some(infos) = users.get(user.as_str()) {
                result.credential_infos = infos
                    .iter()
                    .map(|(mechanism, iterations)| {
                        let mut info = CredentialInfo::default();
                        info.mechanism = mechanism.id();
                        info.iterations = *iterations;
                        info
                    })
                    .collect();
            } else {
                result.error_code = ErrorCode::ResourceNotFound.code();
                result.error_message = Some(str_bytes(&format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )));
            }
            response.results.push(result);
        }
        context.respond(&response).map(Some)
    })
}
