//! DescribeConfigs, IncrementalAlterConfigs and CreateTopics with their per-resource errors and
//! the broker's messages.
//!
//! rdkafka 0.39 drops the per-resource error of both results: its `AlterConfigsFuture` pushes
//! `Ok` for every resource and its `DescribeConfigsFuture` returns an empty entry list for a
//! resource the broker refused, so `--set retention.ms=abc` looked like success. librdkafka
//! itself keeps the code and the broker's message on each result resource
//! (`rd_kafka_ConfigResource_error` / `_error_string`), so this module calls its C API
//! (`rdkafka::bindings`) directly on a private result queue and reads them. CreateTopics goes
//! the same way because rdkafka keeps its per-topic code but drops the message (which names the
//! refused config).
//!
//! Owns: `ConfigChange`, `describe`, `alter_incrementally`, `create_topic`. May import: rdkafka (and its
//! bindings), `super::{client, error}`.
//! Invariants: every native object made here (resources, options, queue, event) is destroyed
//! by its guard's `Drop`, also on early return; a result is read only from the event it came in.
//! Runs on the caller's thread, blocking on the result queue for at most the request timeout
//! plus `QUEUE_POLL_MARGIN`.

use super::client::Cluster;
use super::error::CliError;
use rdkafka::admin::{ConfigEntry, ConfigSource};
use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::time::Duration;

/// Extra time the result queue is polled beyond the request timeout: librdkafka answers a
/// timed-out request with an error event of its own, which is the clearer message.
const QUEUE_POLL_MARGIN: Duration = Duration::from_secs(5);

/// The resource a config request names.
#[derive(Clone, Copy, Debug)]
pub enum ConfigTarget<'a> {
    Topic(&'a str),
    Broker(i32),
}

impl ConfigTarget<'_> {
    fn native(&self) -> (rdsys::rd_kafka_ResourceType_t, String) {
        match self {
            ConfigTarget::Topic(name) => (
                rdsys::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                (*name).to_string(),
            ),
            ConfigTarget::Broker(id) => (
                rdsys::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_BROKER,
                id.to_string(),
            ),
        }
    }
}

/// One IncrementalAlterConfigs operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChange {
    Set { key: String, value: String },
    Delete { key: String },
}

/// What the broker said about one resource it refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceError {
    pub code: RDKafkaErrorCode,
    /// The broker's error message; `None` when it sent none.
    pub message: Option<String>,
}

impl ResourceError {
    /// "Invalid config: <broker message>", or the code's text alone.
    pub fn detail(&self) -> String {
        match &self.message {
            Some(message) if !message.is_empty() => format!("{}: {message}", self.code),
            _ => self.code.to_string(),
        }
    }

    /// The CLI error for `operation` on `target`, classified like every other broker error
    /// (an unknown topic exits 4, a refused value 1, …) but keeping the broker's message.
    pub fn into_cli_error(
        self,
        cluster: &Cluster,
        operation: &str,
        target: ConfigTarget<'_>,
    ) -> CliError {
        match (self.code, target) {
            (RDKafkaErrorCode::UnknownTopicOrPartition, ConfigTarget::Topic(name)) => {
                CliError::UnknownTopic(name.to_string())
            }
            (code, _) => match cluster.connect.code_error(operation, code) {
                CliError::Failed { operation, .. } => CliError::Failed {
                    operation,
                    detail: self.detail(),
                },
                other => other,
            },
        }
    }
}

/// The result of a config request for its one resource: the entries, or the broker's refusal.
type ResourceOutcome = Result<Vec<ConfigEntry>, ResourceError>;

/// DescribeConfigs for one resource; `broker_id` sends it to that broker (broker resources are
/// answered by the broker they name).
pub fn describe(
    cluster: &Cluster,
    target: ConfigTarget<'_>,
    broker_id: Option<i32>,
) -> Result<ResourceOutcome, CliError> {
    let resource = NativeResource::new(target)?;
    let call = AdminCall::new(
        cluster,
        rdsys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
        broker_id,
    )?;
    let mut resources = [resource.ptr];
    // SAFETY: handle, options and queue are live (owned by `call`); the resource array holds one
    // live resource, which librdkafka copies before returning.
    unsafe {
        rdsys::rd_kafka_DescribeConfigs(
            call.handle,
            resources.as_mut_ptr(),
            resources.len(),
            call.options,
            call.queue,
        );
    }
    let event = call.wait(cluster, "describe configs")?;
    // SAFETY: the event is live until `event` drops; a null result means another event type.
    let result = unsafe { rdsys::rd_kafka_event_DescribeConfigs_result(event.ptr) };
    if result.is_null() {
        return Err(CliError::failed(
            "describe configs",
            "unexpected result type",
        ));
    }
    let mut count = 0;
    // SAFETY: `result` belongs to the live event; the array has `count` resource pointers.
    let results = unsafe { rdsys::rd_kafka_DescribeConfigs_result_resources(result, &mut count) };
    first_outcome(results, count, true)
}

