//! FindCoordinator (key 10): the coordinator of every group and transactional id is this
//! broker (the owning shard is reached internally). v4+ answers a batch of keys.

use super::metadata::advertised_address;
use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorResponse, RequestKind};
use std::rc::Rc;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::FindCoordinator(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let (host, port) = advertised_address(&shard);
        let node_id = shard.config.server.node_id;
        let error =
            if request.key_type == KEY_TYPE_GROUP || request.key_type == KEY_TYPE_TRANSACTION {
                ErrorCode::None
            } else {
                ErrorCode::CoordinatorNotAvailable
            };
        let mut response = FindCoordinatorResponse::default();
        if context.version >= 4 {
            response.coordinators = request
                .coordinator_keys
                .iter()
                .map(|key| {
                    let mut coordinator = Coordinator::default();
                    coordinator.key = key.clone();
                    coordinator.error_code = error.code();
                    if !error.is_error() {
                        coordinator.node_id = BrokerId(node_id);
                        coordinator.host = str_bytes(&host);
                        coordinator.port = port;
                    } else {
                        coordinator.node_id = BrokerId(-1);
                        coordinator.port = -1;
                    }
                    coordinator
                })
                .collect();
        } else {
            response.error_code = error.code();
            if error.is_error() {
                response.node_id = BrokerId(-1);
                response.port = -1;
            } else {
                response.node_id = BrokerId(node_id);
                response.host = str_bytes(&host);
                response.port = port;
            }
        }
        context.respond(&response).map(Some)
    })
}
