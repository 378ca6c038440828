//! DescribeCluster (key 60): this broker, the cluster id, and itself as controller.

use super::metadata::advertised_address;
use super::str_bytes;
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse, RequestKind};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::DescribeCluster(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let listener = context.connection.listener_name();
        let (host, port) = advertised_address(&shard, &listener);
        let node_id = shard.config.server.node_id;
        let mut broker = DescribeClusterBroker::default();
        broker.broker_id = BrokerId(node_id);
        broker.host = str_bytes(&host);
        broker.port = port;
        let mut response = DescribeClusterResponse::default();
        response.endpoint_type = request.endpoint_type.max(1);
        let cluster_id = crate::quorum::view::cluster_id_for_clients()
            .unwrap_or_else(|| shard.config.server.cluster_id.clone());
        response.cluster_id = str_bytes(&cluster_id);
        response.controller_id = BrokerId(node_id);
        response.brokers = vec![broker];
        if let Some((controller_id, brokers)) = super::metadata::cluster_brokers(&shard, &listener)
        {
            response.controller_id = BrokerId(controller_id);
            response.brokers = brokers
                .into_iter()
                .map(|endpoint| {
                    let mut broker = DescribeClusterBroker::default();
                    broker.broker_id = BrokerId(endpoint.node_id);
                    broker.host = str_bytes(&endpoint.host);
                    broker.port = i32::from(endpoint.port);
                    broker.rack = endpoint.rack.as_deref().map(str_bytes);
                    broker
                })
                .collect();
        }
        response.cluster_authorized_operations = i32::MIN;
        context.respond(&response).map(Some)
    })
}