/// IncrementalAlterConfigs for one resource: the broker validates the changes together and
/// applies all or none. `Ok(Err(_))` is the broker's refusal.
pub fn alter_incrementally(
    cluster: &Cluster,
    target: ConfigTarget<'_>,
    changes: &[ConfigChange],
) -> Result<Result<(), ResourceError>, CliError> {
    let resource = NativeResource::new(target)?;
    for change in changes {
        resource.add(change)?;
    }
    let call = AdminCall::new(
        cluster,
        rdsys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_INCREMENTALALTERCONFIGS,
        None,
    )?;
    let mut resources = [resource.ptr];
    // SAFETY: as in `describe`.
    unsafe {
        rdsys::rd_kafka_IncrementalAlterConfigs(
            call.handle,
            resources.as_mut_ptr(),
            resources.len(),
            call.options,
            call.queue,
        );
    }
    let event = call.wait(cluster, "alter configs")?;
    // SAFETY: as in `describe`.
    let result = unsafe { rdsys::rd_kafka_event_IncrementalAlterConfigs_result(event.ptr) };
    if result.is_null() {
        return Err(CliError::failed("alter configs", "unexpected result type"));
    }
    let mut count = 0;
    // SAFETY: as in `describe`.
    let results =
        unsafe { rdsys::rd_kafka_IncrementalAlterConfigs_result_resources(result, &mut count) };
    Ok(first_outcome(results, count, false)?.map(|_| ()))
}

/// CreateTopics for one topic (`-1` partitions or replication factor: the broker's default).
/// `Ok(Err(_))` is the broker's refusal with its message (rdkafka's `create_topics` keeps the
/// code but drops the message, so `--config retention.ms=abc` said only "Configuration is
/// invalid").
pub fn create_topic(
    cluster: &Cluster,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
) -> Result<Result<(), ResourceError>, CliError> {
    let topic = NativeNewTopic::new(name, partitions, replication_factor)?;
    for (key, value) in configs {
        topic.set(key, value)?;
    }
    let call = AdminCall::new(
        cluster,
        rdsys::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATETOPICS,
        None,
    )?;
    call.set_operation_timeout()?;
    let mut topics = [topic.ptr];
    // SAFETY: as in `describe`; librdkafka copies the new-topic specification.
    unsafe {
        rdsys::rd_kafka_CreateTopics(
            call.handle,
            topics.as_mut_ptr(),
            topics.len(),
            call.options,
            call.queue,
        );
    }
    let event = call.wait(cluster, "create topic")?;
    // SAFETY: as in `describe`.
    let result = unsafe { rdsys::rd_kafka_event_CreateTopics_result(event.ptr) };
    if result.is_null() {
        return Err(CliError::failed("create topic", "unexpected result type"));
    }
    let mut count = 0;
    // SAFETY: `result` belongs to the live event; the array has `count` topic results.
    let results = unsafe { rdsys::rd_kafka_CreateTopics_result_topics(result, &mut count) };
    if results.is_null() || count == 0 {
        return Err(CliError::failed(
            "create topic",
            "the broker returned no result",
        ));
    }
    // SAFETY: `count` ≥ 1 valid pointers, alive with the event; strings are copied out.
    let (code, message) = unsafe {
        let topic_result = *results;
        (
            rdsys::rd_kafka_topic_result_error(topic_result),
            owned_string(rdsys::rd_kafka_topic_result_error_string(topic_result)),
        )
    };
    if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Ok(Ok(()));
    }
    Ok(Err(ResourceError {
        code: code.into(),
        message,
    }))
}

