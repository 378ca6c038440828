//! CreateAcls (key 30): adds ACL bindings (`security::acl`), each checked as Kafka checks a
//! new ACL (INVALID_REQUEST with Kafka's message). Needs ALTER on the cluster
//! (CLUSTER_AUTHORIZATION_FAILED for every creation otherwise); SECURITY_DISABLED when the
//! authorizer is off. The bindings are saved in the catalog (synced) and sent to every shard
//! before the answer.

use super::acl_wire::{refusal, wire_creation};
use super::error_fields;
use crate::model::ErrorCode;
use crate::security::acl::{AclBinding, AclOperation};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::{ControllerOp, Shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::CreateAcls(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let refusal = refusal(&shard, &context, AclOperation::Alter);
        let mut outcomes: Vec<(ErrorCode, Option<String>)> = Vec::new();
        let mut bindings: Vec<AclBinding> = Vec::new();
        for creation in &request.creations {
            if let Some((code, message)) = &refusal {
                outcomes.push((*code, message.clone()));
                continue;
            }
            match AclBinding::new(&wire_creation(creation)) {
                Ok(binding) => {
                    bindings.push(binding);
                    outcomes.push((ErrorCode::None, None));
                }
                Err(error) => outcomes.push((ErrorCode::InvalidRequest, Some(error.to_string()))),
            }
        }
        if !bindings.is_empty() {
            let update: crate::shard::AclUpdate = Box::new(move |current| {
                let mut next = current.to_vec();
                next.extend(bindings);
                (next, Vec::new())
            });
            let answer = shard
                .controller_call(|reply| ControllerOp::AlterAcls { update, reply })
                .await?;
            if let Err((code, message)) = answer {
                for outcome in outcomes.iter_mut().filter(|o| o.0 == ErrorCode::None) {
                    *outcome = (code, Some(message.clone()));
                }
            }
        }
        let mut response = CreateAclsResponse::default();
        response.results = outcomes
            .into_iter()
            .map(|(code, message)| {
                let mut result = AclCreationResult::default();
                (result.error_code, result.error_message) = error_fields(code, message.as_deref());
                result
            })
            .collect();
        context.respond(&response).map(Some)
    })
}
