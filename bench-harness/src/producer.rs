//! One producer thread: a librdkafka `BaseProducer` driven at a target rate or at max rate,
//! recording publish latency (send -> delivery report) for every acknowledged message.
//!
//! Owns: the producer's librdkafka client and pacing. Imports: `control`, `payload`,
//! `workload`. Runs on its own thread; delivery callbacks run inside `poll` on that thread.
//! Invariant: the payload timestamp and the delivery opaque carry the same send time: the
//! intended send time under a target rate (no coordinated omission), the actual enqueue time
//! at max rate.

use crate::control::{ClientEvents, LoadStats, Phase, RunControl};
use crate::payload::{Header, KeyGenerator, PayloadBuilder, Rng, SizeSampler, now_ns};
use crate::workload::Workload;
use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::sync::Arc;
use std::time::Duration;

/// Delivery reports are served every this many sends at max rate.
const POLL_EVERY_SENDS: u64 = 16;
/// How long the producer waits for outstanding acknowledgements when the run ends.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);
const SLEEP_SLICE_NS: u64 = 1_000_000;

pub struct ProducerSpec {
    pub index: u32,
    pub topic: String,
    pub bootstrap: String,
    pub workload: Arc<Workload>,
    pub run_tag: u32,
    pub seed: u64,
}

struct Context {
    stats: Arc<LoadStats>,
    control: Arc<RunControl>,
    events: Arc<ClientEvents>,
    name: String,
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.events
            .log(level, &self.name, format!("{facility}: {message}"));
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events
            .log_line(&self.name, format!("{error}: {reason}"));
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, send_ns: usize) {
        match result {
            Ok(message) => {
                let latency = now_ns().saturating_sub(send_ns as u64);
                let bytes = message.payload_len() as u64;
                self.stats
                    .record(bytes, latency, self.control.is_measuring());
            }
            Err((error, _)) => {
                self.stats
                    .errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.events
                    .sample(format!("{}: delivery failed: {error}", self.name));
            }
        }
    }
}

pub fn client_config(workload: &Workload, bootstrap: &str, client_id: &str) -> ClientConfig {
    let p = &workload.producers;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", client_id)
        .set("acks", &p.acks)
        .set("linger.ms", p.linger_ms.to_string())
        .set("batch.size", p.batch_size.to_string())
        .set("compression.type", &p.compression_type);
    for (key, value) in &p.properties {
        config.set(key, value);
    }
    config
}

struct Pacer {
    generation: u64,
    start_ns: u64,
    sent: u64,
}

impl Pacer {
    /// Intended send time of the next message at `rate` msgs/s.
    fn next_ns(&self, rate: f64) -> u64 {
        self.start_ns + (self.sent as f64 * 1e9 / rate) as u64
    }
}

/// Runs until the phase is `Done`, then flushes. Errors only for setup failures.
pub fn run(
    spec: ProducerSpec,
    control: Arc<RunControl>,
    stats: Arc<LoadStats>,
    events: Arc<ClientEvents>,
) -> anyhow::Result<()> {
    let name = format!("producer-{}", spec.index);
    let context = Context {
        stats: stats.clone(),
        control: control.clone(),
        events: events.clone(),
        name: name.clone(),
    };
    let producer: BaseProducer<Context> = client_config(&spec.workload, &spec.bootstrap, &name)
        .set_log_level(events.log_level())
        .create_with_context(context)?;
    let mut rng = Rng::new(spec.seed);
    let messages = &spec.workload.messages;
    let sampler = SizeSampler::new(&messages.size);
    let max_bytes = messages.size.max_bytes() as usize;
    let mut payloads = PayloadBuilder::new(messages.payload, max_bytes, &mut rng);
    let mut keys = KeyGenerator::new(messages.keys, messages.key_space, u64::from(spec.index));
    let mut pacer = Pacer {
        generation: u64::MAX,
        start_ns: 0,
        sent: 0,
    };
    let mut sends = 0u64;

    while control.phase() != Phase::Done {
        let (generation, rate) = control.producer_rate();
        if generation != pacer.generation {
            pacer = Pacer {
                generation,
                start_ns: now_ns(),
                sent: 0,
            };
        }
        let send_ns = match rate {
            None => now_ns(),
            Some(rate) => {
                let intended = pacer.next_ns(rate);
                let now = now_ns();
                if intended > now {
                    producer.poll(Duration::ZERO);
                    let wait = (intended - now).min(SLEEP_SLICE_NS);
                    std::thread::sleep(Duration::from_nanos(wait));
                    continue;
                }
                intended
            }
        };
        let header = Header {
            send_ns,
            run_tag: spec.run_tag,
            producer: spec.index,
        };
        let size = sampler.sample(&mut rng);
        let payload = payloads.build(header, size, &mut rng);
        let key = keys.next_key(&mut rng);
        let mut record: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&spec.topic, send_ns as usize).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        let mut record = Some(record);
        while let Some(pending) = record.take() {
            match producer.send(pending) {
                Ok(()) => {}
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    producer.poll(QUEUE_FULL_BACKOFF);
                    if control.phase() != Phase::Done {
                        record = Some(back);
                    }
                }
                Err((error, _)) => {
                    stats
                        .errors
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    events.sample(format!("{name}: send failed: {error}"));
                }
            }
        }
        pacer.sent += 1;
        sends += 1;
        if sends.is_multiple_of(POLL_EVERY_SENDS) {
            producer.poll(Duration::ZERO);
        }
        if control.throttle_us > 0 {
            std::thread::sleep(Duration::from_micros(control.throttle_us));
        }
    }
    if let Err(error) = producer.flush(FLUSH_TIMEOUT) {
        events.sample(format!("{name}: flush at end of run: {error}"));
    }
    Ok(())
}
