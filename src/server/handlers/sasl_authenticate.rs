//! SaslAuthenticate (key 36): one SASL token in, the next challenge (or the final message)
//! out (KIP-152), with the session lifetime from v1 (KIP-368). The exchange runs in stage 1,
//! inline, so the connection's gate sees the login before the next request. A failed login
//! is counted (`sasl_authentication_failed`), logged at debug with its reason, answered
//! SASL_AUTHENTICATION_FAILED with one generic message after
//! `sasl.failed_authentication_delay_ms`, and its connection closed after that answer.

use super::str_bytes;
use crate::model::ErrorCode;
use crate::security::Principal;
use crate::server::api_table::ResponseFuture;
use crate::server::sasl_session::AuthenticateOutcome;
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use crate::shard::metrics::RejectReason;
use bytes::Bytes;
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::{RequestKind, SaslAuthenticateResponse};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// What a failed login is told, whatever failed: never which part was wrong.
const FAILED_MESSAGE: &str = "Authentication failed: invalid credentials";

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    let (response, delay) = match answer(&shard, &context, body) {
        Ok((response, delay)) => (Ok(response), delay),
        Err(error) => (Err(error), Duration::ZERO),
    };
    let completion: ResponseFuture = Box::pin(async move {
        if !delay.is_zero() {
            glommio::timer::sleep(delay).await;
        }
        response.map(Some)
    });
    Box::pin(std::future::ready(completion))
}

fn answer(
    shard: &Shard,
    context: &RequestContext,
    body: RequestKind,
) -> Result<(crate::server::ResponseFrame, Duration), HandlerError> {
    let RequestKind::SaslAuthenticate(request) = body else {
        return Err(HandlerError::WrongBody(context.api));
    };
    let outcome = context.connection.sasl.borrow_mut().authenticate(
        &request.auth_bytes,
        &shard.credentials,
        Instant::now(),
    );
    let mut response = SaslAuthenticateResponse::default();
    let mut delay = Duration::ZERO;
    match outcome {
        AuthenticateOutcome::Challenge(challenge) => response.auth_bytes = Bytes::from(challenge),
        AuthenticateOutcome::Authenticated {
            user,
            response: last,
            session_lifetime_ms,
        } => {
            let principal = Principal::user(&user);
            tracing::debug!(%principal, "SASL login");
            context.connection.security.borrow_mut().principal = principal;
            response.auth_bytes = Bytes::from(last);
            response.session_lifetime_ms = session_lifetime_ms;
        }
        AuthenticateOutcome::Failed(reason) => {
            tracing::debug!(%reason, client = %context.client_host, "SASL login failed; closing after the answer");
            shard
                .metrics
                .rejected(RejectReason::SaslAuthenticationFailed);
            response.error_code = ErrorCode::SaslAuthenticationFailed.code();
            response.error_message = Some(str_bytes(FAILED_MESSAGE));
            delay = Duration::from_millis(shard.config.sasl.failed_authentication_delay_ms);
        }
        AuthenticateOutcome::IllegalState => {
            shard.metrics.rejected(RejectReason::SaslNotAuthenticated);
            response.error_code = ErrorCode::IllegalSaslState.code();
            response.error_message = Some(str_bytes(
                "SaslAuthenticate without a SaslHandshake before it",
            ));
        }
    }
    Ok((context.respond(&response)?, delay))
}