/// The outcome of the only resource in a result; with `read_entries`, its config entries.
fn first_outcome(
    results: *mut *const rdsys::rd_kafka_ConfigResource_t,
    count: usize,
    read_entries: bool,
) -> Result<ResourceOutcome, CliError> {
    if results.is_null() || count == 0 {
        return Err(CliError::failed("configs", "the broker returned no result"));
    }
    // SAFETY: `results` has `count` ≥ 1 valid pointers owned by the caller's live event.
    let resource = unsafe { *results };
    // SAFETY: `resource` is valid while the event lives; the strings are copied out here.
    let code = unsafe { rdsys::rd_kafka_ConfigResource_error(resource) };
    if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: as above; null or a NUL-terminated string.
        let message =
            unsafe { owned_string(rdsys::rd_kafka_ConfigResource_error_string(resource)) };
        return Ok(Err(ResourceError {
            code: code.into(),
            message,
        }));
    }
    if !read_entries {
        return Ok(Ok(Vec::new()));
    }
    // SAFETY: as above.
    Ok(Ok(unsafe { config_entries(resource) }))
}

/// Copies a resource's config entries out of librdkafka.
///
/// # Safety
/// `resource` must be a valid result resource whose event outlives this call.
unsafe fn config_entries(resource: *const rdsys::rd_kafka_ConfigResource_t) -> Vec<ConfigEntry> {
    let mut count = 0;
    let entries = unsafe { rdsys::rd_kafka_ConfigResource_configs(resource, &mut count) };
    if entries.is_null() {
        return Vec::new();
    }
    (0..count)
        .map(|index| {
            // SAFETY: `entries` has `count` valid entry pointers.
            let entry = unsafe { *entries.add(index) };
            unsafe {
                ConfigEntry {
                    name: owned_string(rdsys::rd_kafka_ConfigEntry_name(entry)).unwrap_or_default(),
                    value: owned_string(rdsys::rd_kafka_ConfigEntry_value(entry)),
                    source: config_source(rdsys::rd_kafka_ConfigEntry_source(entry)),
                    is_read_only: rdsys::rd_kafka_ConfigEntry_is_read_only(entry) != 0,
                    is_default: rdsys::rd_kafka_ConfigEntry_is_default(entry) != 0,
                    is_sensitive: rdsys::rd_kafka_ConfigEntry_is_sensitive(entry) != 0,
                }
            }
        })
        .collect()
}

fn config_source(source: rdsys::rd_kafka_ConfigSource_t) -> ConfigSource {
    use rdsys::rd_kafka_ConfigSource_t::*;
    match source {
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG => ConfigSource::DynamicTopic,
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_BROKER_CONFIG => ConfigSource::DynamicBroker,
        RD_KAFKA_CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG => ConfigSource::DynamicDefaultBroker,
        RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG => ConfigSource::StaticBroker,
        RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG => ConfigSource::Default,
        _ => ConfigSource::Unknown,
    }
}

