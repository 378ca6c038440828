//! InitProducerId (key 22): producer ids for idempotent producers (the Java client's
//! default) from the controller, never repeated across restarts. Without a transactional id
//! every request gets a fresh id at epoch 0, as from Kafka (`handleInitProducerId`), even
//! one that presents an id and epoch (KIP-360): an id the broker never handed out is never
//! blessed (produce refuses such ids, see `produce.rs`). With a transactional id
//! the request goes to that id's transaction coordinator, which fences older epochs and
//! aborts a transaction the previous incarnation left open.

use crate::model::ErrorCode;
use crate::security::acl::AclOperation;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext, authorize};
use crate::shard::{Shard, TxnOp};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{InitProducerIdResponse, ProducerId, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::InitProducerId(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let mut response = InitProducerIdResponse::default();
        response.producer_id = ProducerId(-1);
        response.producer_epoch = -1;
        if let Some(transactional_id) = &request.transactional_id {
            let transactional_id = transactional_id.0.to_string();
            if let Err(code) = authorize::transactional_id(
                &shard,
                &context,
                AclOperation::Write,
                &transactional_id,
            ) {
                response.error_code = code.code();
                return context.respond(&response).map(Some);
            }
            let presented = if context.version >= 3 {
                (request.producer_id.0, request.producer_epoch)
            } else {
                (-1, -1)
            };
            let owned = transactional_id.clone();
            let outcome = shard
                .txn_call(&transactional_id, |reply| TxnOp::Init {
                    transactional_id: owned,
                    timeout_ms: request.transaction_timeout_ms,
                    presented,
                    reply,
                })
                .await?;
            match outcome {
                Ok((producer_id, epoch)) => {
                    response.producer_id = ProducerId(producer_id);
                    response.producer_epoch = epoch;
                }
                Err(error) if error == ErrorCode::ProducerFenced && context.version < 4 => {
                    response.error_code = ErrorCode::InvalidProducerEpoch.code();
                }
                Err(error) => response.error_code = error.code(),
            }
            return context.respond(&response).map(Some);
        }
        // Idempotent producers: IDEMPOTENT_WRITE on the cluster, or (Kafka 3.0+, KIP-679)
        // WRITE on some topic.
        if authorize::cluster(&shard, &context, AclOperation::IdempotentWrite).is_err()
            && !authorize::any_topic(&shard, &context, AclOperation::Write)
        {
            response.error_code = ErrorCode::ClusterAuthorizationFailed.code();
            return context.respond(&response).map(Some);
        }
        match shard.allocate_producer_id().await {
            Ok(id) => {
                response.producer_id = ProducerId(id);
                response.producer_epoch = 0;
            }
            Err(code) => response.error_code = code.code(),
        }
        context.respond(&response).map(Some)
    })
}
