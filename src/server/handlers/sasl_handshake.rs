//! SaslHandshake (key 17): the client names a SASL mechanism; the answer lists the
//! mechanisms this listener offers. v1 (KIP-152) only: the tokens then come in
//! SaslAuthenticate requests. v0 (raw, unframed tokens after the handshake) is advertised
//! because Kafka 4.x still lists it, but answered UNSUPPORTED_VERSION: every client since
//! Kafka 1.0 and librdkafka 1.x uses v1. A refused handshake closes the connection after
//! its answer. The state change runs in stage 1, so the next request already sees it.

use super::str_bytes;
use crate::model::ErrorCode;
use crate::server::api_table::ResponseFuture;
use crate::server::sasl_session::HandshakeRefusal;
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use crate::shard::metrics::RejectReason;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{RequestKind, SaslHandshakeResponse};
use std::rc::Rc;

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    let response = answer(&shard, &context, body);
    let completion: ResponseFuture = Box::pin(async move { response.map(Some) });
    Box::pin(std::future::ready(completion))
}

fn answer(
    shard: &Shard,
    context: &RequestContext,
    body: RequestKind,
) -> Result<crate::server::ResponseFrame, HandlerError> {
    let RequestKind::SaslHandshake(request) = body else {
        return Err(HandlerError::WrongBody(context.api));
    };
    let mut session = context.connection.sasl.borrow_mut();
    let mut response = SaslHandshakeResponse::default();
    response.mechanisms = session.offered_names().into_iter().map(str_bytes).collect();
    let outcome = if context.version == 0 {
        session.refuse();
        Err(ErrorCode::UnsupportedVersion)
    } else {
        session
            .handshake(request.mechanism.as_str())
            .map_err(|refusal| match refusal {
                HandshakeRefusal::UnsupportedMechanism => ErrorCode::UnsupportedSaslMechanism,
                HandshakeRefusal::IllegalState => ErrorCode::IllegalSaslState,
            })
    };
    if let Err(error) = outcome {
        tracing::debug!(mechanism = %request.mechanism.as_str(), ?error, "SaslHandshake refused; closing after the answer");
        shard.metrics.rejected(RejectReason::SaslNotAuthenticated);
        response.error_code = error.code();
    }
    drop(session);
    context.respond(&response)
}