/// A copy of a C string, or `None` for null.
///
/// # Safety
/// `text` is null or points to a NUL-terminated string valid for this call.
unsafe fn owned_string(text: *const c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    Some(
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn c_string(text: &str) -> Result<CString, CliError> {
    CString::new(text)
        .map_err(|_| CliError::InvalidArgument(format!("'{text}' contains a NUL byte")))
}

/// An owned `rd_kafka_ConfigResource_t` for a request.
struct NativeResource {
    ptr: *mut rdsys::rd_kafka_ConfigResource_t,
}

impl NativeResource {
    fn new(target: ConfigTarget<'_>) -> Result<NativeResource, CliError> {
        let (kind, name) = target.native();
        let name = c_string(&name)?;
        // SAFETY: `name` is a valid C string; librdkafka copies it.
        let ptr = unsafe { rdsys::rd_kafka_ConfigResource_new(kind, name.as_ptr()) };
        if ptr.is_null() {
            return Err(CliError::failed(
                "configs",
                "librdkafka refused the resource",
            ));
        }
        Ok(NativeResource { ptr })
    }

    fn add(&self, change: &ConfigChange) -> Result<(), CliError> {
        use rdsys::rd_kafka_AlterConfigOpType_t::*;
        let (key, operation, value) = match change {
            ConfigChange::Set { key, value } => (
                key,
                RD_KAFKA_ALTER_CONFIG_OP_TYPE_SET,
                Some(c_string(value)?),
            ),
            ConfigChange::Delete { key } => (key, RD_KAFKA_ALTER_CONFIG_OP_TYPE_DELETE, None),
        };
        let key_c = c_string(key)?;
        let value_ptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: live resource; key and value are valid C strings (or null value for DELETE)
        // that librdkafka copies.
        let error = unsafe {
            rdsys::rd_kafka_ConfigResource_add_incremental_config(
                self.ptr,
                key_c.as_ptr(),
                operation,
                value_ptr,
            )
        };
        if error.is_null() {
            return Ok(());
        }
        // SAFETY: a non-null error is ours to read and destroy.
        let message = unsafe {
            let message = owned_string(rdsys::rd_kafka_error_string(error));
            rdsys::rd_kafka_error_destroy(error);
            message
        };
        Err(CliError::InvalidArgument(format!(
            "config '{key}': {}",
            message.unwrap_or_else(|| "refused by librdkafka".to_string())
        )))
    }
}

impl Drop for NativeResource {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_ConfigResource_new and destroyed only here.
        unsafe { rdsys::rd_kafka_ConfigResource_destroy(self.ptr) }
    }
}

/// An owned `rd_kafka_NewTopic_t` for a CreateTopics request.
struct NativeNewTopic {
    ptr: *mut rdsys::rd_kafka_NewTopic_t,
}

impl NativeNewTopic {
    fn new(
        name: &str,
        partitions: i32,
        replication_factor: i32,
    ) -> Result<NativeNewTopic, CliError> {
        let name_c = c_string(name)?;
        let mut error_text = [0 as c_char; 512];
        // SAFETY: valid C string (copied by librdkafka) and a writable error buffer.
        let ptr = unsafe {
            rdsys::rd_kafka_NewTopic_new(
                name_c.as_ptr(),
                partitions,
                replication_factor,
                error_text.as_mut_ptr(),
                error_text.len(),
            )
        };
        if ptr.is_null() {
            // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
            let message = unsafe { owned_string(error_text.as_ptr()) }.unwrap_or_default();
            return Err(CliError::InvalidArgument(format!(
                "topic '{name}': {message}"
            )));
        }
        Ok(NativeNewTopic { ptr })
    }

    fn set(&self, key: &str, value: &str) -> Result<(), CliError> {
        let (key_c, value_c) = (c_string(key)?, c_string(value)?);
        // SAFETY: live new-topic; valid C strings that librdkafka copies.
        let code = unsafe {
            rdsys::rd_kafka_NewTopic_set_config(self.ptr, key_c.as_ptr(), value_c.as_ptr())
        };
        if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(CliError::InvalidArgument(format!(
                "config '{key}': {}",
                RDKafkaErrorCode::from(code)
            )));
        }
        Ok(())
    }
}

impl Drop for NativeNewTopic {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_NewTopic_new and destroyed only here.
        unsafe { rdsys::rd_kafka_NewTopic_destroy(self.ptr) }
    }
}

/// Admin options and a private result queue on the cluster's client handle.
struct AdminCall {
    handle: *mut rdsys::rd_kafka_t,
    options: *mut rdsys::rd_kafka_AdminOptions_t,
    queue: *mut rdsys::rd_kafka_queue_t,
    timeout: Duration,
}

