//! AlterUserScramCredentials (key 51, KIP-554): upserts and deletes SCRAM credentials. The
//! client salts the password itself (the request carries salt, iterations and the salted
//! password); the broker keeps only stored key and server key. A user's changes apply
//! together or not at all (`CredentialSet::altered`); the new set is written durably
//! (`scram_credentials.json`) off the shard before any login sees it.
//!
//! Single broker only: in cluster mode credentials belong in the metadata log, which this
//! slice does not write yet, so every user is answered UNSUPPORTED_VERSION with a message
//! saying so (bootstrap users come from `sasl.add_scram` on each broker).

use super::str_bytes;
use crate::metadata::scram_credentials;
use crate::model::ErrorCode;
use crate::security::sasl::credentials::{AlterRefusal, Upsertion};
use crate::server::api_table::{ResponseFuture, single_stage};
use crate::server::{HandlerError, RequestContext};
use crate::shard::Shard;
use crate::storage::{BlockingOp, run_off_shard};
use futures::future::LocalBoxFuture;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsResponse, RequestKind};
use std::rc::Rc;

const CLUSTER_MODE_MESSAGE: &str = "AlterUserScramCredentials is not supported in cluster mode \
                                    yet; give each broker its users with --add-scram";

pub fn handle(
    shard: Rc<Shard>,
    context: RequestContext,
    body: RequestKind,
) -> LocalBoxFuture<'static, ResponseFuture> {
    single_stage(async move {
        let RequestKind::AlterUserScramCredentials(request) = body else {
            return Err(HandlerError::WrongBody(context.api));
        };
        let deletions: Vec<(String, i8)> = request
            .deletions
            .iter()
            .map(|d| (d.name.to_string(), d.mechanism))
            .collect();
        let upsertions: Vec<Upsertion> = request
            .upsertions
            .iter()
            .map(|u| Upsertion {
                user: u.name.to_string(),
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            })
            .collect();
        let outcomes = if shard.config.cluster.cluster_mode() {
            every_user(
                &deletions,
                &upsertions,
                ErrorCode::UnsupportedVersion,
                CLUSTER_MODE_MESSAGE,
            )
        } else {
            alter(&shard, deletions.clone(), upsertions.clone())
                .await
                .unwrap_or_else(|message| {
                    every_user(
                        &deletions,
                        &upsertions,
                        ErrorCode::UnknownServerError,
                        &message,
                    )
                })
        };
        let mut response = AlterUserScramCredentialsResponse::default();
        response.results = outcomes
            .into_iter()
            .map(|(user, error, message)| {
                let mut result = AlterUserScramCredentialsResult::default();
                result.user = str_bytes(&user);
                result.error_code = error.code();
                result.error_message = message.as_deref().map(str_bytes);
                result
            })
            .collect();
        context.respond(&response).map(Some)
    })
}

type Outcome = (String, ErrorCode, Option<String>);

/// Applies and persists the change; Err(message) when the file cannot be written (nothing
/// changed then).
async fn alter(
    shard: &Shard,
    deletions: Vec<(String, i8)>,
    upsertions: Vec<Upsertion>,
) -> Result<Vec<Outcome>, String> {
    let store = shard.credentials.clone();
    let data_dir = shard.config.storage.data_dir.clone();
    let outcomes = run_off_shard(BlockingOp::ScramCredentialsSave, move || {
        store.update(
            |set| set.altered(&deletions, &upsertions),
            |set| scram_credentials::save(&data_dir, set),
        )
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "cannot persist SCRAM credentials");
        format!("cannot persist the credentials: {error}")
    })?;
    Ok(outcomes
        .into_iter()
        .map(|(user, outcome)| {
            let (error, message) = match outcome {
                Ok(()) => {
                    tracing::info!(%user, "SCRAM credentials altered");
                    (ErrorCode::None, None)
                }
                Err(AlterRefusal::UnknownMechanism) => (
                    ErrorCode::UnsupportedSaslMechanism,
                    Some("Unknown SCRAM mechanism".to_string()),
                ),
                Err(AlterRefusal::Unacceptable(message)) => {
                    (ErrorCode::UnacceptableCredential, Some(message))
                }
                Err(AlterRefusal::Duplicate) => (
                    ErrorCode::DuplicateResource,
                    Some("A user credential cannot be altered twice in the same request".into()),
                ),
                Err(AlterRefusal::NotFound) => (
                    ErrorCode::ResourceNotFound,
                    Some("Attempt to delete a user credential that does not exist".into()),
                ),
            };
            (user, error, message)
        })
        .collect())
}

/// The same answer for every user the request names, each once.
fn every_user(
    deletions: &[(String, i8)],
    upsertions: &[Upsertion],
    error: ErrorCode,
    message: &str,
) -> Vec<Outcome> {
    let mut users: Vec<String> = Vec::new();
    for user in deletions
        .iter()
        .map(|(user, _)| user)
        .chain(upsertions.iter().map(|u| &u.user))
    {
        if !users.contains(user) {
            users.push(user.clone());
        }
    }
    users
        .into_iter()
        .map(|user| (user, error, Some(message.to_string())))
        .collect()
}
