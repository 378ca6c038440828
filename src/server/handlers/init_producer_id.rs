//! InitProducerId (key 22): producer ids for idempotent producers (the Java client's
//! default). Ids come from the controller and never repeat across restarts. A producer that
//! presents its id and epoch (KIP-360) gets the next epoch. Transactional ids are not
//! supported yet: they get COORDINATOR_NOT_AVAILABLE... see docs/protocol-coverage.md.

use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
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
        if request.transactional_id.is_some() {
            response.error_code = ErrorCode::CoordinatorNotAvailable.code();
            return context.respond(&response).map(Some);
        }
        let current = request.producer_id.0;
        if current >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
            response.producer_id = request.producer_id;
            response.producer_epoch = request.producer_epoch + 1;
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