impl AdminCall {
    fn new(
        cluster: &Cluster,
        operation: rdsys::rd_kafka_admin_op_t,
        broker_id: Option<i32>,
    ) -> Result<AdminCall, CliError> {
        let handle = cluster.admin.inner().native_ptr();
        let timeout = cluster.connect.request_timeout();
        // SAFETY: `handle` is the admin client's live handle, which outlives this call (the
        // `Cluster` is borrowed for as long as the call is used).
        let call = unsafe {
            AdminCall {
                handle,
                options: rdsys::rd_kafka_AdminOptions_new(handle, operation),
                queue: rdsys::rd_kafka_queue_new(handle),
                timeout,
            }
        };
        if call.options.is_null() || call.queue.is_null() {
            return Err(CliError::failed(
                "configs",
                "librdkafka could not set up the request",
            ));
        }
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut error_text = [0 as c_char; 512];
        // SAFETY: live options; the error buffer is writable for its stated length.
        let mut code = unsafe {
            rdsys::rd_kafka_AdminOptions_set_request_timeout(
                call.options,
                timeout_ms,
                error_text.as_mut_ptr(),
                error_text.len(),
            )
        };
        if let (rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR, Some(id)) =
            (code, broker_id)
        {
            // SAFETY: as above.
            code = unsafe {
                rdsys::rd_kafka_AdminOptions_set_broker(
                    call.options,
                    id,
                    error_text.as_mut_ptr(),
                    error_text.len(),
                )
            };
        }
        if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
            let message = unsafe { owned_string(error_text.as_ptr()) }.unwrap_or_default();
            return Err(CliError::failed("configs", message));
        }
        Ok(call)
    }

    /// For requests the broker completes asynchronously (CreateTopics): how long it may take,
    /// the same as the request timeout.
    fn set_operation_timeout(&self) -> Result<(), CliError> {
        let timeout_ms = i32::try_from(self.timeout.as_millis()).unwrap_or(i32::MAX);
        let mut error_text = [0 as c_char; 512];
        // SAFETY: live options; the error buffer is writable for its stated length.
        let code = unsafe {
            rdsys::rd_kafka_AdminOptions_set_operation_timeout(
                self.options,
                timeout_ms,
                error_text.as_mut_ptr(),
                error_text.len(),
            )
        };
        if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // SAFETY: librdkafka wrote a NUL-terminated message into the buffer.
            let message = unsafe { owned_string(error_text.as_ptr()) }.unwrap_or_default();
            return Err(CliError::failed("admin options", message));
        }
        Ok(())
    }

    /// Waits for the request's result event; a request-level error (no broker, timeout) is the
    /// usual classified CLI error.
    fn wait(&self, cluster: &Cluster, operation: &str) -> Result<Event, CliError> {
        let wait_ms =
            i32::try_from((self.timeout + QUEUE_POLL_MARGIN).as_millis()).unwrap_or(i32::MAX);
        // SAFETY: live queue; the returned event (if any) is ours to destroy.
        let ptr = unsafe { rdsys::rd_kafka_queue_poll(self.queue, wait_ms) };
        if ptr.is_null() {
            return Err(cluster
                .connect
                .code_error(operation, RDKafkaErrorCode::OperationTimedOut));
        }
        let event = Event { ptr };
        // SAFETY: live event.
        let code = unsafe { rdsys::rd_kafka_event_error(event.ptr) };
        if code != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(cluster.connect.code_error(operation, code.into()));
        }
        Ok(event)
    }
}

impl Drop for AdminCall {
    fn drop(&mut self) {
        // SAFETY: each pointer was created in `new`, is destroyed only here, and null ones are
        // skipped.
        unsafe {
            if !self.queue.is_null() {
                rdsys::rd_kafka_queue_destroy(self.queue);
            }
            if !self.options.is_null() {
                rdsys::rd_kafka_AdminOptions_destroy(self.options);
            }
        }
    }
}

/// A result event, destroyed on drop (which frees every result resource in it).
struct Event {
    ptr: *mut rdsys::rd_kafka_event_t,
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: polled from our queue and destroyed only here.
        unsafe { rdsys::rd_kafka_event_destroy(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_message_follows_the_code_when_present() {
        let error = ResourceError {
            code: RDKafkaErrorCode::InvalidConfig,
            message: Some("Invalid value abc for configuration retention.ms".to_string()),
        };
        let detail = error.detail();
        assert!(
            detail.ends_with(": Invalid value abc for configuration retention.ms"),
            "{detail}"
        );
        assert!(detail.len() > "Invalid value abc".len());
        let bare = ResourceError {
            code: RDKafkaErrorCode::InvalidConfig,
            message: Some(String::new()),
        };
        assert_eq!(bare.detail(), RDKafkaErrorCode::InvalidConfig.to_string());
    }

    #[test]
    fn config_sources_map_to_rdkafka_names() {
        use rdsys::rd_kafka_ConfigSource_t::*;
        assert_eq!(
            config_source(RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG),
            ConfigSource::DynamicTopic
        );
        assert_eq!(
            config_source(RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG),
            ConfigSource::Default
        );
        assert_eq!(
            config_source(RD_KAFKA_CONFIG_SOURCE_GROUP_CONFIG),
            ConfigSource::Unknown
        );
    }
}
